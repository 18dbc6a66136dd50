"""The GPU kit (cluster/gpu/) cannot rot while no GPU is around: its command runs end to end on the CPU
(``--smoke``), and its bundle installs into a clean CPython 3.12 beside the GPU image's packages and runs a Ray Tune
sweep with MLflow from there.

What the second test proves, and what not: the trimmed wheels install with ``--no-index --no-deps`` and every
requirement they declare is met by the bundle plus the image-side packages (pinned here, installed without
dependencies: a missing one fails the import); ray.tune (its stripped raylet and GCS), MLflow's sqlite store, pydantic
and optuna work; the platform's torch-free modules import. Torch for 3.12 is a multi-GB download, so the platform's
torch side (spec, driver, methods) runs under 3.12 only on the GPU machine itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import REPO

KIT_DIR = REPO / "cluster" / "gpu"
LAYERS = {"conv1", "conv2", "conv3", "conv4", "conv5"}
# The image-side packages the imports need, as the GPU image has them (KINDS.md lists names; versions known for
# numpy; the rest are the project's environment's). typing-extensions is older than pydantic's floor on purpose:
# the bundle's own copy must win.
IMAGE_SIDE = ("numpy==2.5.2 pandas==3.1.1 python-dateutil==2.9.0.post0 six==1.17.0 pyarrow==25.0.1 click==8.5.1 "
              "filelock==4.3.1 msgpack==1.2.4 packaging==26.4 protobuf==7.36.2 pyyaml==6.0.4 requests==2.34.2 "
              "idna==3.20 certifi==2026.10.19.post1 charset-normalizer==3.5.3 urllib3==2.8.0 aiohttp==3.14.5 "
              "aiohappyeyeballs==2.7.1 aiosignal==1.4.0 attrs==26.1.0 frozenlist==1.8.0 multidict==7.2.1 "
              "propcache==0.5.4 yarl==1.25.1 grpcio==1.85.3 anyio==4.16.0 cloudpickle==3.1.3 markupsafe==3.0.4 "
              "tqdm==4.70.1 zipp==4.1.2 fsspec==2026.9.0 h11==0.16.0 prometheus-client==0.26.0 psutil==7.2.2 "
              "annotated-doc==0.0.7 typing-extensions==4.12.2").split()
PROBE = r"""
import importlib.util, json, os, sys, tempfile
import ray, ray.tune, mlflow, pydantic, optuna
import sweep.ledger.records, sweep.storage
from ray import tune
assert importlib.util.find_spec("torch") is None, "torch is importable: the environment is not clean"
site = os.environ["KIT_SITE"]
assert all(m.__file__.startswith(site) for m in (ray, mlflow, pydantic, optuna)), "a package came from elsewhere"
import typing_extensions
assert typing_extensions.__file__.startswith(site)
work = tempfile.mkdtemp()
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=f"sqlite:///{work}/mlflow.db")
experiment = client.create_experiment("kit", artifact_location=f"file://{work}/artifacts")
parent = client.create_run(experiment, tags={"monosweep.role": "sweep"}).info.run_id
from mlflow.entities import Metric
client.log_batch(parent, metrics=[Metric("probe.conv1.top1", 12.5, 0, 0)])
client.log_text(parent, "name: kit", "spec.yaml")
found = client.search_runs([experiment], filter_string="tags.`monosweep.role` = 'sweep'")
ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False,
         runtime_env={"env_vars": {"MONOSWEEP_KIT": "1"}})
def trainable(config):
    for step in range(2):
        with tempfile.TemporaryDirectory() as folder:
            open(os.path.join(folder, "state"), "w").write(str(step))
            tune.report({"score": config["x"] * step, "env": os.environ.get("MONOSWEEP_KIT")},
                        checkpoint=tune.Checkpoint.from_directory(folder))
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch
tuner = tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)},
                   tune_config=tune.TuneConfig(num_samples=2, metric="score", mode="max",
                                               search_alg=ConcurrencyLimiter(OptunaSearch(seed=0), 2)),
                   run_config=tune.RunConfig(storage_path=f"{work}/tune", name="kit", verbose=0))
results = tuner.fit()
print("KIT-PROBE " + json.dumps({"versions": [ray.__version__, mlflow.__version__, pydantic.__version__,
                                              optuna.__version__], "mlflow_runs": len(found),
                                 "trials": len(results), "errors": results.num_errors,
                                 "env": sorted({r.metrics.get("env") for r in results}),
                                 "checkpoints": sum(r.checkpoint is not None for r in results)}))
ray.shutdown()
"""


def _kit_module(name: str) -> ModuleType:
    """One of the kit's scripts as a module (they import each other as siblings, from their own folder)."""
    spec = importlib.util.spec_from_file_location(f"gpu_kit_{name}", KIT_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses and pickling look modules up by name)
    sys.path.insert(0, str(KIT_DIR))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(KIT_DIR))
    return module


