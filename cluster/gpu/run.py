"""The GPU kit's one command: prove the GPU paths in one short run, real Ray Tune sweeps with MLflow included.

On the GPU machine (the device tool's ``run``, the tree carrying ``.gpu-kit``), in this order, each phase within
its share of a time budget (default 510 s, inside the 9 minutes a run may take):

1. install the bundle: ``pip install --no-index --no-deps --target`` into a fresh folder put on PYTHONPATH;
2. preflight: import ray.tune, mlflow, pydantic, optuna, torch and the platform; check every bundled package's
   requirements against the image's versions; create the MLflow database every sweep then shares; meanwhile
   start the one local Ray head (``ray start --head`` on loopback) every sweep joins with ``--address``;
3. the CUDA tests (the test files that skip without CUDA, their tests named ``*cuda*``);
4. packing: the same RotNet trials at 64 px as real ``monosweep run``s at ``gpu: 0.25`` and at ``gpu: 1``, MLflow
   in sqlite: the throughput ratio and the platform's overhead per trial;
5. the generator, probe, MFU and step benchmarks, shortened;
6. science: one-image RotNet, DeepCluster and BiGAN and random trunks at 128 px, probed on the carried CIFAR-10
   subset, one seed per wave, waves added (``--set grid.seed=[...]``: only the new trials run) while the budget
   allows; then ``monosweep report``.

What comes back in OUT (the device returns at most 8 files): summary.md, summary.json, run.log, layers.png and
details.tar.gz (specs, every log, the ledgers, the report). ``--smoke`` runs the same command on a CPU at tiny sizes
(Ray's head is told it has one GPU, so the fractions schedule as they would there) and expands the GPU run's own
specs; to fit CI's time it checks the CUDA tests' selection and the benchmarks' options without running them (CI
runs every bench's ``--smoke`` in tests/bench), and runs one science wave of RotNet and random trunks, no report.

    python3 cluster/gpu/run.py "$OUT"                 # on the GPU machine (cluster/gpu/README.md)
    python cluster/gpu/run.py /tmp/kit-out --smoke    # anywhere, about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import measure
import procs
from kit import KIT, MANIFEST, PROBE_SET, PYTHON, REPO, KitError, guarded

BENCHES = {  # the GPU run's options (checked against each bench's source in --smoke)
    "bench_generator.py": ["--rounds", "1", "--seconds", "1"],
    "bench_probe.py": ["--rounds", "1", "--data", "{probe_set}"],
    "bench_mfu.py": ["--rounds", "1", "--seconds", "1", "--no-compile"],
    "bench_steps.py": ["--size", "128", "--batch", "128", "--seconds", "3"],
}
SIZES = {  # per mode: what the trials are; the smoke sizes only have to go through every path
    "gpu": {"pack_trials": 8, "pack_gpu": 0.25, "pack_cpu": 2,
            "pack_fixed": {"epochs": 2, "patches_per_epoch": 32768},
            "science_gpu": 0.25, "science_cpu": 2, "methods": ["rotnet", "deepcluster", "bigan", "random"],
            "science_fixed": {"img_size": 128, "epochs": 6, "patches_per_epoch": 32768, "probe_epochs": 12},
            "deepcluster": {"clusters": 500}, "probe_per_class": None, "min_wave_s": 60, "max_waves": 8,
            "report": True},
    "smoke": {"pack_trials": 2, "pack_gpu": 0.5, "pack_cpu": 1,
              "pack_fixed": {"epochs": 1, "patches_per_epoch": 64, "batch_size": 32, "head_hidden": 16,
                             "arch": "small"},
              "science_gpu": 0.5, "science_cpu": 1, "methods": ["rotnet", "random"],
              "science_fixed": {"img_size": 64, "epochs": 1, "patches_per_epoch": 64, "batch_size": 32,
                                "head_hidden": 16, "arch": "small", "probe_epochs": 1, "probe_batch_size": 64},
              "deepcluster": {"clusters": 4}, "probe_per_class": {"train": 12, "test": 6}, "min_wave_s": 0,
              "max_waves": 1, "report": False},  # (the report costs CI 10-15 s; tests/sweep/test_report.py has it)
}


class Run:
    """One run of the kit: its folders, the environment every step gets, the clock, and the summary."""

    def __init__(self, out: Path, kit: Path, budget: float, smoke: bool, work: Path | None) -> None:
        self.out, self.kit, self.budget, self.smoke = out, kit, budget, smoke
        self.mode = "smoke" if smoke else "gpu"
        self.sizes = SIZES[self.mode]
        self.start = time.monotonic()
        self.keep_work = work is not None  # a scratch folder of its own goes once the run has written OUT
        self.work = work or Path(tempfile.mkdtemp(prefix="monosweep-gpu-kit-"))
        self.logs, self.specs, self.runs = self.work / "logs", self.work / "specs", self.work / "runs"
        for folder in (self.out, self.logs, self.specs, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        self.site = self.work / "site"
        self.tracking = f"sqlite:///{self.work / 'mlflow.db'}"
        self.log_file = (self.out / "run.log").open("a")
        path = [str(REPO), str(self.site), os.environ.get("PYTHONPATH", "")]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path)), "PYTHONUNBUFFERED": "1",
                    "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        if smoke:  # fractional GPUs schedule on a logical GPU (if the head fails, on each sweep's own Ray too)
            self.env["RAY_OVERRIDE_RESOURCES"] = json.dumps({"GPU": 1})
        self.address: str | None = None  # the Ray head's, once it answers
        self.packing_specs: dict[str, tuple[Path, float]] = {}
        self.science_spec = self.specs / "kit-science.yaml"
        self.summary: dict[str, Any] = {"mode": self.mode, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                        "budget_s": budget, "phases": {}, "errors": []}

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def limit(self, cap: float, keep: float = 0.0) -> float:
        """A step's timeout: ``cap``, and on the GPU no more than leaves ``keep`` seconds of the budget for what
        follows. Smoke runs are sized to fit and never cut (a slow CI machine is not a failure)."""
        return cap if self.smoke else max(1.0, min(cap, self.left() - keep))

    def say(self, line: str) -> None:
        stamped = f"[{time.monotonic() - self.start:6.1f}s] {line}"
        print(stamped, flush=True)
        self.log_file.write(stamped + "\n")
        self.log_file.flush()

    def sh(self, name: str, command: list[str], timeout: float, on_timeout: list[str] | None = None
           ) -> tuple[int, float, str]:
        """A step, its output in logs/NAME.log: (exit code, seconds, output)."""
        log = self.logs / f"{name}.log"
        code, seconds = procs.run_logged(command, log, self.env, REPO, timeout, on_timeout)
        return code, seconds, log.read_text(errors="replace")

    def phase(self, name: str, ok: bool, seconds: float, note: str = "") -> None:
        self.summary["phases"][name] = {"ok": ok, "seconds": round(seconds, 1), "note": note}
        self.say(f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s{': ' + note if note else ''}")
        if not ok:
            self.summary["errors"].append(f"{name}: {note}")


def last_lines(text: str, n: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])[:400]


# ------------------------------------------------------------------------------------------------ phases
def install(run: Run) -> bool:
    wheels = sorted((run.kit / "wheels").glob("*.whl"))
    if run.smoke:
        run.phase("install", True, 0.0, f"skipped in --smoke: this Python's own packages ({len(wheels)} wheels built)")
        return True
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--target", str(run.site), *map(str, wheels)]
    code, seconds, output = run.sh("install", command, timeout=run.limit(120))
    note = f"{len(wheels)} wheels into {run.site}" if code == 0 else last_lines(output)
    run.phase("install", code == 0, seconds, note)
    return code == 0


def preflight(run: Run) -> bool:
    command = [sys.executable, str(REPO / "cluster" / "gpu" / "preflight.py"), "--site", str(run.site), "--tracking",
               run.tracking, *map(str, sorted(run.specs.rglob("*.yaml")))]
    code, seconds, output = run.sh("preflight", command, timeout=run.limit(180))
    found = re.search(r"^KIT-PREFLIGHT (.*)$", output, re.M)
    if code != 0 or found is None:
        run.phase("preflight", False, seconds, last_lines(output))
        return False
    report = json.loads(found[1])
    versions = report["versions"]
    run.summary["machine"] = {"python": report["python"], "gpu": report["gpu"], "cpus": os.cpu_count(),
                              "torch": versions.get("torch"), "ray": versions.get("ray"),
                              "mlflow": versions.get("mlflow-skinny"), "platform": platform.platform()}
    run.summary["preflight"] = report
    ok = not report["failed"] and (run.smoke or bool(report["cuda"]))
    note = "; ".join(f"{k}: {v}" for k, v in report["failed"].items()) or (
        f"{sum(report['specs'].values())} trials in {len(report['specs'])} specs expand")
    if not run.smoke and not report["cuda"]:
        note = "torch sees no CUDA GPU: this is the GPU command (on a CPU, use --smoke)"
    if report["problems"]:
        note = (note + "; " if note else "") + f"{len(report['problems'])} requirement warnings (summary.json)"
    run.phase("preflight", ok, seconds, note)
    return ok


def gpu_count() -> int | None:
    """GPUs as nvidia-smi lists them (None without nvidia-smi: Ray then detects them itself)."""
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    listed = sum(line.startswith("GPU ") for line in done.stdout.splitlines()) if done.returncode == 0 else 0
    return listed or None


def ray_head(run: Run) -> procs.RayHead:
    """The Ray head every sweep joins (started before the preflight, waited for after it); told the GPU count
    nvidia-smi sees rather than left to detect it; --smoke: one logical GPU."""
    cpus = os.cpu_count() or 1
    return procs.RayHead(run.env, run.logs / "ray-head.log", cpus, gpus=1 if run.smoke else gpu_count())


def join(run: Run, head: procs.RayHead) -> None:
    started = time.monotonic()
    if head.wait(run.limit(30)):
        run.address = head.address
        run.phase("ray-head", True, time.monotonic() - started, f"sweeps join {head.address}")
    else:  # each sweep then starts a Ray runtime of its own, as a plain `monosweep run` does
        run.phase("ray-head", False, time.monotonic() - started, "no answer: each sweep starts its own Ray")


def cuda_tests(run: Run) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                   if "torch.cuda.is_available()" in p.read_text())
    names = [n for f in files for n in re.findall(r"^def (test_\w*cuda\w*)", (REPO / f).read_text(), re.M)]
    if run.smoke:  # on a CPU they would only be skipped: check that the selection still finds them
        run.summary["cuda_tests"] = {"files": files, "selected": names}
        run.phase("cuda-tests", bool(names), 0.0, f"{len(names)} tests named *cuda* in {len(files)} files "
                  "(they run on the GPU)")
        return
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", *files]
    code, seconds, output = run.sh("cuda-tests", command, timeout=run.limit(150, keep=330))
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", output)}
    run.summary["cuda_tests"] = {"files": files, "selected": names, **counts}
    run.phase("cuda-tests", code == 0 and counts.get("passed", 0) > 0, seconds, last_lines(output, 1))


def bench_flags_missing(name: str, options: list[str]) -> list[str]:
    """The options of the GPU run's command line that the bench (or bench/_timing.py) does not define."""
    source = (REPO / "bench" / name).read_text() + (REPO / "bench" / "_timing.py").read_text()
    flags = [o for o in options if o.startswith("--")]
    return [f for f in flags if f'"{f}"' not in source and f'"{f.replace("--no-", "--", 1)}"' not in source]


