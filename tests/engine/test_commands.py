"""Each command on a small project, with its real output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kto_build.graph import Graph
from kto_build.nodes.base import Node


def test_ls(proj):
    res = proj.cli("ls")
    assert res.exit_code == 0
    assert res.output.splitlines() == [
        "raw_prompts   source     table  stale: new",
        "stg_prompts   model      table  stale: new",
        "prompt_stats  model      table  stale: new",
        "shouty        model      view   stale: new",
    ]
    proj.run()
    rows = json.loads(proj.cli("ls", "--json", "--select", "tag:fun").output)
    assert [(r["name"], r["status"], r["tags"]) for r in rows] == [
        ("prompt_stats", "up to date", ["report", "fun"]), ("shouty", "up to date", ["fun"])]


def test_compile_inlines_vars_for_views(proj):
    out = proj.cli("compile", "shouty").output
    assert out.startswith('SET VARIABLE "suffix" = \'!\';\nCREATE OR REPLACE VIEW "shouty" AS')
    assert "'!'" in out and "getvariable" not in out
    out = proj.cli("compile", "stg_prompts").output
    assert out.startswith('SET VARIABLE "min_len" = 3;\nCREATE OR REPLACE TABLE "stg_prompts" AS')


def test_compile_output_runs_as_is_in_a_plain_duckdb(proj):
    """Pasted into a duckdb shell with no project vars, it builds the same rows (issue 8, item 9)."""
    import duckdb

    proj.run()
    expected = proj.query("select * from stg_prompts order by 1")
    assert len(expected) == 2
    con = duckdb.connect(str(proj.root / "target" / "kto_build.duckdb"))
    try:
        con.execute("create schema scratch; use scratch; create view raw_prompts as select * from main.raw_prompts")
        con.execute(proj.cli("compile", "stg_prompts").output)
        assert con.execute("select * from stg_prompts order by 1").fetchall() == expected
    finally:
        con.close()


def test_view_readable_from_a_plain_duckdb_connection(proj):
    proj.run()
    assert proj.query("select prompt from shouty order by 1") == [
        ("WRITE A HAIKU ABOUT RAIN.!",), ("WRITE A HAIKU ABOUT SNOW.!",)]


def test_show(proj):
    assert proj.cli("show", "stg_prompts").exit_code == 2  # not built yet
    proj.run()
    out = proj.cli("show", "shouty", "--limit", "1").output.splitlines()
    assert out[1].split("|")[1:3] == [" prompt_id                        ", " prompt                     "]
    assert out[-1] == "1 rows"


def test_lineage(proj):
    proj.run()
    data = json.loads(proj.cli("lineage", "shouty", "--column", "prompt", "--json").output)
    assert data["upstream"] == ["raw_prompts", "stg_prompts"]
    assert data["columns"] == [{"table": "raw_prompts", "column": "prompt", "depth": 3}]
    data = json.loads(proj.cli("lineage", "stg_prompts", "--json").output)
    assert data["downstream"] == ["prompt_stats", "shouty"]


def test_init_creates_a_runnable_project(tmp_path):
    dest = tmp_path / "new"
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "init", str(dest)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (dest / "project.yml").exists() and (dest / "sources.yml").exists()
    assert (dest / "data" / "prompts.jsonl").exists() and list((dest / "models").glob("*.sql"))
    assert (dest / ".gitignore").read_text().splitlines()[1] == "target/"
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "init", str(dest)], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr == (f"error: {dest} is not empty; init makes new projects only "
                          "(choose a new folder, e.g. 'kto-build init my_project')\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "init", str(tmp_path / "other")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "is not empty" in res.stderr
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]  # nothing written
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "--project-dir", str(dest), "ls"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _g(edges: dict[str, list[str]], tags=None) -> Graph:
    nodes = {n: Node(name=n, path=f"{n}.sql", line=1, depends_on=deps, tags=(tags or {}).get(n, []))
             for n, deps in edges.items()}
    return Graph.build(nodes)


@pytest.mark.parametrize(("select", "exclude", "expected"), [
    (None, None, ["a", "b", "c", "d", "e"]),
    (["c"], None, ["c"]),
    (["+c"], None, ["a", "b", "c"]),
    (["b+"], None, ["b", "c", "d"]),
    (["+c+"], None, ["a", "b", "c", "d"]),
    (["tag:t"], None, ["b", "e"]),
    (["b+", "e"], None, ["b", "c", "d", "e"]),
    (["b+ e"], None, ["b", "c", "d", "e"]),  # a space: union, as in dbt
    (["b+,e"], None, []),  # a comma: intersection, as in dbt
    (["b+,tag:t"], None, ["b"]),
    (["+d,c+"], None, ["c", "d"]),
    (["+d,c+ e"], None, ["c", "d", "e"]),
    (["a+"], ["+d,c+"], ["a", "b", "e"]),
    (None, ["b+"], ["a", "e"]),
    (["+d"], ["tag:t"], ["a", "c", "d"]),
    (["kind:node"], ["a"], ["b", "c", "d", "e"]),
])
def test_selectors(select, exclude, expected):
    g = _g({"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["a"]}, tags={"b": ["t"], "e": ["t"]})
    assert g.select(select, exclude) == expected


def test_order_is_topological_and_stable():
    g = _g({"z": [], "y": ["z"], "x": ["y", "w"], "w": []})
    assert g.order == ["w", "z", "y", "x"]
