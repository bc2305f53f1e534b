"""Readers during a run (issue 9, items 1 and 2), with real processes and kill -9.

- During a generation a reader (a read-only duckdb connection, as the README recommends) holds the file:
  the run keeps its finished rows in memory, says in one line that a reader (with its pid) holds the file,
  stops calling the LLM once two batches wait, and commits everything once the reader closes. A kill -9
  while the reader holds costs at most the two waiting batches and the calls in flight.
- During a chain of SQL models the run lets a waiting reader in at the next node boundary: ``kto-build show`` and a
  reader waiting through ``kto_build.state.open_reader`` get in while the run is still going.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.helpers import query

KTO = str(Path(sys.executable).with_name("kto-build"))
BATCH, CONC = 10, 4
READER = """
import sys, duckdb
from kto_build.state import open_reader
con = open_reader(sys.argv[1], timeout=120)
n = con.execute("SELECT count(*) FROM _kto_build.generations WHERE status = 'ok'").fetchone()[0]
print(n, flush=True)
sys.stdin.readline()  # hold the file until told
con.close()
"""


class Lines:
    """A process's stdout, line by line, waitable."""

    def __init__(self, stream):
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        while True:
            line = self.q.get(timeout=timeout)
            assert line is not None, "process ended before printing " + repr(text) + "\n" + "".join(self.seen)
            self.seen.append(line)
            if text in line:
                return line


def _start_run(gproj, n):
    gproj.prompts([f"Write a haiku about held thing {i}." for i in range(n)])
    gproj.generator(models=gproj.model_entry(extra=f"concurrency: {CONC}"),
                    settings=f"batch_size: {BATCH}\nbackoff: 0.01\ncommit_seconds: 0.1")
    gproj.server.configure(latency=0.02)
    return subprocess.Popen([KTO, "--project-dir", str(gproj.root), "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})


def _hold_reader(gproj):
    reader = subprocess.Popen([sys.executable, "-c", READER, str(gproj.root / "target" / "kto_build.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    committed = int(reader.stdout.readline())
    return reader, committed


def _wait_server(gproj, n):
    import time

    deadline = time.monotonic() + 120
    while gproj.server.ok_requests < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _wait_idle(gproj):
    """No call in flight: the run stopped calling (back-pressure) or ended."""
    import time

    deadline = time.monotonic() + 120
    while gproj.server._in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.005)


@contextlib.contextmanager
def _run_with_reader_held(gproj, n: int = 400):
    """A generation run of ``n`` prompts with a reader holding the file from the 40th call on, yielded once the
    run said it waits for the database and stopped calling; the reader lets go on exit."""
    run = _start_run(gproj, n)
    out = Lines(run.stdout)
    _wait_server(gproj, 40)
    reader, committed = _hold_reader(gproj)
    try:
        line = out.wait_for("wait for the database")
        _wait_idle(gproj)
        yield run, out, line, reader.pid, committed
    finally:
        reader.stdin.write("\n")
        reader.stdin.close()
        reader.wait()


def test_reader_during_generation_loses_nothing(gproj, llm_server):
    n = 400
    with _run_with_reader_held(gproj, n) as (run, out, line, reader_pid, committed):
        assert f"(pid {reader_pid}) holds the file as a reader" in line
        held = llm_server.requests
        # back-pressure: no more than the two waiting batches and the calls in flight since the reader opened
        assert held <= committed + 2 * BATCH + 2 * CONC + BATCH, (held, committed)
        assert run.poll() is None
    out.wait_for("Done in")
    assert run.wait(timeout=120) == 0, run.stderr.read()
    # every call made once, every answer stored: nothing paid was dropped
    assert llm_server.requests == n and set(llm_server.by_prompt.values()) == {1}
    assert query(gproj.root, "SELECT count(*) FROM gens WHERE status = 'ok'")[0][0] == n
    results = json.loads((gproj.root / "target" / "run_results.json").read_text())
    assert results["success"] and any("wait for the database" in w for w in results["nodes"][1]["warnings"])


def test_kill9_while_a_reader_holds_the_file(gproj, llm_server):
    n = 400
    with _run_with_reader_held(gproj, n) as (run, _out, _line, _pid, committed):
        run.send_signal(signal.SIGKILL)
        run.wait()
    paid = llm_server.requests
    kept = query(gproj.root, "SELECT count(*) FROM _kto_build.generations WHERE status = 'ok'")[0][0]
    assert kept >= committed
    assert paid - kept <= 2 * BATCH + 2 * CONC + BATCH, (paid, kept)  # at most the batches in flight
    llm_server.reset()
    res = gproj.cli("run")
    assert res.returncode == 0, res.stderr
    assert llm_server.requests == n - kept  # nothing committed is asked for again
    assert query(gproj.root, "SELECT count(*) FROM gens WHERE status = 'ok'")[0][0] == n


# ------------------------------------------------------------------ SQL chain
def _chain(root: Path, n_models: int = 40) -> None:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "project.yml").write_text("name: chain\n", encoding="utf-8")
    (root / "models" / "m00.sql").write_text("select range as i, md5(range::varchar) as h from range(300000)\n")
    for k in range(1, n_models):
        (root / "models" / f"m{k:02d}.sql").write_text(
            f"select i, md5(h || '{k}') as h from m{k - 1:02d}\n", encoding="utf-8")


def test_readers_get_in_during_a_sql_chain(tmp_path):
    root = tmp_path / "chain"
    _chain(root)
    run = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    out = Lines(run.stdout)
    out.wait_for("OK model m02")
    show = subprocess.run([KTO, "--project-dir", str(root), "show", "m01", "-n", "1"], capture_output=True,
                          text=True, timeout=120)
    alive_after_show = run.poll() is None
    assert show.returncode == 0, show.stderr
    assert alive_after_show, "the run ended before the reader got in: the test proves nothing (make the chain longer)"
    assert "Traceback" not in show.stderr
    out.wait_for("Done in")
    assert run.wait(timeout=300) == 0
    assert query(root, "SELECT count(*) FROM m39")[0][0] == 300000


def test_kill9_during_a_sql_chain_with_a_reader(tmp_path):
    root = tmp_path / "chain"
    _chain(root)
    run = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    out = Lines(run.stdout)
    out.wait_for("OK model m03")
    reader = subprocess.Popen([sys.executable, "-c", "import sys\nfrom kto_build.state import open_reader\n"
                               "con = open_reader(sys.argv[1])\nprint('in', flush=True)\nsys.stdin.readline()\n",
                               str(root / "target" / "kto_build.duckdb")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "in"
    run.send_signal(signal.SIGKILL)
    run.wait()
    reader.stdin.write("\n")
    reader.stdin.close()
    reader.wait()
    # consistent: every model the state says was built has its table with the stated row count
    states = query(root, "SELECT name, rows FROM _kto_build.nodes")
    assert states
    for name, rows in states:
        assert query(root, f"SELECT count(*) FROM {name}")[0][0] == rows
    res = subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert query(root, "SELECT count(*) FROM _kto_build.nodes")[0][0] == 40


def test_show_waits_for_the_run_with_one_line(tmp_path):
    """A writer holding the file (as a run does during a node): ``show`` says once that it waits, then reads."""
    root = tmp_path / "chain"
    _chain(root, n_models=2)
    assert subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import sys, duckdb\ncon = duckdb.connect(sys.argv[1])\n"
                               "print('held', flush=True)\nsys.stdin.readline()\ncon.close()\n",
                               str(root / "target" / "kto_build.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    show = subprocess.Popen([KTO, "--project-dir", str(root), "show", "m01", "-n", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = show.stderr.readline()  # printed after 1 s of waiting; the show is still waiting
        assert first.strip() == "waiting for the run to release the database target/kto_build.duckdb"
        assert show.poll() is None
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait()
    out, err = show.communicate(timeout=120)
    assert show.returncode == 0 and err == "", err
    assert out.strip()


def test_a_chain_keeps_its_connection_until_a_reader_announces_itself(tmp_path, monkeypatch):
    """Each close checkpoints the file: between nodes the shared connection is closed only for a reader that
    waits (a ``<db>.readers/<pid>`` file, as ``open_reader`` leaves), or after CHAIN_HOLD_SECONDS."""
    from kto_build import state

    db = state.Database(tmp_path / "chain.duckdb")
    db.hold()
    with db.connect() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS i")
    opens = state.OPENS
    monkeypatch.setattr(state, "CHAIN_HOLD_SECONDS", 0.0)
    db.let_readers_in()  # held "too long": closed (the runner then holds again for the next node)
    db.hold()
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(1,)]
    assert state.OPENS == opens + 1
    monkeypatch.setattr(state, "CHAIN_HOLD_SECONDS", 3600.0)
    db.let_readers_in()  # nobody waits: the same connection goes on
    db.hold()
    with db.connect():
        pass
    assert state.OPENS == opens + 1
    flag = db.readers_dir / "4242"
    flag.parent.mkdir()
    flag.touch()
    threading.Timer(0.2, flag.unlink).start()  # the reader "opens the file" and removes its flag
    db.let_readers_in()  # a reader waits: closed, and the run waits until the reader is in
    assert not flag.exists()
    db.hold()
    with db.connect():
        pass
    assert state.OPENS == opens + 2
    db.release()
