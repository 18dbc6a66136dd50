"""Public labelled sets fetched in one command (``monosweep data NAME DIR``) into the layout the probe reads.

The download is torchvision's own (``download_and_extract_archive``: the archive's MD5 checked before it
is unpacked), and the unpacked files are checked against torchvision's per-file MD5s afterwards, so a
root that passes here is one torchvision itself would accept. ImageNet and Places cannot be fetched
(their licences need a sign-up); ``describe`` says how to lay them out instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from methods._lazy import lazy
from methods.data.labelled import TORCHVISION_ROOTS
from methods.errors import InputError

datasets = lazy("torchvision.datasets")
dataset_utils = lazy("torchvision.datasets.utils")

__all__ = ["DESCRIBED", "PUBLIC_SETS", "PublicSet", "fetch"]


@dataclass(frozen=True)
class PublicSet:
    """One set torchvision can download: its dataset class and what the probe gets from it."""

    dataset: str  # the torchvision.datasets class
    about: str

    def torchvision_class(self) -> type:
        return getattr(datasets, self.dataset)


PUBLIC_SETS: dict[str, PublicSet] = {
    "cifar10": PublicSet("CIFAR10", "CIFAR-10: 50k train / 10k test, 32 px, 10 classes (163 MB)"),
    "cifar100": PublicSet("CIFAR100", "CIFAR-100: 50k train / 10k test, 32 px, 100 classes (161 MB)"),
    "stl10": PublicSet("STL10", "STL-10: 5k train / 8k test, 96 px, 10 classes (2.6 GB with its unlabelled part)"),
}

_IMAGEFOLDER = ("DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG (one folder per class in both; the "
                "validation images sorted into class folders), or the same layout in one .tar; then "
                "probe_data: DIR")
DESCRIBED: dict[str, str] = {
    "imagenet": "ImageNet (ILSVRC-2012) needs a sign-up at image-net.org, so it is not downloaded. Lay it out as "
    + _IMAGEFOLDER + ".",
    "places": "Places205/365 needs a sign-up at places2.csail.mit.edu, so it is not downloaded. Lay it out as "
    + _IMAGEFOLDER + ".",
}


def _verified(cls: type, root: Path) -> bool:
    """Whether every file of both splits is present with torchvision's MD5 (no download attempted)."""
    probe = cls.__new__(cls)
    probe.root = str(root)
    return bool(probe._check_integrity())


def fetch(name: str, root: Path, mirror: str | None = None, say: Callable[[str], None] = print) -> Path:
    """Download and verify set ``name`` under ``root``; return the root to give as ``probe_data``.

    ``mirror`` is a folder URL holding the archive under its usual file name (a local copy, an institute
    mirror); by default torchvision's own URL. A root that already verifies is left as it is.
    """
    if name not in PUBLIC_SETS:
        raise InputError(f"unknown data set {name!r}: choose one of {', '.join([*PUBLIC_SETS, *DESCRIBED])}")
    cls = PUBLIC_SETS[name].torchvision_class()
    root = root.expanduser().resolve()
    if _verified(cls, root):
        say(f"{name}: already in {root / TORCHVISION_ROOTS[name].folder}, checksums match; nothing downloaded")
        return root
    url = f"{mirror.rstrip('/')}/{cls.filename}" if mirror else cls.url
    root.mkdir(parents=True, exist_ok=True)
    say(f"{name}: downloading {PUBLIC_SETS[name].about} from {url} into {root}")
    try:
        dataset_utils.download_and_extract_archive(url, str(root), filename=cls.filename, md5=cls.tgz_md5,
                                                   remove_finished=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad MD5 is a RuntimeError
        archive = root / cls.filename
        code = getattr(error, "code", None)  # an HTTPError: the server answered, but not with the file
        detail = f"HTTP {code}" if code else str(getattr(error, "reason", "") or error).splitlines()[0]
        hint = (f"delete {archive} and run again" if archive.exists() else
                "check the network (or give --mirror URL of a folder holding " + cls.filename + ")")
        raise InputError(f"{name}: download from {url} failed ({detail}): {hint}") from None
    if not _verified(cls, root):
        raise InputError(f"{name}: the unpacked files under {root} do not match torchvision's checksums: delete "
                         f"{root / TORCHVISION_ROOTS[name].folder} and run again")
    say(f"{name}: checksums match; use it with  probe_data: {root}")
    return root
