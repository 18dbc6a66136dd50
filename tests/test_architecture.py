"""The layout's rules, checked on the code: modules import each other at their top (the dependency graph is
what the module heads say), three registries alone load modules by name, and the light entry points stay
light (``import methods``, ``monosweep --help``, ``monosweep validate``)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGES = ("methods", "sweep")
SOURCES = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))
# Where a module is loaded by its name: the method registry (built-ins and plugins), the command table of
# `monosweep`, and the lazy public names of `methods` and `sweep`.
BY_NAME = {"methods/registry.py", "methods/__init__.py", "sweep/__init__.py", "sweep/cli.py"}
HEAVY = ("torch", "numba", "triton", "torchvision", "ray", "mlflow", "optuna", "matplotlib", "pyarrow")


def _ours(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] in PACKAGES
    return any(alias.name.split(".")[0] in PACKAGES for alias in node.names)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_package_is_imported_at_module_tops_only(path: Path) -> None:
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for parent in ast.walk(tree):
        if isinstance(parent, ast.If) and id(parent) in top:  # `if TYPE_CHECKING:` blocks are module level
            top |= {id(node) for node in parent.body}
    late = [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) and _ours(node) and id(node) not in top]
    assert late == [], f"{path.name}: imports of the package inside functions at lines {late}"
    by_name = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and node.attr == "import_module"]
    if path.relative_to(REPO).as_posix() not in BY_NAME:
        assert by_name == [], f"{path.name}: loads modules by name at lines {by_name}"


def test_the_registry_is_a_leaf() -> None:
    tree = ast.parse((REPO / "methods" / "registry.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and _ours(node)}
    assert imported == {"methods.errors", "methods.method"}  # (the second only for type checking)


def _loaded(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_packages_and_the_command_line_loads_nothing_heavy() -> None:
    assert _loaded("import methods, sweep, sweep.cli, sweep.ledger.records") == []
    assert _loaded("import sweep.cli\ntry:\n    sweep.cli.main(['--help'])\nexcept SystemExit:\n    pass") == []


def test_validate_loads_torch_for_the_methods_and_nothing_else_heavy(tmp_path: Path) -> None:
    code = (f"from sweep.cli import main\nassert main(['validate', {str(REPO / 'examples' / 'quickstart.yaml')!r}, "
            f"'--storage', {str(tmp_path)!r}]) == 0")
    assert _loaded(code) == ["torch"]  # (pyarrow only once Tune needs its file system)
