"""The DAG picture's layout is the same in every process: grandalf keeps vertices in sets, and with its default
id() hashing the picture of an unchanged project changed from one ``kto-build docs`` to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, random
from kto_build.docs.dag import layout
rnd = random.Random(1)
names = [f"m{i}" for i in range(60)]
edges = sorted({(f"m{rnd.randrange(i)}", f"m{i}") for i in range(1, 60) for _ in range(2)})
print(json.dumps({k: [round(c, 3) for c in v] for k, v in sorted(layout(names, edges).items())}))
"""


def _layout_in_process(seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_layout_is_the_same_in_processes_with_different_hash_seeds():
    first = _layout_in_process("1")
    assert len(first) == 60
    assert len({tuple(v) for v in first.values()}) == 60  # every node has its own place
    for seed in ("2", "3", "12345"):
        assert _layout_in_process(seed) == first


def test_a_second_docs_build_reuses_the_cached_layout(tmp_path):
    """The rebuild over an existing site takes the DAG layout from the site's build cache (no layout job)."""
    from tests.docs.conftest import kto, tiny_project

    root = tiny_project(tmp_path / "tiny")
    kto(root, "docs")
    index = (root / "target" / "docs" / "index.html").read_text()
    cache = json.loads((root / "target" / "docs" / ".cache.json").read_text())
    assert any(k.startswith("layout:") for k in cache["entries"])
    again = kto(root, "docs", check=False)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert (root / "target" / "docs" / "index.html").read_text() == index
