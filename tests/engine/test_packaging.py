"""kto-build as an installed package, not an editable checkout: the wheel ships the
example project for `init`, and `import kto_build` needs no POSIX-only module."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for rel in filter(None, files.stdout.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


def test_wheel_ships_the_example_and_init_works_from_it(tmp_path):
    src = _tracked_copy(tmp_path / "src")
    for extra in ("setup.py", "pyproject.toml"):  # the files under test, also before they are committed
        (src / extra).write_bytes((ROOT / extra).read_bytes())
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wheel = next((tmp_path / "dist").glob("kto_build-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for rel in ("project.yml", "sources.yml", "models/kto.sql", "models/staging.yml", "data/prompts.jsonl"):
        assert f"kto_build/templates/example/{rel}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    dest = tmp_path / "new"
    # the unpacked wheel alone, no checkout on the path: init copies the shipped example
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kto_build.cli\n"
            "assert kto_build.cli.__file__.startswith(sys.argv[1]), kto_build.cli.__file__\n"
            "sys.argv[1:2] = []; kto_build.cli.main()")
    res = subprocess.run([sys.executable, "-c", code, str(site), "init", str(dest)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (dest / "project.yml").read_bytes() == (ROOT / "project.yml").read_bytes()
    assert sorted(p.name for p in (dest / "models").iterdir()) == sorted(p.name for p in (ROOT / "models").iterdir())
    assert (dest / ".gitignore").exists()


def test_import_needs_no_fcntl():
    """Windows has no fcntl: the writer lock goes through filelock."""
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import kto_build, kto_build.cli, kto_build.state, kto_build.runner, kto_build.project\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr
