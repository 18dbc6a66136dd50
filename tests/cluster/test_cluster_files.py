"""The cluster files (Dockerfile, cluster/**) against the invariants whose drift breaks a deployment.

One Ray version (pyproject.toml's pin) in the image's base, every Ray image tag and every ``rayVersion``;
the Dockerfile's install is the README's; the RayJob's entrypoint is a valid ``monosweep run`` of a spec the
image holds; GPU worker groups ask Kubernetes for GPUs; no secret in any file. Every checker is also run on a
broken copy (``test_each_check_catches_a_drifted_copy``), so a check that can no longer fail fails.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from methods.errors import InputError
from sweep.cli import build_parser
from sweep.grid import expand
from sweep.spec import load_spec
from tests.support import REPO

CLUSTER = REPO / "cluster"
YAML_FILES = sorted(p for p in CLUSTER.rglob("*") if p.suffix in (".yaml", ".yml"))
TEXT_FILES = sorted(p for p in CLUSTER.rglob("*") if p.is_file() and "__pycache__" not in p.parts) + [
    REPO / "Dockerfile", REPO / ".dockerignore"]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def pinned_ray() -> str:
    found = re.findall(r'"ray\[[^\]]*\]==([0-9][^"]*)"', (REPO / "pyproject.toml").read_text())
    assert len(found) == 1, "pyproject.toml must pin Ray exactly once, as ray[...]==X.Y.Z"
    return found[0]


RAY = pinned_ray()


def docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def all_docs() -> list[Any]:
    return [d for p in YAML_FILES for d in docs(p)]


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of every mapping inside ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# ------------------------------------------------------------------------------------------ the checkers
def is_ray_image(image: str) -> bool:
    repo = image.rsplit(":", 1)[0]
    return repo.startswith("rayproject/ray") or repo.endswith("/monosweep")


def image_problems(documents: list[Any], version: str = RAY) -> list[str]:
    problems = []
    for key, value in walk(documents):
        if key in ("image", "head_image", "worker_image") and isinstance(value, str) and is_ray_image(value):
            repo, _, tag = value.rpartition(":")
            if repo.startswith("rayproject/ray-ml"):
                problems.append(f"{value}: rayproject/ray-ml is deprecated and no longer published")
            if not (tag == version or tag.startswith(f"{version}-")):
                problems.append(f"{value}: tag is not the pinned Ray {version}")
    return problems


def ray_cluster_specs(documents: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in documents:
        if doc.get("kind") == "RayCluster":
            yield f"RayCluster {doc['metadata'].get('name')}", doc["spec"]
        elif doc.get("kind") == "RayJob":
            yield f"RayJob {doc['metadata'].get('generateName') or doc['metadata'].get('name')}", \
                doc["spec"]["rayClusterSpec"]


def ray_version_problems(documents: list[Any], version: str = RAY) -> list[str]:
    return [f"{label}: rayVersion {spec.get('rayVersion')!r} is not the pinned {version!r}"
            for label, spec in ray_cluster_specs(documents) if str(spec.get("rayVersion")) != version]


def containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    return group["template"]["spec"]["containers"]


def gpu_problems(documents: list[Any]) -> list[str]:
    """Trials go to GPU workers only: the head takes none, every worker group gets and tolerates a GPU."""
    problems = []
    for label, spec in ray_cluster_specs(documents):
        if spec["headGroupSpec"]["rayStartParams"].get("num-cpus") != "0":
            problems.append(f"{label}: the head must not take trials (rayStartParams num-cpus: '0')")
        if any(not is_ray_image(c["image"]) for c in containers(spec["headGroupSpec"])):
            problems.append(f"{label}: a head container does not run the Ray image")
        groups = spec.get("workerGroupSpecs") or []
        if not groups:
            problems.append(f"{label}: no worker group")
        for group in groups:
            name = f"{label} group {group.get('groupName')}"
            limits = [(c.get("resources") or {}).get("limits") or {} for c in containers(group)]
            if not any(int(lim.get("nvidia.com/gpu", 0)) >= 1 for lim in limits):
                problems.append(f"{name}: no container requests nvidia.com/gpu")
            tolerations = group["template"]["spec"].get("tolerations") or []
            if not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
                problems.append(f"{name}: does not tolerate the nvidia.com/gpu taint of GPU nodes")
            if any(not is_ray_image(c["image"]) for c in containers(group)):
                problems.append(f"{name}: a container does not run the Ray image")
    return problems


def ray_up_problems(config: dict[str, Any]) -> list[str]:
    """`ray up`: a CPU head without trials, spot GPU workers, every node with an IAM profile (S3 without keys)."""
    problems = []
    head = config["head_node_type"]
    for name, node in config["available_node_types"].items():
        node_config = node["node_config"]
        if "IamInstanceProfile" not in node_config:
            problems.append(f"{name}: no IamInstanceProfile (S3 access must come from a role)")
        if name == head:
            if node.get("resources", {}).get("CPU") != 0:
                problems.append(f"{name}: the head must advertise CPU: 0 (no trials on it)")
            continue
        if not re.match(r"(g|p)\d", node_config.get("InstanceType", "")):
            problems.append(f"{name}: {node_config.get('InstanceType')} is not a GPU instance type")
        if node_config.get("InstanceMarketOptions", {}).get("MarketType") != "spot":
            problems.append(f"{name}: workers must be spot instances")
    return problems


def dockerfile_problems(text: str, version: str = RAY) -> list[str]:
    problems = []
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for line in re.findall(r"^FROM (\S+)", text, re.M):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), line)
        repo, _, tag = image.rpartition(":")
        if repo != "rayproject/ray":
            problems.append(f"FROM {image}: the base must be rayproject/ray (not ray-ml)")
        if not re.fullmatch(rf"{re.escape(version)}-py3\d+-cu\d+", tag):
            problems.append(f"FROM {image}: the tag must be {version}-py3XX-cuXXX, the pinned Ray on CUDA")
    return problems


def install_target(command: str) -> list[str]:
    """The arguments of ``pip install`` without the flags that only say where packages come from."""
    tokens, target = iter(shlex.split(command)), []
    for token in tokens:
        if token in ("-c", "--constraint", "--extra-index-url", "--index-url"):
            next(tokens)
        elif token != "--no-cache-dir":
            target.append(token)
    return target


def pip_installs(text: str) -> list[list[str]]:
    joined = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).replace("\\\n", " ")
    return [install_target(m) for m in re.findall(r"pip install ([^&\n`]+)", joined)]


def install_problems(dockerfile: str, readme: str) -> list[str]:
    ours, theirs = pip_installs(dockerfile), pip_installs(readme)
    if not theirs:
        return ["README.md shows no `pip install`"]
    if ours != [theirs[0]]:
        return [f"Dockerfile installs {ours}, the README {theirs[0]}: the image must install the way the README does"]
    return []


def entrypoint_problems(job: dict[str, Any], dockerfile: str = DOCKERFILE) -> list[str]:
    """A `monosweep run` of a spec that is in the repo and in the image, with storage that outlives the job."""
    argv = shlex.split(job["spec"]["entrypoint"])
    if argv[:1] != ["monosweep"]:
        return [f"entrypoint {argv[:1]} is not the monosweep command"]
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:
        return [f"entrypoint {' '.join(argv)} does not parse as a monosweep command"]
    if args.command != "run":
        return [f"entrypoint runs `monosweep {args.command}`, not `monosweep run`"]
    problems = []
    workdir = re.findall(r"^WORKDIR (\S+)", dockerfile, re.M)[-1]
    spec = Path(args.spec)
    if spec.is_absolute() and spec.is_relative_to(workdir):
        spec = spec.relative_to(workdir)
    if spec.is_absolute() or not (REPO / spec).is_file():
        return [f"spec {args.spec} is not a file of the repo under the image's WORKDIR {workdir}"]
    if not re.search(rf"^COPY .*\s{re.escape(spec.parts[0])}/? ", dockerfile, re.M):
        problems.append(f"spec {spec}: the Dockerfile does not copy {spec.parts[0]}/ into the image")
    try:
        expand(load_spec(REPO / spec), str(spec))
    except InputError as err:
        problems.append(f"spec {spec}: {err}")
    if not (args.storage or "").startswith("s3://"):
        problems.append("a RayJob's cluster is deleted with the job: its --storage must be s3://")
    return problems


AWS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
URL_PASSWORD = re.compile(r"://[^/\s:@]+:([^@\s/]+)@")
SECRET_NAME = r"[\w.-]*(?:passw(?:or)?d|secret|token|api[_-]?key)[\w.-]*"
ASSIGNMENT = re.compile(rf"(?i)(?<![\w${{(.-])({SECRET_NAME})[\"']?\s*[:=]\s*[\"']?([^\s\"',}}\]]*)")


def is_literal(value: str) -> bool:
    """A value written into the file, not a reference ($VAR, ${VAR}, $(VAR), $(command)), path or mapping."""
    return bool(value) and not value.startswith(("$", "~", "/", "{"))


def secret_problems(text: str, documents: list[Any]) -> list[str]:
    problems = [f"AWS access key id {m[0][:4]}..." for m in AWS_KEY.finditer(text)]
    problems += ["a private key"] * len(PRIVATE_KEY.findall(text))
    problems += [f"a password in a URL ({m[1][:2]}...)" for m in URL_PASSWORD.finditer(text) if is_literal(m[1])]
    problems += [f"{m[1]} = {m[2][:2]}..." for m in ASSIGNMENT.finditer(text) if is_literal(m[2])]
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            problems.append("a Kubernetes Secret with its values (create it with kubectl instead)")
    for key, value in walk(documents):
        if key == "env" and isinstance(value, list):
            problems += [f"env {e['name']} has a literal value (use valueFrom.secretKeyRef)" for e in value
                         if isinstance(e, dict) and re.fullmatch(f"(?i){SECRET_NAME}", str(e.get("name", "")))
                         and is_literal(str(e.get("value", "")))]
    return problems


# ------------------------------------------------------------------------------------------ the real files
def test_every_cluster_yaml_parses_and_the_expected_files_exist() -> None:
    names = {p.relative_to(CLUSTER).as_posix() for p in YAML_FILES}
    assert {"aws/ray-cluster.yaml", "k8s/raycluster.yaml", "k8s/rayjob.yaml", "mlflow/k8s.yaml"} <= names
    kinds = [d.get("kind") for d in all_docs()]
    assert {"RayCluster", "RayJob", "Deployment", "StatefulSet"} <= set(kinds)
    assert (CLUSTER / "README.md").is_file()


def test_ray_images_and_ray_versions_follow_the_pinned_ray() -> None:
    documents = all_docs()
    ray_images = [v for k, v in walk(documents) if k == "image" and isinstance(v, str) and is_ray_image(v)]
    assert len(ray_images) >= 5  # ray up + head and worker of the RayCluster and of the RayJob
    assert image_problems(documents) == []
    assert len(list(ray_cluster_specs(documents))) == 2
    assert ray_version_problems(documents) == []


def test_the_dockerfile_builds_on_the_pinned_ray_and_installs_like_the_readme() -> None:
    assert dockerfile_problems(DOCKERFILE) == []
    assert install_problems(DOCKERFILE, (REPO / "README.md").read_text()) == []
    # the dependency layer's package stubs and the source COPYs cover every package pyproject.toml installs
    include = re.search(r"include = \[([^\]]*)\]", (REPO / "pyproject.toml").read_text())
    assert include is not None
    for package in re.findall(r'"(\w+)\*?"', include[1]):
        assert f"{package}/__init__.py" in DOCKERFILE and f"COPY --chown=ray:users {package}/ {package}/" in DOCKERFILE
        assert f"!{package}/" in (REPO / ".dockerignore").read_text()


def test_the_image_keeps_rays_pins_of_what_it_has_and_nothing_else(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("image_constraints", CLUSTER / "image_constraints.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    compiled = """--extra-index-url https://download.pytorch.org/whl/cpu
aiohttp==3.11.16
    # via ray