def benches(run: Run) -> None:
    run.summary["benches"] = {}
    for name, options in BENCHES.items():
        missing = bench_flags_missing(name, options)
        if missing:
            run.phase(name, False, 0.0, f"bench/{name} has no {', '.join(missing)}: update BENCHES in "
                      "cluster/gpu/run.py")
            continue
        if run.smoke:  # (tests/bench/test_bench_smoke.py runs every bench's --smoke)
            run.summary["benches"][name] = {"ok": True, "seconds": 0.0, "args": options, "lines": ["options checked"]}
            continue
        if not run.smoke and run.left() < 180:
            run.phase(name, False, 0.0, "skipped: the budget is spent")
            continue
        args = [o.format(probe_set=run.kit / PROBE_SET) for o in options]
        code, seconds, output = run.sh(name.removesuffix(".py"), [sys.executable, str(REPO / "bench" / name), *args],
                                       timeout=run.limit(90, keep=150))
        lines = [line for line in output.splitlines() if re.search(r"\d(?:\.\d+)?x\b|^machine:", line)]
        run.summary["benches"][name] = {"ok": code == 0, "seconds": round(seconds, 1), "args": args,
                                        "lines": lines[-12:]}
        note = (lines or ["no ratio line"])[-1].strip()[:200] if code == 0 else last_lines(output)
        run.phase(name, code == 0 and bool(lines), seconds, note)


