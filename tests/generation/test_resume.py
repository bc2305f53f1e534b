"""kill -9 in the middle of a generation run, then rerun: nothing finished is lost or paid twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_kill9_mid_run_then_rerun_resumes(gproj, llm_server):
    texts = [f"Write a haiku about resumable thing {i}." for i in range(240)]
    gproj.prompts(texts)
    gproj.generator(models=gproj.model_entry(extra="concurrency: 4"),
                    settings="batch_size: 10\nbackoff: 0.01\ncommit_seconds: 0.2")
    llm_server.configure(hold_after=100)  # answers 100, then holds the next 4 (concurrency 4): no clock
    exe = str(Path(sys.executable).parent / "kto-build")
    proc = subprocess.Popen([exe, "--project-dir", str(gproj.root), "run"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        while not (llm_server.ok_requests == 100 and llm_server.held == 4):
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.01)  # polling the counters, not waiting for time to pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        llm_server.configure(hold_after=None)
    answered = llm_server.ok_requests
    assert answered < len(texts)

    committed = dict(gproj.query("SELECT prompt, created_at FROM _kto_build.generations WHERE status = 'ok'"))
    # several batches landed; at most the batch in flight (and the requests still open) was lost
    assert 60 <= len(committed) <= answered
    # lost: at most two batches held in memory (back-pressure) plus the requests in flight
    assert answered - len(committed) <= 2 * 10 + 2 * 4
    assert "gens" not in {r[0] for r in gproj.query("SELECT table_name FROM duckdb_tables()")}

    llm_server.reset()
    rr = gproj.run()
    assert rr.ok, rr.nodes
    # no request for a row that was already committed, exactly one for each of the others
    assert llm_server.requests == len(texts) - len(committed)
    assert not set(llm_server.by_prompt) & set(committed)
    assert all(v == 1 for v in llm_server.by_prompt.values())
    # no finished row was lost or rewritten, and every prompt has its generation once
    after = dict(gproj.query("SELECT prompt, created_at FROM gens WHERE status = 'ok'"))
    assert len(after) == len(texts) == gproj.scalar("SELECT count(DISTINCT generation_id) FROM gens")
    assert all(after[p] == t for p, t in committed.items())
    assert gproj.scalar("SELECT count(*) FROM _kto_build.generations") == len(texts)


def test_ctrl_c_keeps_finished_rows(gproj, llm_server):
    """Ctrl-C after exactly 40 answers: the server holds every later request, so the test waits on request
    counts (no clock): 40 answered, the next 2 (concurrency 2) held, i.e. the client has read all 40."""
    texts = [f"Write a haiku about interrupted thing {i}." for i in range(200)]
    gproj.prompts(texts)
    gproj.generator(models=gproj.model_entry(extra="concurrency: 2"),
                    settings="batch_size: 1000\nbackoff: 0.01\ncommit_seconds: 60")  # no batch commits at all
    llm_server.configure(hold_after=40)
    exe = str(Path(sys.executable).parent / "kto-build")
    proc = subprocess.Popen([exe, "--project-dir", str(gproj.root), "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        while not (llm_server.ok_requests == 40 and llm_server.held == 2):
            assert proc.poll() is None, "the run ended before it was interrupted"
            time.sleep(0.01)  # polling the counters, not waiting for time to pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)  # a hang guard only
    finally:
        llm_server.configure(hold_after=None)
    assert proc.returncode == 130, err
    assert "interrupted: finished batches and nodes are kept; rerun to resume" in err
    assert "Traceback" not in err
    import json  # an interrupted run still writes run_results.json (issue 9)

    results = json.loads((gproj.root / "target" / "run_results.json").read_text())
    assert results["interrupted"] is True and results["success"] is False
    assert results["nodes"][-1] == {"name": "gens", "kind": "generation", "status": "interrupted", "rows": None,
                                    "seconds": 0.0, "message": "interrupted (Ctrl+C)", "reason": ""}
    # every answer the client had read was committed on the way out
    assert gproj.scalar("SELECT count(*) FROM _kto_build.generations WHERE status = 'ok'") == 40
    llm_server.reset()
    assert gproj.run().ok
    assert llm_server.requests == len(texts) - 40


def test_database_can_be_queried_between_batches(gproj, llm_server):
    """A long run holds the DuckDB file only while it commits a batch: readers get in between."""
    import duckdb

    gproj.prompts([f"Write a haiku about queried thing {i}." for i in range(150)])
    gproj.generator(models=gproj.model_entry(extra="concurrency: 2"),
                    settings="batch_size: 10\nbackoff: 0.01\ncommit_seconds: 0.2")
    llm_server.configure(hold_after=30)  # the run pauses after 30 answers, then after 60: no clock
    exe = str(Path(sys.executable).parent / "kto-build")
    proc = subprocess.Popen([exe, "--project-dir", str(gproj.root), "run"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))

    def committed() -> int | None:
        """The committed row count, read while the run is still going (None: the file is busy right now)."""
        try:
            con = duckdb.connect(str(gproj.root / "target" / "kto_build.duckdb"), read_only=True)
        except duckdb.Error:  # a batch is being committed right now
            return None
        try:
            return con.execute("SELECT count(*) FROM _kto_build.generations").fetchone()[0]
        except duckdb.CatalogException:
            return None
        finally:
            con.close()

    seen: list[int] = []
    try:
        for pause in (30, 60):
            while committed() != pause:  # every answer read so far gets committed while the run waits
                assert proc.poll() is None, "the run ended early"
                time.sleep(0.01)  # polling the row count, not waiting for time to pass
            seen.append(pause)
            llm_server.configure(hold_after=None)
            if pause == 30:
                llm_server.configure(hold_after=60)
    finally:
        llm_server.configure(hold_after=None)
        proc.wait(timeout=600)  # a hang guard only
    assert proc.returncode == 0
    assert seen == [30, 60]
    assert committed() == 150
