"""MLflow tracking: a mirror of the ledger, one parent run per sweep and one nested child run per trial.

Why our own tracker rather than Ray's MLflow callback: that one makes flat runs and forgets which run
belongs to which trial when a sweep is restored, so a resumed sweep gets duplicate runs. Here every run
is found again by its ``monosweep.trial_id`` tag, so a trial has exactly one run however often the
sweep is killed and rerun.

A rerun (``monosweep rerun``) gives a trial a new run: the record counts the runs set aside (its
``history``), each run carries that count in ``monosweep.rerun``, and a run whose count is behind its
record's is marked superseded (role ``superseded``, kept under the sweep's run) before the new one is made.
Decided from the ledger at every sync, so a driver that died in between leaves nothing to repair.

Everything is written from the driver (workers never talk to MLflow), so an embedded sqlite file works
with a remote cluster too. The ledger stays the source of truth: when MLflow is unreachable the tracker
warns once and stands aside; the next ``monosweep run`` or ``monosweep sync`` back-fills what is missing.

No duplicates: a run is created without MLflow's automatic retries (a slow server would otherwise get
the same create twice), after a failed create it is looked up by its tag before anything else, and runs
found twice for one sweep or one trial are ended (``KILLED``, tagged ``monosweep.duplicate``) and said,
keeping the oldest. Messages show the tracking URI without any ``user:password@``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from methods.errors import first_line, redact
from methods.metrics import EPOCH, LAYERS, trial_metrics
from methods.provenance import code_version
from sweep.grid import Trial
from sweep.ledger.records import TrialRecord
from sweep.pictures import save_filters
from sweep.report import plot_trial
from sweep.search import describe
from sweep.spec import SweepSpec
from sweep.storage import Storage

# MLflow 3 sends usage telemetry home by default: a sweep runs offline and should not phone out, and the
# telemetry hook costs ~10 ms per client call. Opt back in with MLFLOW_DISABLE_TELEMETRY=false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__all__ = ["LAYER_CURVE", "Tracker", "redact", "tracking_uri"]

Log = Callable[[str], None]
TRIAL_TAG, SWEEP_TAG, ROLE_TAG = "monosweep.trial_id", "monosweep.sweep", "monosweep.role"
POINT_TAG, BEST_TAG = "monosweep.search_point", "monosweep.best"  # search trials: their grid point; the best
SYNCED_TAG = "monosweep.synced"  # the ledger record's `updated` stamp last mirrored
DUPLICATE_TAG = "monosweep.duplicate"  # a run made twice for one sweep or trial, ended
RERUN_TAG = "monosweep.rerun"  # how many earlier runs of the trial `monosweep rerun` set aside before this one
SUPERSEDED = "superseded"  # the role of a trial's run once a rerun has replaced it (kept, under the sweep)
# Tags that make the MLflow UI's run table readable without opening the params.
TAGGED_FIELDS = ("method", "source", "num_images", "augment", "seed")
# A dead server must not stall the sweep: few retries, short timeouts (unless the user set them).
# Our own summary says where the runs are; MLflow's per-run "View run" lines would bury it.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# The experiment opens in MLflow's model-training view (3.x picks the view from this tag; without it a new
# experiment opens on GenAI traces).
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# Probe top-1 with step = conv layer (1..5): MLflow's chart view draws it as the paper's accuracy-per-layer
# curve, one line per trial run; the sweep's run gets ``layers/<group>`` (each report group's mean). The
# chart view groups metrics by what precedes the "/": all of them open together, in one "layers" section.
LAYER_SECTION = "layers"
LAYER_CURVE = f"{LAYER_SECTION}/top1"
# MLflow 3.17's UI ignores the experiment's kind when its GenAI / model-training switch is on (the default):
# the view then comes from this URL parameter, else the browser's last choice, else GenAI.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
_RUN_STATUS = {"finished": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "pruned": "KILLED",
               "interrupted": "KILLED"}


@contextlib.contextmanager
def _no_retries() -> Iterator[None]:
    """MLflow's HTTP client retries a request that timed out; for a create that makes a second run."""
    before = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        yield
    finally:
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = before if before is not None else _HTTP_DEFAULTS[
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES"]


def tracking_uri(spec: SweepSpec, storage: Storage, override: str | None = None) -> str:
    """The tracking URI: ``--tracking-uri``, else the spec's, else $MLFLOW_TRACKING_URI, else an
    embedded sqlite file beside the results. sqlite cannot live on S3: with S3 storage the file goes to
    ~/monosweep-results/<name> on the driver's machine (the home directory, not the working directory,
    which for a submitted Ray Job is a temporary folder)."""
    uri = override or spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = Path(storage.root) if not storage.is_s3 else Path.home() / "monosweep-results" / spec.name
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


class Tracker:
    """The sweep's MLflow experiment; every method is a no-op once MLflow has failed (see module doc)."""

    def __init__(self, spec: SweepSpec, storage: Storage, uri: str, log: Log) -> None:
        self.spec, self.storage, self.uri, self.log = spec, storage, uri, log
        self.shown = redact(uri)
        self.embedded = uri.startswith("sqlite:")
        self.down = False
        self.client: Any = None
        self.experiment_id = self.parent_id = ""
        self.run_ids: dict[str, str] = {}  # trial id -> its (child) run's id
        self.synced: dict[str, str] = {}  # trial id -> the record stamp its run mirrors
        self.reruns: dict[str, int] = {}  # trial id -> the rerun count its run carries (RERUN_TAG)
        self.best: dict[str, str] = {}  # grid point id -> the trial its run's best tag names (searches)
        self.varying = spec.varying_axes()

    # ------------------------------------------------------------------ failure policy
    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        if self.down:
            return None
        try:
            return action()
        except Exception as err:  # MLflow raises MlflowException, requests' errors, sqlite's...
            self.down = True
            first = redact(first_line(err))[:200]
            self.log(f"[monosweep] warning: MLflow at {self.shown} failed while {what} ({first}); tracking is "
                     "off for this run, results stay in the ledger - `monosweep sync SPEC` back-fills MLflow")
            return None

    # ------------------------------------------------------------------ the sweep's parent run
    def open(self, spec_text: str | None = None, running: bool = True) -> bool:
        """Find or create the experiment and the sweep's parent run (marked running unless told not to)."""
        return bool(self._guard("opening the experiment", lambda: self._open(spec_text, running)))

    def _open(self, spec_text: str | None, running: bool) -> bool:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines (table creation, migrations) are not ours to show
            logging.getLogger(name).setLevel(logging.WARNING)  # (after the import, which sets them up)

        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(self.spec.name)
        if experiment is None:
            location = None
            if self.embedded:  # next to the database, not in ./mlruns of whatever the cwd is
                location = (Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
            self.experiment_id = self._create(
                lambda: self.client.create_experiment(self.spec.name, artifact_location=location,
                                                      tags={SWEEP_TAG: self.spec.name, KIND_TAG: MODEL_TRAINING}),
                lambda: getattr(self.client.get_experiment_by_name(self.spec.name), "experiment_id", None))
        else:
            self.experiment_id = experiment.experiment_id
            if KIND_TAG not in experiment.tags:  # made by an older version (a view the user picked stays)
                self.client.set_experiment_tag(self.experiment_id, KIND_TAG, MODEL_TRAINING)
        parents = self._unique(self._search(f"tags.`{ROLE_TAG}` = 'sweep'"), "the sweep")
        if parents:
            self.parent_id = parents[0].info.run_id
            if running:
                self.client.update_run(self.parent_id, status="RUNNING")
        else:
            tags = {ROLE_TAG: "sweep", SWEEP_TAG: self.spec.name, "monosweep.version": code_version()}
            self.parent_id = self._create(
                lambda: self.client.create_run(self.experiment_id, run_name=self.spec.name, tags=tags).info.run_id,
                lambda: next((r.info.run_id for r in self._search(f"tags.`{ROLE_TAG}` = 'sweep'")), None))
        if spec_text is not None:
            self._artifact_text(self.parent_id, "spec.yaml", spec_text)
        children = self._search(f"tags.`{ROLE_TAG}` = 'trial'")
        by_trial: dict[str, list[Any]] = {}
        for run in children:
            by_trial.setdefault(run.data.tags[TRIAL_TAG], []).append(run)
        children = [self._unique(runs, f"trial {tid}")[0] for tid, runs in by_trial.items()]
        self.run_ids = {run.data.tags[TRIAL_TAG]: run.info.run_id for run in children}
        self.synced = {run.data.tags[TRIAL_TAG]: run.data.tags.get(SYNCED_TAG, "") for run in children}
        self.reruns = {run.data.tags[TRIAL_TAG]: int(run.data.tags.get(RERUN_TAG, "0")) for run in children}
        self.best = {run.data.tags[POINT_TAG]: run.data.tags[TRIAL_TAG] for run in children
                     if run.data.tags.get(BEST_TAG) == "true" and POINT_TAG in run.data.tags}
        return True

    def close(self, counts: Mapping[str, int]) -> None:
        """Record the sweep's state counts on the parent run and end it."""
        if not self.parent_id:
            return

        def close() -> None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [Metric(f"trials.{state}", float(n), now, 0) for state, n in sorted(counts.items())]
            self.client.log_batch(self.parent_id, metrics=metrics)
            ended = "FAILED" if counts.get("failed") else "KILLED" if counts.get("interrupted") else "FINISHED"
            self.client.set_terminated(self.parent_id, ended)

        self._guard("closing the sweep run", close)

    def log_parent_curves(self, curves: Mapping[str, Mapping[str, float]]) -> None:
        """The report's groups on the sweep's run as ``layers/<group>``, step = conv layer: the chart view
        shows them as accuracy-per-layer curves, one chart per group, beside the trials' ``layers/top1``."""
        if self.parent_id:
            metrics = [m for label, top1 in curves.items()
                       for m in layer_curve(f"{LAYER_SECTION}/{_metric_name(label)}", top1)]
            self._guard("logging the report's curves", lambda: self._log(self.parent_id, metrics))

    def log_parent_artifacts(self, directory: Path) -> None:
        """Attach files (the report) to the sweep's parent run."""
        if self.parent_id:
            self._guard("logging the report", lambda: self.client.log_artifacts(self.parent_id, str(directory),
                                                                                "report"))

    def ui_hint(self) -> str:
        """How to open the sweep's runs in the model-training view (the link says which view: see above)."""
        page = f"/#/experiments/{self.experiment_id or ''}/runs?{MODEL_TRAINING_VIEW}"
        if self.embedded:
            return f"browse the runs: mlflow ui --backend-store-uri {self.shown} and open http://127.0.0.1:5000{page}"
        return f"browse the runs: {self.shown.rstrip('/')}{page}"

    def _create(self, create: Callable[[], Any], find: Callable[[], Any]) -> Any:
        """Make something once: without MLflow's retries, and after a failure, look for it before giving up
        (a slow server may have made it after all)."""
        try:
            with _no_retries():
                return create()
        except Exception:
            found = find()
            if found is None:
                raise
            return found

    def _unique(self, runs: list[Any], what: str) -> list[Any]:
        """``runs`` of one sweep or trial, oldest first; any beyond the first are ended and said."""
        runs = sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))
        for extra in runs[1:]:
            self.client.set_tag(extra.info.run_id, DUPLICATE_TAG, "true")
            self.client.set_terminated(extra.info.run_id, "KILLED")
            self.log(f"[monosweep] warning: MLflow had a second run for {what} ({extra.info.run_id}); ended it "
                     f"as a duplicate of {runs[0].info.run_id}")
        return runs[:1]

    # ------------------------------------------------------------------ the trials' child runs
    def _search(self, condition: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`{SWEEP_TAG}` = '{self.spec.name}' and "
                                           f"{condition}", max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def point_label(self, trial: Trial) -> str:
        """method and the values of the axes that vary, e.g. ``rotnet augment=none seed=1``."""
        return " ".join([trial.config.method, *(f"{a}={trial.value(a)}" for a in self.varying if a != "method")])

    def _run_name(self, trial: Trial) -> str:
        searched = list(self.spec.search.space) if self.spec.search is not None else []
        sampled = describe({k: trial.value(k) for k in searched}, searched)
        return f"{self.point_label(trial)} {sampled}".strip() + f" [{trial.id}]"

    def mark_best(self, point: Trial, record: TrialRecord, value: float) -> None:
        """Tag the best search trial around a grid point (and untag the one it replaces), and note it on
        the sweep's run."""
        if record.id not in self.run_ids or not self.parent_id or self.best.get(point.id) == record.id:
            return
        assert self.spec.search is not None
        search = self.spec.search

        def mark() -> None:
            previous = self.best.get(point.id)
            if previous in self.run_ids:
                self.client.delete_tag(self.run_ids[previous], BEST_TAG)
            self.client.set_tag(self.run_ids[record.id], BEST_TAG, "true")
            summary = {"trial": record.id, search.metric: value, **{k: record.values.get(k) for k in search.space}}
            self.client.set_tag(self.parent_id, f"best.{point.id}", json.dumps(summary))
            self.best[point.id] = record.id

        self._guard("tagging the best trial", mark)

    def has_run(self, trial_id: str) -> bool:
        return trial_id in self.run_ids

    def _child(self, trial: Trial, reruns: int | None = None, started: float = 0.0) -> str:
        """The trial's run id: found by tag, or created nested under the sweep's run with its params, starting
        when the trial started (``started``, wall clock, when known), and ``reruns``, the number of earlier
        runs set aside (as last seen in the ledger when not given)."""
        if trial.id in self.run_ids:
            return self.run_ids[trial.id]
        from mlflow.entities import Param

        config = trial.config.to_dict()
        reruns = self.reruns.get(trial.id, 0) if reruns is None else reruns
        tags = {TRIAL_TAG: trial.id, ROLE_TAG: "trial", SWEEP_TAG: self.spec.name, "status": "running",
                RERUN_TAG: str(reruns),
                "mlflow.parentRunId": self.parent_id, "monosweep.version": code_version(),
                **{f: str(config[f]) for f in TAGGED_FIELDS}}
        run_id = str(self._create(
            lambda: self.client.create_run(self.experiment_id, start_time=_ms(started), run_name=self._run_name(trial),
                                           tags=tags).info.run_id,
            lambda: next((r.info.run_id for r in self._search(f"tags.`{TRIAL_TAG}` = '{trial.id}'")), None)))
        params = [Param(k, str(v)) for k, v in sorted(config.items())]
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(run_id, params=params[start:start + 100])
        self.run_ids[trial.id], self.reruns[trial.id] = run_id, reruns
        return run_id

    def _supersede(self, trial: Trial) -> None:
        """The trial's run stays, under the sweep's run, marked as replaced by a rerun."""
        run_id = self.run_ids.pop(trial.id)
        self.synced.pop(trial.id, None)
        self.client.set_tag(run_id, ROLE_TAG, SUPERSEDED)
        self.client.set_tag(run_id, "status", SUPERSEDED)
        run = self.client.get_run(run_id)
        self.client.update_run(run_id, name=f"{run.info.run_name} (superseded)")
        if run.info.status == "RUNNING":
            self.client.set_terminated(run_id, "KILLED")

    def log_epoch(self, trial: Trial, metrics: Mapping[str, Any], started: float = 0.0) -> None:
        """Live: one epoch's metrics as the trial reports them (step = epoch); ``started`` (wall clock) is
        when the trial started, for a run made now. A trial's end is left to :meth:`sync`, which mirrors it
        from the ledger."""
        found = _epoch_metrics(metrics)
        if found:
            self._guard(f"logging trial {trial.id}", lambda: self._log(self._child(trial, started=started), found))

    def _log(self, run_id: str, metrics: list[Any], tags: Mapping[str, str] | None = None) -> None:
        from mlflow.entities import RunTag

        run_tags = [RunTag(k, v) for k, v in (tags or {}).items()]
        for start in range(0, max(len(metrics), 1), 1000):  # log_batch takes at most 1000 metrics
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000], tags=run_tags if not start else [])

    def sync(self, trials: list[Trial], records: Mapping[str, TrialRecord]) -> int:
        """Mirror every ledger record that MLflow does not show yet; returns how many runs changed."""
        changed = 0
        for trial in trials:
            record = records.get(trial.id)
            if record is None or self.down:
                continue
            if self.synced.get(trial.id) == repr(record.updated):
                continue
            if self._guard(f"mirroring trial {trial.id}", lambda t=trial, r=record: self._sync(t, r)):
                changed += 1
        return changed

    def _sync(self, trial: Trial, record: TrialRecord) -> bool:
        """One batch: the epochs live logging missed, the probe results, the status tags; then the
        artifacts and the run's end, once the trial has ended."""
        if trial.id in self.run_ids and self.reruns.get(trial.id, 0) < len(record.history):
            self._supersede(trial)
        fresh = trial.id not in self.run_ids
        run_id = self._child(trial, len(record.history), record.started)
        result = record.result
        logged = set() if fresh else {int(m.step) for m in self.client.get_metric_history(run_id, EPOCH)}
        metrics = []
        tags = {"status": record.status, SYNCED_TAG: repr(record.updated)}
        if result is not None:
            metrics = [m for epoch in result.history if int(epoch.get(EPOCH, 0)) not in logged
                       for m in _epoch_metrics(epoch)]
            metrics += _metrics(trial_metrics(result.probe_metrics()), result.epochs_done)
            metrics += layer_curve(LAYER_CURVE, {layer: stats["top1"] for layer, stats in result.probe.items()})
            tags.update({f"monosweep.{k}": v for k, v in result.environment.items() if k != "monosweep"})
            if "monosweep" in result.environment:  # the code the worker ran (the driver's may differ)
                tags["monosweep.version"] = result.environment["monosweep"]
        if record.search is not None:  # a search trial: which grid point it was sampled around
            tags[POINT_TAG] = record.search
        if record.error:
            tags["error"] = record.error[:5000]
        if record.status in _RUN_STATUS:
            self._artifacts(run_id, trial, record)
            if result is not None and result.inputs:
                self.client.log_inputs(run_id, datasets=_datasets(result.inputs))
        self._log(run_id, metrics, tags)
        if record.status in _RUN_STATUS:
            self.client.set_terminated(run_id, _RUN_STATUS[record.status], end_time=_ms(record.ended))
        self.synced[trial.id] = repr(record.updated)
        return True

    def _artifacts(self, run_id: str, trial: Trial, record: TrialRecord) -> None:
        """config.json, result.json, trunk.pt (from the storage) and two pictures: the per-layer probe plot
        (layers.png) and conv1's filters (conv1_filters.png), in one upload."""
        with tempfile.TemporaryDirectory(prefix="monosweep-artifact-") as tmp:
            folder = Path(tmp)
            (folder / "config.json").write_text(json.dumps(record.config, indent=1, sort_keys=True))
            if record.result is not None:
                (folder / "result.json").write_text(json.dumps(record.result.to_dict(), indent=1, sort_keys=True))
                if record.result.probe:
                    plot_trial(record, trial, self.point_label, folder / "layers.png")
            if record.trunk:
                self.storage.download(record.trunk, folder / "trunk.pt")
                save_filters(folder / "trunk.pt", folder / "conv1_filters.png")
            self.client.log_artifacts(run_id, tmp)

    def _artifact_text(self, run_id: str, name: str, text: str) -> None:
        with tempfile.TemporaryDirectory(prefix="monosweep-artifact-") as tmp:
            (Path(tmp) / name).write_text(text)
            self.client.log_artifact(run_id, str(Path(tmp) / name))