def write_spec(folder: Path, name: str, grid: dict[str, Any], fixed: dict[str, Any], resources: dict[str, float],
               storage: Path, per_method: dict[str, Any] | None = None) -> Path:
    spec = {"name": name, "grid": grid, "fixed": {"source": "sample:astronaut", "num_images": 1, "workers": 0,
                                                   "device": "auto", **fixed},
            "per_method": per_method or {}, "resources": resources,
            "max_concurrent_trials": max(1, round(1 / resources["gpu"])), "retries": 0, "storage": str(storage)}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec, indent=1) + "\n")  # (JSON is YAML)
    return path


def packing_specs(folder: Path, sizes: dict[str, Any], storage: Path) -> dict[str, tuple[Path, float]]:
    """The packing arms' specs, by arm: (spec, the GPU each trial reserves). Same trials, different names."""
    n, cpu = sizes["pack_trials"], sizes["pack_cpu"]
    fixed = {"method": "rotnet", "img_size": 64, "probe_epochs": 0, **sizes["pack_fixed"]}
    return {arm: (write_spec(folder, f"kit-packing-{arm}", {"seed": list(range(n))}, fixed,
                             {"cpu": cpu, "gpu": gpu}, storage), gpu)
            for arm, gpu in (("packed", sizes["pack_gpu"]), ("alone", 1.0))}


