"""The generation package: `enabled: false` on a model, the worker column (and its migration), and the
call machinery through its two seams (an Executor, a RowSink) as a judge or a Ray executor uses it."""

from __future__ import annotations

import os
import socket

import duckdb
import pytest

from kto_build.errors import KtoBuildError
from kto_build.nodes.base import NodeContext, Reporter
from kto_build.nodes.generation import CACHE, COLUMNS, ModelEntry
from kto_build.nodes.generation.calls import CallDriver, CallRequest, CallResult
from kto_build.redact import register
from kto_build.state import Database

WORKER = f"{socket.gethostname()}:{os.getpid()}"


# ------------------------------------------------------------------ enabled: false
def test_a_disabled_model_is_left_out_of_calls_keys_plan_and_table(gproj, llm_server):
    off = gproj.model_entry(name="alt", generation="{temperature: 0.3, max_new_tokens: 32}", extra="enabled: false")
    gproj.generator(models=gproj.model_entry() + off)
    plan = gproj.load().plan()
    assert plan.items[1].detail == "20 calls (srv 20) for the 20 prompts in 'raw'"
    rr = gproj.run()
    assert rr.ok and llm_server.requests == 20
    assert gproj.query("SELECT DISTINCT model_name FROM gens") == [("srv",)]
    assert gproj.scalar("SELECT count(*) FROM _kto_build.generations") == 20
    # enabling it: its calls only, and its rows join the table
    llm_server.reset()
    gproj.generator(models=gproj.model_entry() + off.replace("enabled: false", "enabled: true"))
    assert gproj.load().plan().items[1].detail == "20 calls (srv 0, alt 20) for the 20 prompts in 'raw'"
    assert gproj.run().ok and llm_server.requests == 20
    assert gproj.query("SELECT model_name, count(*) FROM gens GROUP BY 1 ORDER BY 1") == [("alt", 20), ("srv", 20)]
    # disabled again: its rows leave the table, stay in the cache, and prune keeps them
    gproj.generator(models=gproj.model_entry() + off)
    llm_server.reset()
    rr = gproj.run()
    assert rr.node("gens")["status"] == "built" and llm_server.requests == 0
    assert gproj.query("SELECT DISTINCT model_name FROM gens") == [("srv",)]
    res = gproj.cli("prune")
    assert res.returncode == 0, res.stderr
    assert gproj.scalar("SELECT count(*) FROM _kto_build.generations") == 40
    assert "would be deleted" not in res.stdout


def test_every_model_disabled_is_one_clear_error(gproj):
    gproj.generator(models=gproj.model_entry(extra="enabled: false"))
    with pytest.raises(KtoBuildError, match="every model of generator 'gens' for target 'dev' has 'enabled: false'"):
        gproj.load()


def test_enabled_must_be_a_boolean(gproj):
    gproj.generator(models=gproj.model_entry(extra="enabled: perhaps"))
    res = gproj.cli("ls")
    assert res.returncode != 0 and "enabled" in res.stderr and "Traceback" not in res.stderr


# ------------------------------------------------------------------ worker column
def test_rows_name_the_process_that_made_the_call(gproj, llm_server):
    assert gproj.run().ok
    assert gproj.query("SELECT DISTINCT worker FROM gens") == [(WORKER,)]
    assert gproj.query("SELECT DISTINCT worker FROM _kto_build.generations") == [(WORKER,)]


