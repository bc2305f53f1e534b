"""The commit path alone, on a real DuckDB file: Arrow inserts into both caches (INSERT OR REPLACE), and the
batches' shared write connection, let go at once when a reader waits."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from types import SimpleNamespace

import pytest

from kto_build.nodes.generation import batcher as batcher_module
from kto_build.nodes.generation.batcher import Batcher
from kto_build.nodes.generation.cache import CACHE, GenerationRow, GenerationSink
from kto_build.nodes.generation.calls import CallStats
from kto_build.nodes.judge.cache import CACHE as JCACHE
from kto_build.nodes.judge.cache import JudgementRow, JudgementSink
from kto_build.state import Database

COUNT = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM {table}").fetchone()[0])
"""


def gen_row(i: int, status: str = "ok") -> GenerationRow:
    return GenerationRow(f"g{i:04d}", f"p{i}", f"prompt {i}", None, "gens", "m", "fp", 0,
                         "text" if status == "ok" else None, status, None if status == "ok" else "boom",
                         '{"temperature": 0.7}', 3, 5 if status == "ok" else None, 12.5, datetime(2026, 1, 2, 3, 4),
                         "host:1")


def fresh_db(path) -> Database:
    """A project's file as the runner leaves it before a node runs: the state schema made."""
    db = Database(path)
    with db.connect() as con:
        db.ensure_schema(con)
    return db


def count_elsewhere(path, table=CACHE) -> subprocess.CompletedProcess:
    """Another process opens the file read-only, as a user's duckdb shell would."""
    return subprocess.run([sys.executable, "-c", COUNT.format(table=table), str(path)], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def batcher(tmp_path, monkeypatch):
    monkeypatch.setattr(batcher_module, "HOLD_SECONDS", 3600.0)  # only a waiting reader lets the file go
    ctx = SimpleNamespace(db=fresh_db(tmp_path / "t.duckdb"), reporter=None)
    b = Batcher(ctx, GenerationSink("gens", None, []), 10, 5.0, CallStats())
    yield b
    b.close()


def test_generation_rows_go_in_from_arrow_and_a_retried_failure_replaces(batcher, tmp_path):
    batcher.commit([gen_row(i, "failed") for i in range(10)])
    batcher.commit([gen_row(i) for i in range(5)])  # the retry of the first five
    batcher.close()
    import duckdb

    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    try:
        rows = con.execute(f"SELECT status, count(*), min(output_tokens), min(created_at), min(latency_ms) "
                           f"FROM {CACHE} GROUP BY status ORDER BY status").fetchall()
        kwargs_type = con.execute(f"SELECT typeof(generation_kwargs) FROM {CACHE} LIMIT 1").fetchone()[0]
    finally:
        con.close()
    assert rows == [("failed", 5, None, datetime(2026, 1, 2, 3, 4), 12.5), ("ok", 5, 5, datetime(2026, 1, 2, 3, 4),
                                                                             12.5)]
    assert kwargs_type == "JSON"


def test_judgement_rows_go_in_through_the_same_helper(tmp_path):
    ctx = SimpleNamespace(db=fresh_db(tmp_path / "j.duckdb"), reporter=None)
    b = Batcher(ctx, JudgementSink("judge", ["Yes", "No"], "tf", []), 10, 5.0, CallStats(), "judgement")
    rows = [JudgementRow(f"j{i}", "judge", f"r{i}", "p", "c", "m", "fp", "tf", "Yes", 0.7, None, "Yes",
                         '{"Yes": -0.3}', "ok", None, 3, 1, 9.0, datetime(2026, 1, 2), "host:1") for i in range(3)]
    b.commit(rows)
    b.commit(rows[:1])  # the same key again: replaced, not doubled
    b.close()
    assert count_elsewhere(tmp_path / "j.duckdb", JCACHE).stdout.strip() == "3"


def test_batches_share_one_connection_and_a_waiting_reader_gets_in_after_the_next_commit(batcher, tmp_path):
    path = tmp_path / "t.duckdb"
    batcher.commit([gen_row(i) for i in range(10)])
    held = batcher._held
    batcher.commit([gen_row(i) for i in range(10, 20)])
    assert held is not None and batcher._held is held  # one open for both batches
    assert count_elsewhere(path).returncode != 0  # held: another process cannot open the file meanwhile
    flag = batcher.ctx.db.readers_dir / "12345"  # what open_reader leaves while it waits
    flag.parent.mkdir()
    flag.touch()
    batcher.commit([gen_row(i) for i in range(20, 30)])
    assert batcher._held is None
    assert count_elsewhere(path).stdout.strip() == "30"


def test_a_held_connection_is_let_go_while_no_batch_is_due(batcher, tmp_path):
    batcher.commit([gen_row(i) for i in range(10)])
    batcher._release_if_due()
    assert batcher._held is not None  # no reader waits, not held long
    (batcher.ctx.db.readers_dir / "12345").parent.mkdir()
    (batcher.ctx.db.readers_dir / "12345").touch()
    batcher._release_if_due()  # what the flusher does every 0.1 s while it waits for a batch
    assert batcher._held is None
    assert count_elsewhere(tmp_path / "t.duckdb").stdout.strip() == "10"
