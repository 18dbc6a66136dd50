"""Build the GPU kit on the CPU machine: the wheels the GPU image lacks, trimmed, and a CIFAR-10 probe subset.

The GPU machine reaches no package index and takes a working tree of at most 64 MiB, carried paths included.
This fetches (``pip download``, CPython 3.12, manylinux x86-64, no dependencies resolved: ``kit.WHEELS`` names
every one) what the image lacks, checks that every requirement they declare is either bundled, in the image or
left out for a stated reason (``kit.LEFT_OUT``), trims the wheels, builds a balanced CIFAR-10 subset from the
offline export, and checks that project + bundle + data stay under the limit. Everything lands in ``.gpu-kit/``
(ignored; the device tool's ``carry`` takes it along). Downloads and trimmed wheels are cached, so a rerun takes
seconds.

Trimming: Ray loses the parts a local Tune sweep never loads (``RAY_DROPS``); every binary wheel loses its
symbol tables (``strip --strip-unneeded``: what the loader needs stays; crash backtraces lose function names).
(Storing the big binaries LZMA-compressed would save another 10 MiB, at 70 s more per cold build on 2 cores.)

    python cluster/gpu/bundle.py                  # -> .gpu-kit/{wheels/, data/, manifest.json}
    python cluster/gpu/bundle.py --train-per-class 500 --test-per-class 100
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kit import (
    EXTRAS,
    IMAGE,
    KIT,
    LEFT_OUT,
    LIMIT_MIB,
    MANIFEST,
    PROBE_SET,
    PYTHON,
    REPO,
    WHEELS,
    KitError,
    canonical,
    guarded,
    mib,
    ray_pin,
)

CACHE = Path(os.environ.get("MONOSWEEP_GPU_KIT_CACHE", Path.home() / ".cache" / "monosweep-gpu-kit"))
# Parts of Ray a local Tune sweep never loads: no module under them was imported by any process (driver, trial
# workers, raylet's agents) of a monosweep sweep with MLflow, checked with an import hook; where Ray's own code
# reaches for them it copes with their absence (Tune's registry imports ray.rllib inside try/except ImportError,
# the dashboard's Serve module answers 501).
RAY_DROPS = {
    "ray/jars/": "the Java worker (cross-language tasks); no Java runs here",
    "ray/dashboard/client/": "the dashboard's web front end; `monosweep run` starts Ray with include_dashboard=False",
    "ray/rllib/": "RLlib, never imported by Tune or the core",
    "ray/serve/": "Ray Serve, never imported by Tune or the core",
    "ray/llm/": "Ray's LLM library, never imported by Tune or the core",
}
RECIPE = hashlib.sha256(json.dumps([sorted(RAY_DROPS), "strip --strip-unneeded", 4]).encode()).hexdigest()[:12]
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
MARKERS = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.3", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64", "os_name": "posix"}
CIFAR_CANDIDATES = (os.environ.get("MONOSWEEP_CIFAR10_TAR", ""),
                    str(REPO.parent / "shared" / "data" / "cifar10-jpeg.tar"))


# ------------------------------------------------------------------------------------------------ the wheels
def wanted() -> dict[str, str]:
    return {"ray": ray_pin(), **WHEELS}


def _parts(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return canonical(name), version


def download(pins: dict[str, str], cache: Path) -> dict[str, Path]:
    """Each pinned wheel, from the cache or fetched by one ``pip download`` for all that are missing."""
    folder = cache / "wheels"
    folder.mkdir(parents=True, exist_ok=True)

    def cached() -> dict[str, Path]:
        found = {_parts(w): w for w in folder.glob("*.whl")}
        return {name: found[(name, version)] for name, version in pins.items() if (name, version) in found}

    have = cached()
    missing = [f"{name}=={version}" for name, version in pins.items() if name not in have]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", PYTHON, "--implementation", "cp", "--dest", str(folder)]
        command += [f"--platform={p}" for p in PLATFORMS] + missing
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line] or done.stderr.splitlines()[-1:]
            raise KitError(f"pip download failed ({'; '.join(errors)[:300]}): check the pins in cluster/gpu/kit.py "
                           "and that PyPI is reachable")
        have = cached()
    lost = sorted(set(pins) - set(have))
    if lost:
        raise KitError(f"pip fetched no CPython {PYTHON} manylinux wheel for {', '.join(lost)}: pin a version that "
                       "has one in cluster/gpu/kit.py")
    return have


def _metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        # the wheel's own dist-info, not one of those vendored inside it (Ray carries aiohttp's, for one)
        name = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def closure_problems(wheels: dict[str, Path], pins: dict[str, str]) -> list[str]:
    """Requirements (of the bundled wheels and of the project) that neither the bundle nor the image meets."""
    from packaging.requirements import Requirement

    problems = []

    def check(owner: str, text: str, extras: Iterable[str] = ()) -> None:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({**MARKERS, "extra": e}) for e in ("", *extras)):
            return
        name = canonical(req.name)
        if name in pins:
            if not req.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{owner} needs {req}, the bundle has {name} {pins[name]}")
        elif name not in IMAGE and name not in LEFT_OUT:
            problems.append(f"{owner} needs {req.name}, which neither the GPU image nor the bundle has")

    for name, wheel in wheels.items():
        for text in _metadata(wheel):
            check(name, text, EXTRAS.get(name, ()))
    for text in project_dependencies():
        check("the project", text)
    return problems


def project_dependencies() -> list[str]:
    """pyproject.toml's ``[project] dependencies`` (read without tomllib, which Python 3.10 lacks)."""
    block = re.search(r"^dependencies = \[(.*?)^\]", (REPO / "pyproject.toml").read_text(), re.M | re.S)
    if block is None:
        raise KitError("pyproject.toml has no `dependencies = [...]` block under [project]")
    return re.findall(r'^\s*"([^"]+)"', block[1], re.M)


