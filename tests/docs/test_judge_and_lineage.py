"""The judge page's figures from a judge table made in DuckDB (the contract's columns), and the column
lineage's direct scope walk against sqlglot's qualify + lineage on the docs project and on shapes
the walk leaves to sqlglot."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace

import duckdb
import pytest
import sqlglot

from kto_build.docs.collect import Snapshot, snapshot
from kto_build.docs.judge import judge_numbers, judge_rows
from kto_build.docs.lineage import direct_lineage, model_lineage, sqlglot_lineage
from kto_build.state import relations

T0 = datetime(2026, 11, 30, 12, 0, 0)

JUDGE_DDL = """CREATE TABLE verdicts (record_id VARCHAR, judge_model VARCHAR, label VARCHAR, score DOUBLE,
    rationale VARCHAR, raw VARCHAR, status VARCHAR, error VARCHAR, created_at TIMESTAMP, worker VARCHAR)"""

ROWS = [  # record, model, label, score, status, error, minutes after T0
    ("r1", "big", "Yes", 0.9, "ok", None, 0), ("r2", "big", "No", 0.2, "ok", None, 1),
    ("r3", "big", "Yes", 0.8, "ok", None, 30), ("r4", "big", None, None, "unparsed", None, 31),
    ("r1", "small", "Yes", 0.7, "ok", None, 32), ("r2", "small", None, None, "failed", "HTTP 500: boom", 33),
    ("r3", "small", None, None, "failed", "HTTP 500: boom", 34), ("r4", "small", None, None, "failed", "timeout", 35),
]


@pytest.fixture()
def judge_snap():
    con = duckdb.connect()
    con.execute(JUDGE_DDL)
    con.executemany("INSERT INTO verdicts VALUES (?, ?, ?, ?, 'why', 'raw', ?, ?, ?, 'host:1')",
                    [[r, m, lab, s, st, e, T0 + timedelta(minutes=mins)] for r, m, lab, s, st, e, mins in ROWS])
    snap = Snapshot(project=None, con=con, rels=relations(con),
                    columns={"verdicts": [(c, t) for c, t in con.execute(
                        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'verdicts'"
                    ).fetchall()]})
    yield snap
    con.close()


def test_judge_numbers_from_a_judge_table(judge_snap):
    rows = judge_rows(judge_snap, SimpleNamespace(name="verdicts"))
    assert len(rows) == len(ROWS)
    n = judge_numbers(rows, started=T0 + timedelta(minutes=10))  # the last build started after r1, r2 of "big"
    assert n["models"] == [
        {"model": "big", "ok": 3, "unparsed": 1, "failed": 0, "other": 0, "cached": 2},
        {"model": "small", "ok": 1, "unparsed": 0, "failed": 3, "other": 0, "cached": 0}]
    assert n["labels"] == [{"model": "big", "label": "No", "rows": 1}, {"model": "big", "label": "Yes", "rows": 2},
                           {"model": "small", "label": "Yes", "rows": 1}]
    assert n["scores"] == {"big": [0.9, 0.2, 0.8], "small": [0.7]}
    assert n["failures"][0] == {"model": "small", "status": "failed", "error": "HTTP 500: boom", "rows": 2}
    assert {(f["model"], f["status"]) for f in n["failures"]} == {("small", "failed"), ("big", "unparsed")}
    # without a known build start, cached is not claimed
    assert judge_numbers(rows)["cached_known"] is False


def test_judge_numbers_agree_with_sql(judge_snap):
    n = judge_numbers(judge_rows(judge_snap, SimpleNamespace(name="verdicts")))
    by_sql = judge_snap.q("SELECT judge_model, count(*) FILTER (WHERE status = 'ok'), "
                          "count(*) FILTER (WHERE status = 'unparsed'), count(*) FILTER (WHERE status = 'failed') "
                          "FROM verdicts GROUP BY 1 ORDER BY 1")
    assert [(m["model"], m["ok"], m["unparsed"], m["failed"]) for m in n["models"]] == by_sql


SHAPES = {  # sql -> whether the direct walk answers (else sqlglot's full path does)
    "select a.id, a.v + b.v as total from a join b on a.id = b.id": True,
    "with x as (select id, v * 2 as w from a) select id, w from x": True,
    "select id, v from (select id, v from b) d": True,
    "select * from a": False,
    "select id, v from a union all select id, v from b": False,
    "select id, (select max(v) from b) as v from a": False,
    "select id, v from a join b using (id)": False,  # id is in both: ambiguous for the walk
}
SCHEMA = {"a": {"id": "INTEGER", "v": "INTEGER"}, "b": {"id": "INTEGER", "v": "INTEGER"}}


@pytest.mark.parametrize("sql", list(SHAPES))
def test_direct_walk_agrees_with_sqlglot_or_declines(sql):
    tree = sqlglot.parse_one(sql, read="duckdb")
    cols = ["id", "v"] if "total" not in sql and "w from" not in sql else (["id", "total"] if "total" in sql
                                                                          else ["id", "w"])
    fast = direct_lineage(tree.copy(), cols, SCHEMA)
    assert (fast is not None) == SHAPES[sql]
    assert model_lineage(sql, cols, SCHEMA) == sqlglot_lineage(tree, cols, SCHEMA)


def test_direct_walk_equals_sqlglot_on_every_model_of_the_docs_project(docs_project):
    from kto_build.project import Project

    project = Project.load(docs_project)
    con = duckdb.connect(str(docs_project / "target" / "kto_build.duckdb"), read_only=True)
    try:
        snap = snapshot(project, con)
        checked = 0
        for node in project.nodes.values():
            if node.kind != "model":
                continue
            cols = list(snap.cols(node.name))
            schema = {t: dict(snap.columns.get(t, [])) for t in node.depends_on if snap.has(t)}
            tree = sqlglot.parse_one(node.sql, read="duckdb")
            fast = direct_lineage(tree.copy(), cols, schema)
            if fast is not None:
                assert fast == sqlglot_lineage(tree, cols, schema), node.name
                checked += 1
        assert checked >= 3
    finally:
        con.close()


def test_judge_page_renders_the_numbers_and_charts(judge_snap, tmp_path):
    import re

    from kto_build.docs.judge import judge_page
    from kto_build.docs.plots import Plotter

    node = SimpleNamespace(name="verdicts", kind="judge", path="sources.yml", line=3, description="", tags=[],
                           records="gens", annotation="ratings", config={},
                           definition=lambda: {"models": [{"name": "big", "api_key": "sk-secret"}]})
    judge_snap.project = SimpleNamespace(nodes={"verdicts": node}, graph=SimpleNamespace(parents={}, children={}))
    plotter = Plotter(tmp_path)
    html, _ = judge_page(judge_snap, node, plotter)
    plotter.flush()
    counts = html.split("<h2>Per judge model</h2>", 1)[1].split("<h2>", 1)[0]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", counts)[1:]]
    assert [c[:4] for c in cells] == [["big", "3", "1", "0"], ["small", "1", "0", "3"]]
    assert "HTTP 500: boom" in html and "sk-secret" not in html  # failure reasons; settings redacted
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) == 3  # labels + a score histogram per model
    for src in imgs:
        assert (tmp_path / src).read_text().lstrip().startswith("<svg")


@pytest.mark.parametrize("sql", [
    "-- a comment\nselect a.id, 'it''s' as s, 1.5 as f, \"Odd Name\" /* why */ from a where v >= 0;",
    "select count(*) filter (where label) from kto",
    "select 1 where a<b and b>c and 'x&y' <> 'x&amp;y'",  # escaped, or the text would change
    "select $$ not closed",  # the tokenizer refuses it: pygments highlights it
])
def test_sql_highlight_pieces_give_back_the_text(sql):
    from kto_build.docs.html import highlight, tokens
    from kto_build.docs.sqltok import highlight_tokens

    toks = highlight_tokens(sql) or tokens(sql)
    assert "".join(v for _, v in toks) == sql
    html = highlight(sql, toks=toks)
    import html as h
    import re

    assert h.unescape(re.sub(r"<[^>]+>", "", html)).rstrip("\n") == sql
    if "count" in sql:
        assert ("nf", "count") in toks and ("k", "select") in toks


def test_model_pages_written_by_a_forked_process_equal_pages_written_here(docs_project, tmp_path, monkeypatch):
    """A cold build of a large project has the later half of its model pages (lineage, highlighting, the page)
    written by a forked process (docs/forked.py): the site is byte for byte the one written by one process."""
    from kto_build.docs import build
    from kto_build.project import Project

    project = Project.load(docs_project)
    models = [n for n in project.graph.order if project.nodes[n].kind == "model"]
    here = build.build_site(project, tmp_path / "here")
    monkeypatch.setattr(build, "FORK_ABOVE", 1)
    split = build.build_site(Project.load(docs_project), tmp_path / "split")
    assert here["pages_forked"] == 0
    assert 0 < split["pages_forked"] <= len(models) - len(models) // 2  # the child wrote them, not a fallback

    def files(root):
        return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()
                and not f.name.startswith(".")}

    a, b = files(tmp_path / "here"), files(tmp_path / "split")
    assert sorted(a) == sorted(b)  # the same charts too (their SVG ids count up within one process)
    # every page (a generation page once differed: its histograms' names hashed the rows in scan order)
    assert [f for f in a if f.endswith(".html") and a[f] != b[f]] == []
    assert any(f.startswith("img/") and "-history-" in f for f in b)  # the child's charts, rendered by the parent
    assert any("comes from" in a[f].decode() and "<a " in a[f].decode() for f in a if f.startswith("nodes/"))
    assert json.loads((tmp_path / "split" / ".cache.json").read_text())["entries"].keys() == \
        json.loads((tmp_path / "here" / ".cache.json").read_text())["entries"].keys()  # the child's entries kept
