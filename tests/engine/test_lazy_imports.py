"""The CLI stays fast: --help, ls, plan and a no-op run import no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("distilabel", "argilla", "datasets", "torch", "llama_cpp", "transformers", "pandas", "ray")

PROBE = """
import json, sys
from kto_build.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
finally:
    print("MODULES=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def heavy_modules(args: list[str]) -> list[str]:
    res = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True)
    line = [x for x in res.stdout.splitlines() if x.startswith("MODULES=")]
    assert line, res.stdout + res.stderr
    return json.loads(line[-1][len("MODULES="):])


@pytest.mark.parametrize("args", [["--help"], ["ls"], ["plan"], ["run"]])
def test_no_heavy_imports(proj, args):
    proj.run()  # built, so `run` below is a no-op
    assert heavy_modules(["--project-dir", str(proj.root), *args]) == []