@dataclass
class Repacked:
    wheel: Path
    dropped: dict[str, int] = field(default_factory=dict)  # RAY_DROPS prefix -> bytes unpacked
    binaries: int = 0
    before: int = 0  # unpacked bytes of the binaries, before and after stripping
    after: int = 0


def _has_binaries(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as archive:
        return any(n.endswith(".so") or ".so." in n for n in archive.namelist())


def _strip(data: bytes, strip: str | None) -> bytes:
    if strip is None:
        return data
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in", Path(tmp) / "out"
        source.write_bytes(data)
        done = subprocess.run([strip, "--strip-unneeded", "-o", str(target), str(source)], capture_output=True)
        return target.read_bytes() if done.returncode == 0 else data


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(source: Path, target: Path, strip: str | None) -> Repacked:
    """``source`` without the dropped parts, its binaries stripped; a fresh RECORD."""
    report = Repacked(target)
    drops = RAY_DROPS if _parts(source)[0] == "ray" else {}
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as new:
        records, record_name = [], None
        for info in old.infolist():
            name = info.filename
            prefix = next((p for p in drops if name.startswith(p)), None)
            if prefix is not None:
                report.dropped[prefix] = report.dropped.get(prefix, 0) + info.file_size
                continue
            if name.count("/") == 1 and name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            if name.endswith("/"):
                continue
            data = old.read(info)
            if data[:4] == b"\x7fELF":
                report.binaries += 1
                report.before += len(data)
                data = _strip(data, strip)
                report.after += len(data)
            entry = zipfile.ZipInfo(name, date_time=info.date_time)
            entry.external_attr = info.external_attr  # keeps the executables' x bits (raylet, gcs_server)
            new.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
            records.append(_record_line(name, data))
        if record_name is None:
            raise KitError(f"{source.name} has no RECORD: not a wheel; delete it from {source.parent} and rerun")
        record = "\n".join([*records, f"{record_name},,"]) + "\n"
        new.writestr(zipfile.ZipInfo(record_name, date_time=(2020, 1, 1, 0, 0, 0)), record)
    partial.replace(target)
    return report


def trimmed(wheels: dict[str, Path], cache: Path) -> tuple[dict[str, Path], list[Repacked]]:
    """Every wheel as the bundle carries it: repacked (cached by source digest and recipe) when it holds binaries."""
    strip = shutil.which("strip")
    if strip is None:
        print("bundle: warning: no `strip` (binutils) here: binaries keep their symbol tables", file=sys.stderr)
    folder = cache / f"trimmed-{RECIPE}{'' if strip else '-unstripped'}"
    folder.mkdir(parents=True, exist_ok=True)
    out, jobs, reports = dict(wheels), {}, []
    for name, wheel in wheels.items():
        if name != "ray" and not _has_binaries(wheel):
            continue
        target, note = folder / wheel.name, folder / f"{wheel.name}.json"
        if target.is_file() and note.is_file():
            reports.append(Repacked(target, **json.loads(note.read_text())))
        else:
            jobs[name] = (wheel, target, note)
        out[name] = target
    with ProcessPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        futures = {name: pool.submit(repack, wheel, target, strip) for name, (wheel, target, _) in jobs.items()}
        for name, future in futures.items():
            report = future.result()
            note = jobs[name][2]
            note.write_text(json.dumps({"dropped": report.dropped, "binaries": report.binaries,
                                        "before": report.before, "after": report.after}))
            reports.append(report)
    return out, reports


# ------------------------------------------------------------------------------------------------ the data
def cifar_source(given: str | None) -> Path:
    for candidate in (given or "", *CIFAR_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise KitError("offline CIFAR-10 tar not found: pass --cifar PATH or set MONOSWEEP_CIFAR10_TAR (the ImageFolder "
                   "export that ../shared/data.md describes)")


def probe_set(source: Path, target: Path, per_class: dict[str, int], seed: int = 0) -> dict[str, object]:
    """A balanced subset of an ImageFolder tar (``train/`` and ``test/``, ``per_class`` images of each class,
    picked by ``seed``) as a gzipped tar in the same layout, which the probe reads in place.

    Members go train first, then test, each sorted: the order the probe reads them in, so reading never seeks back
    in the gzip stream. Rebuilt only when the source or the counts change."""
    stat = source.stat()
    wanted = {"source": str(source), "size": stat.st_size, "mtime": stat.st_mtime_ns, "per_class": per_class,
              "seed": seed}
    note = target.with_suffix("").with_suffix(".json")
    if target.is_file() and note.is_file() and json.loads(note.read_text()).get("wanted") == wanted:
        return json.loads(note.read_text())
    with tarfile.open(source) as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        by_class: dict[tuple[str, str], list[str]] = {}
        for name in members:
            parts = Path(name).parts
            if len(parts) == 3 and parts[0] in per_class:
                by_class.setdefault((parts[0], parts[1]), []).append(name)
        chosen: dict[str, list[str]] = {split: [] for split in per_class}
        for (split, label), names in sorted(by_class.items()):
            if len(names) < per_class[split]:
                raise KitError(f"{source}: {split}/{label} has {len(names)} images, fewer than the "
                               f"{per_class[split]} asked for: ask for fewer per class")
            chosen[split] += random.Random(f"{seed}/{split}/{label}").sample(sorted(names), per_class[split])
        if not all(chosen.values()):
            raise KitError(f"{source} is not an ImageFolder tar with {' and '.join(per_class)}/<class>/ images")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with open(partial, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                       compresslevel=9) as packed, \
                tarfile.open(fileobj=packed, mode="w", format=tarfile.USTAR_FORMAT) as out:
            for split in ("train", *sorted(s for s in per_class if s != "train")):
                for name in sorted(chosen[split]):
                    handle = archive.extractfile(members[name])
                    assert handle is not None
                    entry = tarfile.TarInfo(name)
                    entry.size, entry.mode, entry.mtime = members[name].size, 0o644, 0
                    out.addfile(entry, handle)
        partial.replace(target)
    counts = {split: len(names) for split, names in chosen.items()}
    classes = len({label for _, label in by_class})
    made = {"wanted": wanted, "counts": counts, "classes": classes, "bytes": target.stat().st_size}
    note.write_text(json.dumps(made, indent=1))
    return made


# ------------------------------------------------------------------------------------------------ sizes
def tree_bytes() -> int:
    """Bytes of what the device tool sends besides carried paths: tracked and untracked-not-ignored files."""
    done = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                          capture_output=True, check=True)
    total = 0
    for name in filter(None, done.stdout.decode().split("\0")):
        path = REPO / name
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ignored(path: Path) -> bool:
    done = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(path)], capture_output=True)
    return done.returncode == 0