matplotlib==3.7.4
    # via mlflow
tensorflow==2.15.0
Pandas==1.5.3 ; python_version < "3.12"
moto[s3]==4.2.12
torch==2.3.0+cpu
hyperopt @ git+https://github.com/hyperopt/hyperopt.git@2504ee6
"""
    installed = {"aiohttp", "pandas", "moto", "torch", "hyperopt", "ray"}
    assert module.constraints([compiled], installed) == [
        "aiohttp==3.11.16", 'Pandas==1.5.3 ; python_version < "3.12"', "moto==4.2.12"]
    # as the Dockerfile runs it: pins only what this environment has installed
    (tmp_path / "compiled.txt").write_text(compiled)
    done = subprocess.run([sys.executable, str(CLUSTER / "image_constraints.py"), str(tmp_path / "compiled.txt")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "aiohttp==3.11.16" in done.stdout and "tensorflow" not in done.stdout
    assert "torch" not in done.stdout and "extra-index-url" not in done.stdout
    assert "image_constraints.py" in DOCKERFILE
    assert "!cluster/image_constraints.py" in (REPO / ".dockerignore").read_text()


def test_the_rayjob_runs_a_valid_monosweep_command_on_a_spec_of_the_repo() -> None:
    jobs = [d for d in all_docs() if d.get("kind") == "RayJob"]
    assert jobs
    for job in jobs:
        assert entrypoint_problems(job) == []


def test_the_monosweep_commands_of_the_cluster_readme_parse() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", (CLUSTER / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0] for block in blocks for line in block.splitlines() if line.startswith("monosweep ")]
    assert len(lines) >= 2
    for line in lines:
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert (REPO / args.spec).is_file(), line


def test_the_ray_up_config_passes_rays_own_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    (config,) = docs(CLUSTER / "aws" / "ray-cluster.yaml")
    validate_config(prepare_config(config))  # what `ray up` checks first (defaults filled in, then the schema)


def test_gpu_workers_request_gpus_and_the_head_takes_no_trials() -> None:
    assert gpu_problems(all_docs()) == []
    (config,) = docs(CLUSTER / "aws" / "ray-cluster.yaml")
    assert ray_up_problems(config) == []


def mlflow_problems(server_dockerfile: str, pyproject: str, documents: list[Any]) -> list[str]:
    """The tracking server is the version its image is tagged with, inside the range our client is allowed."""
    from packaging.specifiers import SpecifierSet

    (server,) = re.findall(r"mlflow==([0-9][\w.]*)", server_dockerfile)
    problems = [f"{v}: the MLflow server image is not tagged {server}" for k, v in walk(documents)
                if k == "image" and isinstance(v, str) and "mlflow" in v.rsplit(":", 1)[0] and not v.endswith(server)]
    client = re.findall(r'"mlflow([<>=!~][^"]*)"', pyproject)
    if client and server not in SpecifierSet(client[0]):
        problems.append(f"MLflow server {server} is outside the client's range {client[0]} in pyproject.toml")
    return problems


def test_the_mlflow_server_matches_its_image_tags_and_the_client_range() -> None:
    assert mlflow_problems((CLUSTER / "mlflow" / "Dockerfile").read_text(), (REPO / "pyproject.toml").read_text(),
                           all_docs()) == []


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_secret_in_any_cluster_file(path: Path) -> None:
    assert secret_problems(path.read_text(), docs(path) if path in YAML_FILES else []) == []


# ------------------------------------------------------------------------------------------ broken copies
def _drifted(mutate: Any) -> list[Any]:
    documents = copy.deepcopy(all_docs())
    mutate(documents)
    return documents


def _of(documents: list[Any], kind: str) -> dict[str, Any]:
    return next(d for d in documents if d.get("kind") == kind)


def _set_worker_image(documents: list[Any]) -> None:
    containers(_of(documents, "RayCluster")["spec"]["workerGroupSpecs"][0])[0]["image"] = "x/monosweep:2.0.0"


def _no_gpu(documents: list[Any]) -> None:
    group = _of(documents, "RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    del containers(group)[0]["resources"]["limits"]["nvidia.com/gpu"]


def _spot_to_on_demand(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    del config["available_node_types"]["gpu_spot"]["node_config"]["InstanceMarketOptions"]
    return config


def _job(entrypoint: str) -> dict[str, Any]:
    job = copy.deepcopy(_of(all_docs(), "RayJob"))
    job["spec"]["entrypoint"] = entrypoint
    return job


AKIA = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key id, split so no scanner trips on this file
BROKEN = {
    "image tag": lambda: image_problems(_drifted(_set_worker_image)),
    "ray-ml image": lambda: image_problems([{"image": f"rayproject/ray-ml:{RAY}-py39"}]),
    "rayVersion": lambda: ray_version_problems(
        _drifted(lambda d: _of(d, "RayCluster")["spec"].update(rayVersion="2.59.0"))),
    "Dockerfile FROM": lambda: dockerfile_problems(DOCKERFILE.replace(f"RAY_VERSION={RAY}", "RAY_VERSION=2.59.0")),
    "Dockerfile ray-ml": lambda: dockerfile_problems("FROM rayproject/ray-ml:2.60.0-py311-cu128\n"),
    "install differs": lambda: install_problems(DOCKERFILE.replace(" -e .", " ."), (REPO / "README.md").read_text()),
    "no GPU request": lambda: gpu_problems(_drifted(_no_gpu)),
    "trials on head": lambda: gpu_problems(_drifted(
        lambda d: _of(d, "RayCluster")["spec"]["headGroupSpec"]["rayStartParams"].pop("num-cpus"))),
    "on-demand workers": lambda: ray_up_problems(_spot_to_on_demand(docs(CLUSTER / "aws" / "ray-cluster.yaml")[0])),
    "not monosweep": lambda: entrypoint_problems(_job("python -m sweep.cli run examples/quickstart.yaml")),
    "bad flag": lambda: entrypoint_problems(_job("monosweep run examples/quickstart.yaml --adress auto")),
    "missing spec": lambda: entrypoint_problems(_job("monosweep run /home/ray/monosweep/examples/nope.yaml "
                                                      "--storage s3://b/p")),
    "local storage": lambda: entrypoint_problems(_job("monosweep run examples/quickstart.yaml --address auto")),
    "spec not in image": lambda: entrypoint_problems(_job("monosweep run tests/plugins/noop_method.py "
                                                           "--storage s3://b/p")),
    "MLflow skew": lambda: mlflow_problems("RUN pip install mlflow==4.0.1", '"mlflow>=3.1,<4",', []),
    "MLflow tag": lambda: mlflow_problems("RUN pip install mlflow==3.17.2", "",
                                          [{"image": "x/monosweep-mlflow:3.1.0"}]),
    "AWS key": lambda: secret_problems(f"aws_access_key_id: {AKIA}\n", []),
    "URL password": lambda: secret_problems("--backend-store-uri=postgresql://mlflow:hunter2@db/mlflow\n", []),
    "password value": lambda: secret_problems("POSTGRES_PASSWORD: hunter2\n", []),
    "env password": lambda: secret_problems("", [{"env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}]),
    "Secret manifest": lambda: secret_problems("", [{"kind": "Secret", "stringData": {"x": "y"}}]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_catches_a_drifted_copy(case: str) -> None:
    assert BROKEN[case]() != []
