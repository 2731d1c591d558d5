"""Build hook: the wheel also carries the top-level ``bundles/`` and ``data_manifests/`` inside the package.

Everything else is in pyproject.toml. The two folders stay at the top of the checkout (where the docs and the
bundle commands name them); ``build_py`` copies their shipped parts (``ldct_invrep.package_files``: a bundle's
configs, docs, LICENSE and ``models/.gitkeep``, never a run's checkpoints or logs) into ``ldct_invrep/`` of the
build, where ``ldct_invrep.package_files`` looks first. Editable installs read them from the checkout.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _package_files():
    """``ldct_invrep/package_files.py`` loaded on its own (it imports only the standard library)."""
    spec = importlib.util.spec_from_file_location("_ldct_package_files", ROOT / "ldct_invrep" / "package_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithBundles(build_py):
    """``build_py`` that adds ``bundles/`` and ``data_manifests/`` to ``ldct_invrep/`` in the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "ldct_invrep"
        files = _package_files()
        for bundle in sorted(p for p in (ROOT / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file()):
            for src, rel in files.bundle_files(bundle):
                self._copy(src, target / "bundles" / bundle.name / rel)
        for manifest in sorted((ROOT / "data_manifests").glob("*.json")):
            self._copy(manifest, target / "data_manifests" / manifest.name)

    def _copy(self, src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildPyWithBundles})
