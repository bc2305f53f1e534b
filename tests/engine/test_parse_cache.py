"""The parse cache gives exactly what parsing gives, and is skipped when stale."""

from __future__ import annotations

import json
import subprocess
import sys

from kto_build.project import Project
from kto_build.runner import Runner


def fingerprints(root) -> dict[str, str]:
    p = Project.load(root)
    r = Runner(p)
    return {n: r.fp(node) for n, node in p.nodes.items()}


def test_cached_load_equals_parsed_load(proj):
    cache = proj.root / "target" / "parse_cache.json"
    cold = fingerprints(proj.root)
    assert cache.exists()
    entries = json.loads(cache.read_text())["files"]
    assert set(entries) == {"models/stg_prompts.sql", "models/prompt_stats.sql", "models/shouty.sql"}
    assert entries["models/shouty.sql"]["refs"] == [["stg_prompts", 1, 26]]
    warm = fingerprints(proj.root)
    assert warm == cold
    cache.unlink()
    assert fingerprints(proj.root) == cold


def test_edited_file_is_parsed_again(proj):
    fingerprints(proj.root)
    proj.write("models/prompt_stats.sql", "select count(*) as n from stg_promts")
    res = proj.cli("ls")
    assert res.exit_code == 2
    assert "unknown table 'stg_promts'" in res.output


def test_corrupt_or_foreign_cache_is_ignored(proj):
    cold = fingerprints(proj.root)
    cache = proj.root / "target" / "parse_cache.json"
    cache.write_text("{not json")
    assert fingerprints(proj.root) == cold
    data = json.loads(cache.read_text())
    data["version"] = "0/old/0"
    data["files"]["models/prompt_stats.sql"]["refs"] = [["nothing", 1, 1]]
    cache.write_text(json.dumps(data))
    assert fingerprints(proj.root) == cold  # another version's entries are not trusted


def test_warm_plan_does_not_import_sqlglot(proj):
    proj.run()
    code = ("import sys; from kto_build.project import Project; "
            f"Project.load({str(proj.root)!r}).plan(); print('sqlglot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
