"""Atomic nodes and the single writer."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def test_broken_model_keeps_old_table_and_others_run(proj):
    proj.run()
    before = proj.query("select * from stg_prompts order by 1")
    proj.write("models/stg_prompts.sql", """
        select prompt_id,
               trim(prompt) as prompt,
               no_such_column as oops
        from raw_prompts
    """)
    proj.write("models/other.sql", "select 42 as answer from raw_prompts limit 1")
    r = proj.run()
    assert r["exit_code"] == 1
    st = proj.statuses(r)
    assert st["stg_prompts"] == "failed"
    assert st["other"] == "built"  # independent nodes still run
    assert st["prompt_stats"] == "skipped" and st["shouty"] == "skipped"  # downstream of the failure
    failed = next(n for n in r["nodes"] if n["name"] == "stg_prompts")
    assert failed["message"].startswith("models/stg_prompts.sql:3: Binder Error: Referenced column "
                                        '"no_such_column" not found'), failed["message"]
    assert next(n for n in r["nodes"] if n["name"] == "shouty")["message"] == "upstream 'stg_prompts' failed"
    assert proj.query("select * from stg_prompts order by 1") == before  # the previous table is intact
    assert "error: stg_prompts: models/stg_prompts.sql:3:" in r["output"]
    # fixing it rebuilds the model and what was skipped
    proj.write("models/stg_prompts.sql", "select prompt_id, trim(prompt) as prompt from raw_prompts")
    r = proj.run()
    assert r["exit_code"] == 0
    assert proj.built(r) == {"stg_prompts", "prompt_stats", "shouty"}


def test_failed_state_is_not_saved(proj):
    proj.run()
    proj.write("models/prompt_stats.sql", "select 1/0::int as boom, error('nope') from stg_prompts")
    assert proj.run()["exit_code"] == 1
    # still stale on the next run (the failed definition was never recorded as built)
    assert proj.run()["exit_code"] == 1


def test_second_writer_fails_at_once(proj):
    proj.run()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kto_build.state import Database\n"
         f"db = Database({str(proj.root / 'target' / 'kto_build.duckdb')!r})\n"
         "with db.writer_lock():\n    print('locked', flush=True); time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "kto_build.cli", "--project-dir", str(proj.root), "run"],
                             capture_output=True, text=True, timeout=30)
        assert time.monotonic() - t < 10
        assert res.returncode == 2
        assert res.stderr.strip() == (f"error: another kto-build run (pid {holder.pid}) is writing to "
                                      "target/kto_build.duckdb; wait for it to finish or stop it")
        assert "Traceback" not in res.stderr
    finally:
        holder.kill()
        holder.wait()
    assert proj.run()["exit_code"] == 0  # the lock dies with its process


def test_user_shell_holding_the_file(proj):
    proj.run()
    proj.write("models/prompt_stats.sql", "select 2 as n")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, time\n"
         f"con = duckdb.connect({str(proj.root / 'target' / 'kto_build.duckdb')!r})\n"
         "print('open', flush=True); time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        res = subprocess.run([sys.executable, "-m", "kto_build.cli", "--project-dir", str(proj.root), "run"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2
        exe = os.path.basename(os.path.realpath(sys.executable))
        assert res.stderr.strip() == (f"error: cannot open target/kto_build.duckdb: {exe} (pid {holder.pid}) "
                                      "holds the file open for writing (close that duckdb shell or notebook "
                                      "connection, or open it with read_only=True and close it between queries)")
    finally:
        holder.kill()
        holder.wait()