def _python312() -> str | None:
    """A real CPython 3.12 with venv and ssl: pyenv's, then PATH's."""
    candidates = sorted((Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python3.12"), reverse=True)
    candidates += [Path(p) for p in (shutil.which("python3.12"), "/usr/bin/python3.12") if p]
    for candidate in candidates:
        done = subprocess.run([str(candidate), "-c", "import sys, venv, ssl, lzma; print(sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
            return str(candidate)
    return None


def _image_venv(python: str, cache: Path) -> Path:
    """A venv of the image-side packages (cached by their pins; each installed without dependencies)."""
    key = hashlib.sha256(" ".join([python, *IMAGE_SIDE]).encode()).hexdigest()[:12]
    venv = cache / f"image-venv-{key}"
    ready = venv / ".ready"
    if not ready.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                               "--only-binary=:all:", *IMAGE_SIDE], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"installing the image-side packages failed:\n{done.stderr[-2000:]}"
        ready.write_text("ok\n")
    return venv


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_smoke_run_measures_packing_and_probes_every_layer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(KIT_DIR / "run.py"), str(out), "--smoke", "--work",
                           str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, f"run.py --smoke exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == []
    assert summary["phases"]["ray-head"]["ok"], "the sweeps did not run on the kit's Ray head"
    packing = summary["packing"]
    assert packing["packed"]["finished"] == packing["alone"]["finished"] == 2
    assert packing["ratio_wall"] > 0 and packing["ratio_span"] > 0 and packing["overhead_per_trial_s"] > 0
    science = summary["science"]
    assert set(science["per_layer"]) == {"rotnet", "random"}  # (the GPU run has deepcluster and bigan too)
    for layers in science["per_layer"].values():
        assert set(layers) == LAYERS and all(0 <= v["mean"] <= 100 and v["n"] == 1 for v in layers.values())
    assert science["probe_set"] in ("cifar10-tiny.tar.gz", "demo") and science["waves"][0]["finished"] == 2
    # MLflow mirrored each sweep: its parent run and one run per trial
    runs = summary["mlflow_runs"]
    assert (runs["kit-packing-packed"], runs["kit-packing-alone"], runs["kit-science"]) == (3, 3, 3)
    # the preflight expanded the GPU run's own specs too (8 + 8 packing trials, 4 science trials)
    assert summary["preflight"]["specs"] == {"gpu/kit-packing-packed.yaml": 8, "gpu/kit-packing-alone.yaml": 8,
                                             "gpu/kit-science.yaml": 4, "kit-packing-packed.yaml": 2,
                                             "kit-packing-alone.yaml": 2, "kit-science.yaml": 2}
    assert summary["cuda_tests"]["selected"] and set(summary["benches"]) == {"bench_generator.py", "bench_probe.py",
                                                                             "bench_mfu.py", "bench_steps.py"}
    page = (out / "summary.md").read_text()
    assert "Throughput ratio packed / alone" in page and "| rotnet | 1 |" in page
    returned = sorted(p.name for p in out.iterdir())
    assert returned == ["details.tar.gz", "run.log", "summary.json", "summary.md"]  # the device returns <= 8 files
    with tarfile.open(out / "details.tar.gz") as archive:
        names = set(archive.getnames())
    assert {"specs/kit-science.yaml", "logs/kit-science-wave0.log", "logs/preflight.log"} <= names


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_bundle_installs_into_a_clean_python_312_and_runs_a_tune_sweep_with_mlflow(tmp_path: Path,
                                                                                     cifar_tar: Path) -> None:
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 with venv and ssl here (looked in ~/.pyenv/versions, PATH, /usr/bin): install "
                    "one (e.g. `pyenv install 3.12`) to check the GPU kit's bundle")
    bundle = _kit_module("bundle")
    kit = tmp_path / "kit"
    manifest = bundle.build(kit, bundle.CACHE, {"train": 1000, "test": 200}, str(cifar_tar), bundle.LIMIT_MIB)
    wheels = sorted((kit / "wheels").glob("*.whl"))
    assert len(wheels) == len(manifest["wheels"]) == len(bundle.WHEELS) + 1
    assert sum(manifest["sizes"].values()) <= bundle.LIMIT_MIB * 2**20
    with tarfile.open(kit / "data" / "cifar10-probe.tar.gz") as archive:
        names = archive.getnames()
    assert len(names) == 12_000 and names == sorted(n for n in names if n.startswith("train/")) + sorted(
        n for n in names if n.startswith("test/"))  # the order the probe reads them in: no seeking back
    venv = _image_venv(python, bundle.CACHE)
    site = tmp_path / "site"
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                          "--no-compile", "--target", str(site), *map(str, wheels)], capture_output=True, text=True,
                         timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert not (site / "ray" / "jars").exists() and os.access(site / "ray/core/src/ray/raylet/raylet", os.X_OK)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{site}", "KIT_SITE": str(site), "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONNOUSERSITE": "1"}  # (KIT_SITE: for PROBE's own checks)
    checked = subprocess.run([str(venv / "bin" / "python"), str(KIT_DIR / "preflight.py"), "--site", str(site),
                              "--requirements-only"], env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert json.loads(re.search(r"^KIT-PREFLIGHT (.*)$", checked.stdout, re.M)[1]) == {"problems": []}
    helped = subprocess.run([str(venv / "bin" / "python"), "-m", "sweep.cli", "--help"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "monosweep" in helped.stdout, helped.stderr[-2000:]
    probed = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    found = re.search(r"^KIT-PROBE (.*)$", probed.stdout, re.M)
    assert probed.returncode == 0 and found, f"{probed.stdout[-2000:]}\n{probed.stderr[-3000:]}"
    report = json.loads(found[1])
    pins = bundle.wanted()
    assert report["versions"] == [pins["ray"], pins["mlflow-skinny"], pins["pydantic"], pins["optuna"]]
    assert report == {**report, "mlflow_runs": 1, "trials": 2, "errors": 0, "env": ["1"], "checkpoints": 2}
