"""`kto-build prune`: the explicit command that deletes paid-for generations."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb

from kto_build.nodes.generation import CACHE, CACHE_DDL, NAMES
from kto_build.project import Project
from tests.helpers import ProjectDir, query

PROJECT = """
name: pruning
targets:
  dev: {}
  prod: {}
"""

SOURCES = """
prompts:
  raw:
    path: data/prompts.jsonl
    text: text
generators:
  gens:
    prompts: raw
    models:
      - name: small
        llm: OpenAILLM
        params: {model: small-{temp}, base_url: "http://127.0.0.1:9/v1"}
        api_key_env: NO_KEY_NEEDED
        generation: {temperature: 0.5}
      - name: big
        llm: OpenAILLM
        targets: [prod]
        params: {model: big, base_url: "http://127.0.0.1:9/v1"}
        api_key_env: NO_KEY_NEEDED
"""


def make(tmp_path, model_suffix="a"):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "prompts.jsonl").write_text(json.dumps({"text": "a haiku"}) + "\n")
    p = ProjectDir(tmp_path)
    p.write("project.yml", PROJECT)
    p.write("sources.yml", SOURCES.replace("{temp}", model_suffix))
    return tmp_path


def fps(root, target):
    node = Project.load(root, target=target).nodes["gens"]
    return {m.name: m.fingerprint for m in node.models}


def cli(root, *args):
    return subprocess.run([sys.executable, "-m", "kto_build.cli", "--project-dir", str(root), *args],
                          capture_output=True, text=True)


def test_prune_lists_then_deletes_only_unused_settings(tmp_path):
    root = make(tmp_path)
    old_small = fps(root, "dev")["small"]
    big = fps(root, "prod")["big"]
    make(tmp_path, model_suffix="b")  # the small model's settings change: its old rows are now unused
    new_small = fps(root, "dev")["small"]
    assert new_small != old_small
    (root / "target").mkdir()
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"))
    con.execute("CREATE SCHEMA _kto_build")
    con.execute(CACHE_DDL)
    for gid, fp, status in [("g1", old_small, "ok"), ("g2", old_small, "failed"), ("g3", new_small, "ok"),
                            ("g4", big, "ok")]:
        row = {c: None for c in NAMES} | {"generation_id": gid, "generator": "gens", "model_fingerprint": fp,
                                          "model_name": "big" if fp == big else "small", "status": status}
        con.execute(f"INSERT INTO {CACHE} ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))})",
                    [row[c] for c in NAMES])
    con.close()

    res = cli(root, "prune")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"gens / small (settings {old_small}): 2 rows, 1 paid-for completions",
        "2 cached generations would be deleted; run 'kto-build prune --yes' to delete them."]
    assert query(root, f"select count(*) from {CACHE}") == [(4,)]  # listing deletes nothing

    res = cli(root, "prune", "--yes")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "Deleted 2 cached generations."
    # the dev model's current rows and the prod-only model's rows stay
    assert query(root, f"select generation_id from {CACHE} order by 1") == [("g3",), ("g4",)]
    assert cli(root, "prune").stdout.strip() == ("Nothing to prune: every cached generation belongs to settings "
                                                 "in use.")
