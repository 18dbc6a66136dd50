"""Bakes the git commit into the package when it is built (methods/_build.json), so an installed copy
without its .git still says which code it is; everything else is in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCommit(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install runs from the checkout, which knows its commit
            return
        spec = importlib.util.spec_from_file_location("_provenance", Path(__file__).parent / "methods/provenance.py")
        assert spec is not None and spec.loader is not None
        provenance = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(provenance)
        target = Path(self.build_lib) / "methods"
        target.mkdir(parents=True, exist_ok=True)
        provenance.bake(None, target)


setup(cmdclass={"build_py": BuildWithCommit})
