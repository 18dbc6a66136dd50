"""Ray's compiled pins, cut down to the packages the image already has: the constraints of our install.

Ray's images ship ``requirements_compiled.txt``: the pins of Ray's whole CI (mlflow, matplotlib, optuna,
torch+cpu, tensorflow, ...). Used whole with ``pip install -c``, it would hold our own dependencies to Ray's
test versions (e.g. matplotlib 3.7 against pyproject.toml's >=3.8) and the build would fail. What must not
move is what Ray itself runs on: the packages installed in the image, at the versions the image was built
with. So only their pins are kept, minus torch and torchvision, which we install in the image's CUDA build.

    python image_constraints.py /home/ray/requirements_compiled*.txt > /tmp/ray-constraints.txt
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from importlib.metadata import distributions

DROP = frozenset({"torch", "torchvision"})
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==.*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints(compiled: Iterable[str], installed: set[str], drop: frozenset[str] = DROP) -> list[str]:
    """The ``name==version`` lines (markers kept, extras removed: pip refuses them in constraints) of the
    installed packages; pip options (Ray CI's indexes), URL pins and comments are left out."""
    kept: dict[str, str] = {}
    for text in compiled:
        for line in text.splitlines():
            match = _PIN.fullmatch(line.split(" #", 1)[0].strip())
            if match and (name := canonical(match[1])) in installed and name not in drop:
                kept.setdefault(name, f"{match[1]}{match[3]}")
    return list(kept.values())


def main(paths: list[str]) -> int:
    installed = {canonical(d.metadata["Name"]) for d in distributions() if d.metadata["Name"]}
    pins = constraints([open(path).read() for path in paths], installed)
    if not pins:
        print(f"no pins of installed packages in {paths}", file=sys.stderr)
        return 1
    print("\n".join(pins))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