# ------------------------------------------------------------------------------------------------ main
def build(out: Path, cache: Path, per_class: dict[str, int], cifar: str | None, limit: float) -> dict[str, object]:
    started = time.monotonic()
    pins = wanted()
    published = download(pins, cache)
    problems = closure_problems(published, pins)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise KitError(f"{problems[0]}{more}: pin it in WHEELS or say why not in LEFT_OUT (cluster/gpu/kit.py)")
    carried, reports = trimmed(published, cache)
    wheels_dir = out / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    keep = {w.name for w in carried.values()}
    for stale in wheels_dir.glob("*.whl"):
        if stale.name not in keep:
            stale.unlink()
    for wheel in carried.values():
        copy = wheels_dir / wheel.name
        if not copy.is_file() or copy.stat().st_size != wheel.stat().st_size:
            shutil.copyfile(wheel, copy)
    data = probe_set(cifar_source(cifar), out / PROBE_SET, per_class)

    sizes = {"project": tree_bytes(), "wheels": folder_bytes(wheels_dir), "data": folder_bytes(out / "data")}
    manifest = {"python": PYTHON, "built": time.strftime("%Y-%m-%dT%H:%M:%S"), "ray": pins["ray"],
                "wheels": sorted(keep), "probe_set": PROBE_SET, "probe_counts": data["counts"], "sizes": sizes}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    sizes["manifest"] = (out / MANIFEST).stat().st_size
    total = sum(sizes.values())

    by_name = {canonical(w.name.split("-")[0]): w for w in carried.values()}
    print(f"bundle for CPython {PYTHON}, manylinux x86-64: {len(carried)} wheels in {out / 'wheels'}, "
          f"{mib(sizes['wheels'])} ({mib(sum(w.stat().st_size for w in published.values()))} as published)")
    for name in sorted(by_name, key=lambda n: -by_name[n].stat().st_size)[:8]:
        was = published[name].stat().st_size
        note = "" if by_name[name] == published[name] else f" (published: {mib(was)})"
        print(f"  {name + ' ' + pins[name]:<36}{mib(by_name[name].stat().st_size):>10}{note}")
    print(f"  ... and {max(0, len(by_name) - 8)} smaller wheels")
    for report in reports:
        for prefix, size in sorted(report.dropped.items(), key=lambda kv: -kv[1]):
            print(f"dropped {prefix:<24}{mib(size):>10} unpacked: {RAY_DROPS[prefix]}")
    stripped = [r for r in reports if r.binaries]
    if stripped:
        print(f"binaries stripped of their symbol tables: {sum(r.binaries for r in stripped)} in {len(stripped)} "
              f"wheels, {mib(sum(r.before for r in stripped))} -> {mib(sum(r.after for r in stripped))} unpacked")
    for name, why in LEFT_OUT.items():
        print(f"left out {name}: {why}")
    print("left out ray[default]: the dashboard and the job server (`monosweep submit`); local runs start no dashboard")
    counts = data["counts"]
    print(f"probe set {out / PROBE_SET}: {counts} images of {data['classes']} classes, {mib(int(data['bytes']))}")
    print(f"what travels: project {mib(sizes['project'])} + wheels {mib(sizes['wheels'])} + data {mib(sizes['data'])} "
          f"= {mib(total)} (limit {limit:.1f} MiB; the device takes 64 MiB); built in "
          f"{time.monotonic() - started:.0f} s")
    if total > limit * 2**20:
        raise KitError(f"project + bundle + data = {mib(total)}, over the {limit:.1f} MiB limit: ask for fewer probe "
                       "images (--train-per-class) or trim more (RAY_DROPS in cluster/gpu/bundle.py)")
    if out.resolve().is_relative_to(REPO) and not ignored(out):
        print(f"bundle: warning: {out} is not ignored by git: it would travel (and be committed) as project files",
              file=sys.stderr)
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=KIT, help="the kit's folder (default: .gpu-kit, ignored)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="downloads and trimmed wheels (default: "
                        "$MONOSWEEP_GPU_KIT_CACHE or ~/.cache/monosweep-gpu-kit)")
    parser.add_argument("--cifar", help="the offline CIFAR-10 ImageFolder tar (default: $MONOSWEEP_CIFAR10_TAR or "
                        "../shared/data/cifar10-jpeg.tar)")
    parser.add_argument("--train-per-class", type=int, default=1000, help="probe training images per class")
    parser.add_argument("--test-per-class", type=int, default=200, help="held-out images per class")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB, help="project + bundle + data at most")
    args = parser.parse_args()
    if min(args.train_per_class, args.test_per_class) < 1:
        raise KitError("--train-per-class and --test-per-class must be at least 1")
    build(args.out, args.cache, {"train": args.train_per_class, "test": args.test_per_class}, args.cifar,
          args.limit_mib)
    return 0


if __name__ == "__main__":
    sys.exit(guarded("bundle", main))