def science_spec(folder: Path, sizes: dict[str, Any], storage: Path, probe_set: Path) -> Path:
    fixed = {"augment": "full", "probe_data": str(probe_set), **sizes["science_fixed"]}
    per_method = {"deepcluster": sizes["deepcluster"]} if "deepcluster" in sizes["methods"] else {}
    return write_spec(folder, "kit-science", {"method": sizes["methods"], "seed": [0]}, fixed,
                      {"cpu": sizes["science_cpu"], "gpu": sizes["science_gpu"]}, storage, per_method)


def write_specs(run: Run) -> None:
    """Every spec the run will use, before the preflight expands them all (each trial config checked, nothing run).
    --smoke writes the GPU run's own specs too (under specs/gpu/): a value that would fail there fails here first."""
    run.packing_specs = packing_specs(run.specs, run.sizes, run.runs)
    run.science_spec = science_spec(run.specs, run.sizes, run.runs, probe_data(run))
    if run.smoke:
        packing_specs(run.specs / "gpu", SIZES["gpu"], run.runs / "gpu")
        science_spec(run.specs / "gpu", SIZES["gpu"], run.runs / "gpu", run.kit / PROBE_SET)


def sweep(run: Run, spec: Path, label: str, timeout: float, *sets: str) -> float:
    """One real ``monosweep run`` of a spec (on the kit's Ray head, MLflow in the kit's sqlite database), stopped
    cleanly by ``monosweep stop`` if it outlives ``timeout``; returns its wall seconds."""
    base = [sys.executable, "-m", "sweep.cli"]
    overrides = [a for s in sets for a in ("--set", s)]
    address = ["--address", run.address] if run.address else []
    command = [*base, "run", str(spec), "--tracking-uri", run.tracking, *address, *overrides]
    stop = [*base, "stop", str(spec), "--wait", "20", *overrides]
    code, seconds, output = run.sh(label, command, timeout, on_timeout=stop)
    run.say(f"{label}: exit {code} after {seconds:.1f} s: {last_lines(output, 1)}")
    return seconds