def test_an_older_cache_gets_the_worker_column_and_keeps_its_rows(gproj, llm_server):
    assert gproj.run().ok
    con = duckdb.connect(str(gproj.root / "target" / "kto_build.duckdb"))
    # the cache as an older kto-build made it (no worker column), with 10 of the 20 rows
    old = ", ".join(f"{c} {t}" for c, t in COLUMNS if c != "worker")
    con.execute(f"CREATE TABLE old_rows AS SELECT * EXCLUDE (worker) FROM {CACHE} WHERE prompt_id < 'p0010'")
    con.execute(f"DROP TABLE {CACHE}")
    con.execute(f"CREATE TABLE {CACHE} ({old})")
    con.execute(f"INSERT INTO {CACHE} SELECT * FROM old_rows")
    con.execute("DROP TABLE old_rows")
    con.close()
    with (gproj.root / "data" / "prompts.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "p0020", "instructions": "One more prompt."}\n')  # the generator runs again
    llm_server.reset()
    rr = gproj.run()
    assert rr.ok, rr.nodes
    assert llm_server.requests == 11  # the 10 old rows are not asked for again
    assert gproj.query("SELECT worker IS NULL, count(*) FROM _kto_build.generations GROUP BY 1 ORDER BY 1") == \
        [(False, 11), (True, 10)]
    assert gproj.query("SELECT worker, count(*) FROM gens GROUP BY 1 ORDER BY 1 NULLS LAST") == \
        [(WORKER, 11), (None, 10)]


# ------------------------------------------------------------------ the seams
class ListSink:
    """A judge-like sink: its own table, its own row shape."""

    def __init__(self):
        self.batches: list[int] = []

    def to_row(self, request: CallRequest, result: CallResult) -> tuple:
        return (request.key, request.model.name, result.status, result.text, result.error, result.worker)

    def commit(self, con, rows: list) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS verdicts (key VARCHAR PRIMARY KEY, model VARCHAR, status VARCHAR, "
                    "text VARCHAR, error VARCHAR, worker VARCHAR)")
        con.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.batches.append(len(rows))


class ScriptedExecutor:
    """An executor whose answers are a function of the request: how a Ray executor plugs in."""

    def __init__(self, answer):
        self.answer, self.calls, self.started, self.closed = answer, [], False, False

    def start(self, models, api_keys) -> None:
        self.started = True

    async def run(self, requests, gate):
        for r in requests:
            if not await gate.wait(r.model):
                continue
            gate.started(r)
            self.calls.append(r.key)
            yield self.answer(r)

    def close(self) -> None:
        self.closed = True


def model(name: str) -> ModelEntry:
    return ModelEntry(name, "OpenAILLM", {"model": name}, {}, None, None, 0, None)


def driver_ctx(tmp_path) -> NodeContext:
    ctx = NodeContext(project=None, node=None, fingerprint="", state=None, input_versions={}, states={},
                      reporter=Reporter())
    ctx.db = Database(tmp_path / "calls.duckdb")
    return ctx


def test_driver_commits_a_sinks_rows_in_batches_and_stops_a_failing_model(tmp_path):
    register("sk-calls-secret-1234")
    good, bad = model("good"), model("bad")

    def answer(r: CallRequest) -> CallResult:
        if r.model is bad:
            return CallResult(r.key, "failed", None, "HTTP 500: sk-calls-secret-1234 leaked", None, None, 1.0, 3, "w:1")
        return CallResult(r.key, "ok", f"yes {r.key}", None, 3, 2, 1.0, 1, "w:1", raw={"logprobs": []})

    requests = [CallRequest(f"g{i}", [{"role": "user", "content": "q"}], good) for i in range(7)]
    requests += [CallRequest(f"b{i}", "q", bad, extra={"logprobs": True}) for i in range(10)]
    ex = ScriptedExecutor(answer)
    ctx, sink = driver_ctx(tmp_path), ListSink()
    stats = CallDriver("judge", ctx, ex, sink, batch_size=3, max_consecutive_failures=4,
                       noun="judgement").run(requests)
    assert ex.calls == [f"g{i}" for i in range(7)] + [f"b{i}" for i in range(4)]  # bad stopped after 4
    assert (stats.calls, stats.ok, stats.failed, stats.retries, stats.output_tokens) == (11, 7, 4, 8, 14)
    # back-pressure: no call while two batches wait, so no commit holds more than 2 x batch_size rows
    assert sum(sink.batches) == 11 and max(sink.batches) <= 6 and stats.batches == len(sink.batches) >= 2
    assert stats.warnings == [
        "stopped calling 'bad' after 4 failures in a row: HTTP 500: *** leaked"]
    con = duckdb.connect(str(tmp_path / "calls.duckdb"), read_only=True)
    rows = con.execute("SELECT model, status, count(*), count(DISTINCT worker), max(error) FROM verdicts "
                       "GROUP BY ALL ORDER BY 1").fetchall()
    con.close()
    assert rows == [("bad", "failed", 4, 1, "HTTP 500: *** leaked"), ("good", "ok", 7, 1, None)]
    assert requests[7].kwargs() == {"logprobs": True}


def test_call_result_from_a_ray_result_dict():
    d = {"key": "k", "status": "ok", "text": "t", "error": None, "input_tokens": 1, "output_tokens": 2,
         "latency_ms": 3.5, "attempts": 2, "worker": "h:9"}
    assert CallResult.from_dict(d) == CallResult("k", "ok", "t", None, 1, 2, 3.5, 2, "h:9")


def test_local_executor_calls_the_server_with_extra_kwargs(llm_server):
    from kto_build.nodes.generation.calls import run_async
    from kto_build.nodes.generation.local import LocalExecutor

    m = ModelEntry("srv", "OpenAILLM", {"model": "test-model", "base_url": llm_server.url}, {"max_new_tokens": 32},
                   None, 2, 0, 30.0)
    ex = LocalExecutor()
    ex.start([m], {"srv": "sk-x"})

    class OpenGate:
        def __init__(self):
            self.keys = []

        async def wait(self, model):
            return True

        def started(self, request):
            self.keys.append(request.key)

    gate = OpenGate()

    async def collect():
        return [r async for r in ex.run(reqs, gate)]

    reqs = [CallRequest(f"k{i}", [{"role": "user", "content": f"prompt {i}"}], m, extra={"temperature": 0.1})
            for i in range(5)]
    try:
        results = run_async(collect())
    finally:
        ex.close()
    assert sorted(r.key for r in results) == [f"k{i}" for i in range(5)] == sorted(gate.keys)
    assert all(r.status == "ok" and r.worker == WORKER and r.attempts == 1 for r in results)
    # the request's own kwargs reached the server
    assert all("temperature 0.1" in r.text for r in results), [r.text for r in results]
    assert llm_server.requests == 5


def test_local_executor_closes_its_http_clients_in_the_loop_that_used_them(llm_server):
    """Closed by ``run`` itself: left to the garbage collector after asyncio.run has ended, httpx printed
    "RuntimeError: Event loop is closed" after a run (or closed them from a later run's loop)."""
    from kto_build.nodes.generation.calls import run_async
    from kto_build.nodes.generation.local import LocalExecutor

    m = ModelEntry("srv", "OpenAILLM", {"model": "test-model", "base_url": llm_server.url}, {"max_new_tokens": 8},
                   None, 4, 0, 30.0)
    ex = LocalExecutor()
    ex.start([m], {"srv": "sk-x"})

    class OpenGate:
        async def wait(self, model):
            return True

        def started(self, request):
            pass

    async def collect():
        return [r async for r in ex.run(reqs, OpenGate())]

    reqs = [CallRequest(f"k{i}", [{"role": "user", "content": f"prompt {i}"}], m) for i in range(6)]
    client = ex.llms["srv"]._aclient
    try:
        results = run_async(collect())
        assert [r.status for r in results] == ["ok"] * 6 and llm_server.requests == 6
        assert client.is_closed()
    finally:
        ex.close()
