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
# `monosweep`, the lazy public names of `methods` and `sweep`, and `lazy` (torch bound at a module's top,
# loaded on first use).
BY_NAME = {"methods/registry.py", "methods/__init__.py", "sweep/__init__.py", "sweep/cli.py", "methods/_lazy.py"}
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
    # the driver of `run` (Ray and Tune, which loads pyarrow): the trial engine loads on the workers
    assert {"torch", "numba", "triton", "torchvision"}.isdisjoint(_loaded("import sweep.driver"))


def test_validate_reads_every_method_declaration_and_loads_nothing_heavy(tmp_path: Path) -> None:
    code = (f"from sweep.cli import main\nassert main(['validate', {str(REPO / 'examples' / 'quickstart.yaml')!r}, "
            f"'--storage', {str(tmp_path)!r}]) == 0\nfrom methods import registry\n"
            "assert set(registry.METHODS) == {'bigan', 'deepcluster', 'random', 'rotnet', 'supervised'}")
    assert _loaded(code) == []  # not even torch: the declarations bind it lazily (methods/_lazy.py)


def test_a_lazy_module_is_imported_on_its_first_attribute_read_and_then_is_the_module() -> None:
    code = ("from methods._lazy import lazy\nwave, parser = lazy('wave'), lazy('email.parser')\n"
            "assert 'wave' not in sys.modules and 'email.parser' not in sys.modules\n"
            "assert wave.open is sys.modules['wave'].open and parser.Parser is sys.modules['email.parser'].Parser\n"
            "assert 'open' in vars(wave)  # later reads skip the import machinery")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