def packing(run: Run) -> None:
    sizes = run.sizes
    n, fraction = sizes["pack_trials"], sizes["pack_gpu"]
    fixed = {"method": "rotnet", "img_size": 64, "probe_epochs": 0, **sizes["pack_fixed"]}
    arms: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    # The packed arm runs first, so that any warm-up (caches, compiled kernels) favours the other arm.
    for arm, (spec, gpu) in run.packing_specs.items():
        wall = sweep(run, spec, spec.stem, timeout=run.limit(240, keep=250))
        arms[arm] = measure.sweep_figures(measure.records(run.runs / spec.stem), wall, max(1, round(1 / gpu)))
    result = measure.packing(arms["packed"], arms["alone"], n * fixed["epochs"] * fixed["patches_per_epoch"])
    result.update(fraction=fraction, trials=n, img_size=64, fixed=fixed,
                  overhead_per_trial_s=arms["alone"].get("overhead_per_trial_s"))
    run.summary["packing"] = result
    ok = "ratio_wall" in result
    note = (f"packed/alone {result.get('ratio_wall')}x (wall), {result.get('ratio_span')}x (span); overhead "
            f"{result['overhead_per_trial_s']} s/trial alone" if ok else
            f"finished {arms['packed'].get('finished')} and {arms['alone'].get('finished')} of {n} trials")
    run.phase("packing", ok, time.monotonic() - started, note)


def probe_data(run: Run) -> Path:
    """The carried CIFAR-10 subset; in --smoke a tiny one made here the same way (`demo` without the tar)."""
    per_class = run.sizes["probe_per_class"]
    if per_class is None:
        return run.kit / PROBE_SET
    import bundle  # (only here: bundle.py is the CPU machine's)

    try:
        source = bundle.cifar_source(None)
    except KitError:
        return Path("demo")
    target = bundle.CACHE / "smoke" / "cifar10-tiny.tar.gz"  # (rebuilt only when the source or the counts change)
    bundle.probe_set(source, target, per_class)
    return target


def science(run: Run) -> None:
    name, sizes, spec = "kit-science", run.sizes, run.science_spec
    probe_set = Path(json.loads(spec.read_text())["fixed"]["probe_data"])
    concurrency = max(1, round(1 / sizes["science_gpu"]))
    started, waves, last = time.monotonic(), [], 0.0
    reserve = 30.0  # for the report and the summary
    while len(waves) < sizes["max_waves"]:
        room = run.limit(600, keep=reserve)
        if not run.smoke and room < max(sizes["min_wave_s"], 1.15 * last):
            break
        seeds = list(range(len(waves) + 1))
        last = sweep(run, spec, f"{name}-wave{len(waves)}", room, f"grid.seed={json.dumps(seeds)}")
        rows = measure.records(run.runs / name)
        waves.append({"seeds": seeds, "wall_s": round(last, 1),
                      "finished": sum(r.get("status") == "finished" for r in rows)})
    rows = measure.records(run.runs / name)
    figures = measure.sweep_figures(rows, sum(w["wall_s"] for w in waves), concurrency)
    figures.update(img_size=sizes["science_fixed"]["img_size"], probe_set=probe_set.name, waves=waves, spec=spec.name,
                   per_layer=measure.per_layer(rows))
    run.summary["science"] = figures
    ok = bool(figures["per_layer"])
    note = f"{figures.get('finished', 0)} trials finished in {len(waves)} waves" if waves else "no wave fitted"
    run.phase("science", ok, time.monotonic() - started, note)
    if ok and (run.smoke or run.left() > 15):
        report(run, spec, waves[-1]["seeds"])


