"""Per-node build history: ``_kto_build.node_history`` gets one row per build, in the node's own transaction
(a failed build gets a 'failed' row with its one-line reason, in its own transaction after the rollback), is
never rewritten, and the node pages show it as a table and a chart."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from .conftest import kto, tiny_project

TABLES = "models:\n  materialized: table\n"


def _history(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    try:
        return con.execute("SELECT node, status, rows, fingerprint, finished_at FROM _kto_build.node_history "
                           "ORDER BY finished_at").fetchall()
    finally:
        con.close()


def _section(root: Path, node: str) -> str:
    html = (root / "target" / "docs" / "nodes" / f"{node}.html").read_text()
    return html.split("<h2>Build history</h2>", 1)[1].split("<h2>", 1)[0]


def test_history_appends_per_build_and_pages_show_it(tmp_path):
    root = tiny_project(tmp_path / "tiny", TABLES)
    first = _history(root)
    assert [(n, s, r) for n, s, r, _, _ in first] == [("a", "built", 1), ("b", "built", 1)]
    (root / "models" / "b.sql").write_text("select x, 2 as y from a union all select 3, 4\n")
    kto(root, "run")
    second = _history(root)
    assert second[:2] == first  # appended, earlier rows untouched
    assert [(n, s, r) for n, s, r, _, _ in second[2:]] == [("b", "built", 2)]
    assert second[2][3] != second[1][3]  # the new fingerprint
    (root / "models" / "b.sql").write_text("select nope from a\n")
    failed = kto(root, "run", check=False)
    assert failed.returncode != 0
    third = _history(root)
    assert third[:3] == second  # the failed build rolled back with its node: nothing lost, nothing rewritten
    assert [(n, s, r) for n, s, r, _, _ in third[3:]] == [("b", "failed", None)]  # and it has its line
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    message = con.execute("SELECT message FROM _kto_build.node_history WHERE status = 'failed'").fetchone()[0]
    con.close()
    assert "nope" in message

    (root / "models" / "b.sql").write_text("select x, 2 as y from a union all select 3, 4\n")
    kto(root, "docs")
    b = _section(root, "b")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>built</td><td>(\d+)</td>", b)
    assert [(t, int(n)) for t, n in rows] == [(str(second[2][4]), 2), (str(second[1][4]), 1)]  # newest first
    assert re.search(r"<td>failed</td><td class=\"muted\">–</td><td>[0-9.]+</td><td>[0-9a-f]{12}</td><td>[^<]*nope", b)
    img = re.search(r'<img src="([^"]+)"', b)
    assert img and (root / "target" / "docs" / "nodes" / img.group(1)).resolve().is_file()
    svg = (root / "target" / "docs" / "nodes" / img.group(1)).read_text()
    assert svg.lstrip().startswith("<svg") and "Seconds per build" in svg
    a = _section(root, "a")
    assert len(re.findall(r"<tr><td>", a)) == 1 and "<img" not in a  # one build: a table row, no chart


def _old_database(root: Path, change: str) -> None:
    """A one-model project, built, then its database altered by ``change`` as if made by an older kto-build."""
    tiny_project(root, TABLES, a="select 1 as x")
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"))
    con.execute(change)
    con.close()


def test_a_database_from_before_node_history_gets_it_on_the_next_run(tmp_path):
    root = tmp_path / "old"
    _old_database(root, "DROP TABLE _kto_build.node_history")  # made before this table existed
    kto(root, "docs")  # no history table: the page shows the state's last build
    assert len(re.findall(r"<tr><td>", _section(root, "a"))) == 1
    (root / "models" / "a.sql").write_text("select 2 as x\n")
    kto(root, "run")
    assert [(n, s) for n, s, *_ in _history(root)] == [("a", "built")]


def test_history_gets_its_message_column_on_a_database_from_before_it(tmp_path):
    root = tmp_path / "older"
    _old_database(root, "ALTER TABLE _kto_build.node_history DROP COLUMN message")  # made before the column
    kto(root, "docs")  # read-only: reads the old table as it is
    (root / "models" / "a.sql").write_text("select nope\n")
    assert kto(root, "run", check=False).returncode != 0
    assert [(n, s) for n, s, *_ in _history(root)] == [("a", "built"), ("a", "failed")]
