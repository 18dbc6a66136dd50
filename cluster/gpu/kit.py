"""What the GPU kit's two commands share: the GPU image's packages, the wheels it lacks, where the kit lives.

Standard library only: ``bundle.py`` runs in the project's environment on the CPU machine, ``run.py`` in the GPU
image's own Python before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as scripts: the project's own standard-library modules below
from methods.errors import InputError, guarded  # noqa: E402, F401 - (after the path it needs; guarded: for run.py, bundle.py)

KIT = REPO / ".gpu-kit"  # ignored (.gitignore); the device tool's `carry` takes it along
PYTHON = "3.12"  # the GPU image's Python (3.12.3, /opt/torch/.venv)
PROBE_SET = "data/cifar10-probe.tar.gz"  # under KIT
MANIFEST = "manifest.json"  # under KIT
LIMIT_MIB = 60.0  # the limit for project + bundle + data (the device copies at most 64 MiB)

# The GPU image's Python packages, as the device tool's KINDS.md lists them (read 2026-11-17). Versions are
# known only for a few (numpy 2.5.2, torch 2.11.0, torchvision 0.26.0, triton 3.6.0): `run.py` prints the rest
# there and checks every bundled package's requirements against them before anything runs.
IMAGE = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp
""".split())

# The wheels the bundle carries, at the versions the project's environment tests with (its .venv, 2026-12-02), for
# CPython 3.12 on manylinux x86-64. Ray's version is not here: it is pyproject.toml's one pin (`ray_pin`).
WHEELS = {
    # ray and what it needs beyond the image
    "jsonschema": "4.26.0", "jsonschema-specifications": "2025.9.1", "referencing": "0.37.0", "rpds-py": "2026.9.1",
    "tensorboardx": "2.6.5",  # ray[tune]: Tune's TensorBoard logger, on by default when it is installed
    # the MLflow client (mlflow-skinny) and its sqlite store
    "mlflow-skinny": "3.17.2", "cachetools": "7.3.3", "databricks-sdk": "0.162.0", "fastapi": "0.165.0",
    "starlette": "1.10.0", "uvicorn": "0.54.0", "gitpython": "3.2.1", "gitdb": "4.0.12", "smmap": "5.0.3",
    "importlib-metadata": "9.1.0", "opentelemetry-api": "1.45.2", "opentelemetry-sdk": "1.45.2",
    "opentelemetry-proto": "1.45.2", "opentelemetry-semantic-conventions": "0.66b2", "python-dotenv": "1.2.4",
    "sqlparse": "0.6.1", "google-auth": "2.63.0", "pyasn1": "0.6.5", "pyasn1-modules": "0.4.2",
    "sqlalchemy": "2.1.9", "alembic": "1.20.1", "mako": "1.4.3", "cryptography": "50.0.2", "cffi": "2.1.1",
    "pycparser": "3.12",
    # pydantic (typing-extensions too: pydantic needs >= 4.16, newer than the image's may be)
    "pydantic": "2.14.4", "pydantic-core": "2.50.5", "annotated-types": "0.8.0", "typing-inspection": "0.4.5",
    "typing-extensions": "4.16.0",
    # optuna, and the project's own small dependencies
    "optuna": "5.0.0", "colorlog": "6.12.0", "tenacity": "9.2.1", "argcomplete": "3.7.2",
}

# Declared requirements the bundle leaves out on purpose, and why that is safe for what the kit runs (local Ray,
# local storage, MLflow in sqlite). `bundle.py` fails on any other requirement that neither it nor the image has.
LEFT_OUT = {
    "boto3": "S3 storage only (botocore alone is a 17 MB wheel); the kit's sweeps store locally",
    "mlflow": "the full package is the tracking server and UI (Flask, gunicorn, ...); sweeps use the client, "
              "mlflow-skinny",
}
# ray[default] (the dashboard and the job server of `monosweep submit`) is not carried either: a local
# `monosweep run` starts Ray with include_dashboard=False. Its extras are simply never asked for (EXTRAS).
EXTRAS = {"ray": {"tune"}}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ray_pin() -> str:
    """Ray's version: pyproject.toml pins it exactly once (cluster images and manifests follow the same pin)."""
    found = re.findall(r'"ray\[[^\]]*\]==([0-9][^"]*)"', (REPO / "pyproject.toml").read_text())
    if len(found) != 1:
        raise KitError("pyproject.toml must pin Ray exactly once, as ray[...]==X.Y.Z")
    return found[0]


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


class KitError(InputError):
    """A problem the user can fix; ``str(err)`` is one line that says how (``guarded`` prints it)."""