def report(run: Run, spec: Path, seeds: list[int]) -> None:
    command = [sys.executable, "-m", "sweep.cli", "report", str(spec), "--set", f"grid.seed={json.dumps(seeds)}",
               "--tracking-uri", run.tracking]
    if not run.sizes["report"]:  # --smoke: only check that `report` still takes these options (help is instant)
        code, seconds, output = run.sh("report-help", [*command[:4], "--help"], timeout=60)
        missing = [o for o in command if o.startswith("--") and o not in output]
        run.phase("report", code == 0 and not missing, seconds, f"no {', '.join(missing)} in `monosweep report "
                  "--help`" if missing else "options checked (the report runs on the GPU)")
        return
    code, seconds, output = run.sh("report", command, timeout=run.limit(90, keep=5))
    plot = run.runs / "kit-science" / "report" / "layers.png"
    if code == 0 and plot.is_file():
        shutil.copyfile(plot, run.out / "layers.png")
    run.phase("report", code == 0 and plot.is_file(), seconds, "layers.png" if plot.is_file() else last_lines(output))


# ------------------------------------------------------------------------------------------------ the end
def finish(run: Run) -> int:
    run.summary["seconds"] = round(time.monotonic() - run.start, 1)
    run.summary["mlflow_runs"] = measure.mlflow_runs(run.work / "mlflow.db")
    (run.out / "summary.json").write_text(json.dumps(run.summary, indent=1) + "\n")
    (run.out / "summary.md").write_text(measure.markdown(run.summary))
    with tarfile.open(run.out / "details.tar.gz", "w:gz") as archive:
        for folder in (run.specs, run.logs):
            archive.add(folder, arcname=folder.name)
        for sweep_dir in sorted(p for p in run.runs.iterdir() if p.is_dir()):
            for part in ("trials", "report"):
                if (sweep_dir / part).is_dir():
                    archive.add(sweep_dir / part, arcname=f"runs/{sweep_dir.name}/{part}")
    run.say(f"summary in {run.out / 'summary.md'}; {len(run.summary['errors'])} errors")
    run.log_file.close()
    if not run.keep_work:
        shutil.rmtree(run.work, ignore_errors=True)
    return 1 if run.summary["errors"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="where the summary, the log and the figures go ($OUT on the device)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on a CPU (what CI runs)")
    parser.add_argument("--kit", type=Path, default=KIT, help="the bundle's folder (default: .gpu-kit)")
    parser.add_argument("--budget", type=float, default=510.0, help="seconds for everything on the GPU (default: "
                        "510, inside the 9 minutes a device run may take); --smoke runs are never cut")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new one under the temp dir)")
    parser.add_argument("--skip", default="", help="phases to leave out, comma-separated: tests, packing, "
                        "benches, science")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    unknown = skip - {"tests", "packing", "benches", "science"}
    if unknown:
        raise KitError(f"--skip {','.join(sorted(unknown))}: choose from tests, packing, benches, science")
    if not args.smoke:
        if sys.version_info[:2] != tuple(map(int, PYTHON.split("."))):
            raise KitError(f"the bundle is for CPython {PYTHON}, this is {platform.python_version()}: run this with "
                           "the GPU image's python3, or add --smoke on a CPU")
        if not (args.kit / MANIFEST).is_file():
            raise KitError(f"no {args.kit / MANIFEST}: build the kit on the CPU machine with "
                           "`python cluster/gpu/bundle.py` and carry .gpu-kit")
    run = Run(args.out, args.kit, args.budget, args.smoke, args.work)
    run.say(f"GPU kit, {run.mode} mode, budget {run.budget:.0f} s, work folder {run.work}")
    head = None
    try:
        if install(run):
            head = ray_head(run)
            write_specs(run)
            if preflight(run):
                join(run, head)
                if "tests" not in skip:
                    cuda_tests(run)
                if "packing" not in skip:
                    packing(run)
                if "benches" not in skip:
                    benches(run)
                if "science" not in skip:
                    science(run)
    finally:
        if head is not None:
            head.stop()
    return finish(run)


if __name__ == "__main__":
    sys.exit(guarded("run", main))
