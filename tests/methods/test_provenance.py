"""Provenance that survives installation: the commit is baked into a built package (a wheel, the Docker image,
neither of which has .git), and the digests of the data are content digests."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from methods.provenance import BUILD_FILE, digest
from tests.support import REPO


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def _version_in(path: Path, cwd: Path) -> str:
    """code_version() as a copy of the package installed at ``path`` reports it, run outside any checkout."""
    probe = subprocess.run([sys.executable, "-c", "from methods.provenance import code_version; print(code_version())"],
                           cwd=cwd, env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"}, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    return probe.stdout.strip()


def test_a_built_wheel_carries_its_commit_and_reports_it_without_git(tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for name in files:  # the working tree as it is (committed or not), as a repository of its own
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _git(source, "init", "-q")
    _git(source, "add", "-A")
    _git(source, "commit", "-q", "-m", "snapshot")
    sha = _git(source, "rev-parse", "--short=12", "HEAD")

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("monosweep-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert json.loads(archive.read(f"methods/{BUILD_FILE}")) == {"commit": sha}
        archive.extractall(tmp_path / "installed")
    assert _version_in(tmp_path / "installed", tmp_path).endswith(f"+g{sha}")


def test_the_docker_image_bakes_the_commit_it_is_given(tmp_path: Path) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG MONOSWEEP_COMMIT" in dockerfile and "--build-arg MONOSWEEP_COMMIT=" in dockerfile
    command = next(line for line in dockerfile.splitlines() if "methods.provenance" in line)
    assert 'python -m methods.provenance --bake "$MONOSWEEP_COMMIT"' in command
    package = tmp_path / "image" / "methods"
    package.mkdir(parents=True)
    shutil.copy2(REPO / "methods" / "provenance.py", package / "provenance.py")
    (package / "__init__.py").write_text("")
    baked = subprocess.run([sys.executable, "-m", "methods.provenance", "--bake", "0123456789ab"], cwd=package.parent,
                           capture_output=True, text=True, timeout=60)
    assert baked.returncode == 0 and "baked commit 0123456789ab" in baked.stdout, baked.stderr
    assert _version_in(package.parent, tmp_path).endswith("+g0123456789ab")
    unknown = subprocess.run([sys.executable, "-m", "methods.provenance", "--bake", "unknown"], cwd=package.parent,
                             capture_output=True, text=True, timeout=60, env={"PATH": "/nonexistent"})
    assert unknown.returncode == 0 and "nothing baked" in unknown.stdout  # (no git, no commit: the last bake stays)


def test_digests_follow_content_not_identity() -> None:
    a = torch.arange(12, dtype=torch.uint8).view(3, 4)
    assert digest([a, "x"]) == digest([a.clone(), "x"])
    assert digest([a, "x"]) != digest([a, "y"])
    changed = a.clone()
    changed[2, 3] += 1
    assert digest([a]) != digest([changed])
    assert digest([a]) != digest([a.view(4, 3)])  # the shape is part of the content
