"""Ships the example project (the repository root's project.yml, sources.yml,
models/ and data/) inside the wheel as ``kto_build/templates/example`` so that
``kto-build init`` works from an installed package, not only from a checkout.
Everything else is declared in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLE_FILES = ("project.yml", "sources.yml", "models", "data")  # kto_build/commands/build.py copies the same list


class BuildPyWithExample(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds the example at the repository root
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "kto_build" / "templates" / "example"
        for name in EXAMPLE_FILES:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, dest / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif src.exists():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)


setup(cmdclass={"build_py": BuildPyWithExample})