def _metric_name(text: str) -> str:
    """``text`` with what MLflow does not take in a metric name (``=``, ``,`` ...) as ``:`` or ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", text.replace("=", ":"))


def _ms(seconds: float) -> int | None:
    """A wall-clock time in seconds as MLflow's milliseconds (None, for MLflow's "now", when unknown)."""
    return int(seconds * 1000) if seconds else None


def layer_curve(name: str, top1: Mapping[str, float]) -> list[Any]:
    """``name`` at step 1..5 = conv1..conv5: what the chart view draws as a curve over the layers."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(name, float(top1[layer]), now, i) for i, layer in enumerate(LAYERS, 1) if layer in top1]


def _datasets(inputs: Mapping[str, Mapping[str, str]]) -> list[Any]:
    """A trial's data (methods/provenance.py digests) as MLflow dataset inputs, each with what it was for."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    found = []
    for role, entry in sorted(inputs.items()):
        where = entry.get("source", entry["name"])
        kind = "s3" if where.startswith("s3://") else "local" if "/" in where else "builtin"
        dataset = Dataset(entry["name"], entry["digest"], kind, json.dumps({"uri": where}))
        found.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", role)]))
    return found


def _metrics(values: Mapping[str, float], step: int) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in sorted(values.items())]


def _epoch_metrics(epoch: Mapping[str, Any]) -> list[Any]:
    """An epoch's own metrics (step = its epoch number), as MLflow metrics."""
    return _metrics(trial_metrics(epoch), int(epoch.get(EPOCH, 0)))
