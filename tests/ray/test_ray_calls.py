"""kto_build.adapters.ray_calls on a real 2-node loopback Ray cluster, against the OpenAI-compatible test server,
through distilabel's OpenAILLM. The worker-node kill runs last in this module (it takes a node away)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kto_build.adapters import distilabel_llm as dl
from kto_build.adapters.ray_calls import ActorStartError, RayExecutor, RayUnavailableError
from scripts.ray_cluster import HEAD_RESOURCE, WORKER_RESOURCE, known_wildcard, outside_loopback, sockets

KEY_ENV = "KTO_TEST_RAY_LLM_KEY"
SECRET = "sk-test-RAY-secret-4b9e1d"
SYSTEM = "You write haiku."
BOTH_NODES = [{HEAD_RESOURCE: 1}, {WORKER_RESOURCE: 1}]


def spec(server, **extra) -> dict:
    return {"llm": "OpenAILLM", "params": {"model": "test-model", "base_url": server.url},
            "generation": {"temperature": 0.7, "max_new_tokens": 32}, "retries": 2, "backoff": 0.01, **extra}


def chat(prompt: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def requests(n: int, tag: str = "p") -> list[dict]:
    return [{"key": f"{tag}{i:04d}", "input": chat(f"{tag} prompt number {i}")} for i in range(n)]


def direct(sp: dict, reqs: list[dict], api_key: str) -> dict:
    """The same calls in this process, as the generation node makes them."""
    llm = dl.build_llm(dl.load_llm_class(sp["llm"]), sp["params"], api_key)
    llm.load()

    async def go():
        return await asyncio.gather(*(dl.agenerate_one(llm, r["input"], sp["generation"]) for r in reqs))

    out = asyncio.run(go())
    return {r["key"]: o for r, o in zip(reqs, out, strict=True)}


def executor(cluster, **kw) -> RayExecutor:
    return RayExecutor(address=cluster.address, node_ip=cluster.ip, **kw)


def test_results_equal_direct_calls_and_come_from_both_nodes(cluster, llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    sp, reqs = spec(llm_server), requests(40)
    api_key = os.environ[KEY_ENV]  # read on the driver, handed to the actors' constructors
    with executor(cluster, actors=2, resources=BOTH_NODES, shard_size=5) as ex:
        infos = ex.start(sp, api_key)
        results = list(ex.run(reqs))
    assert len({i["node_id"] for i in infos}) == 2  # one actor per node
    assert sorted(r["key"] for r in results) == sorted(r["key"] for r in reqs)
    assert {r["worker"] for r in results} == {i["worker"] for i in infos}
    assert all(r["status"] == "ok" and r["error"] is None for r in results)
    assert llm_server.requests == 40
    want = direct(sp, reqs, api_key)
    got = {r["key"]: (r["text"], r["input_tokens"], r["output_tokens"]) for r in results}
    assert got == want
    # the secret reached the server's clients, and no file Ray wrote mentions it
    leaked = [p for d in (cluster.temp_dir, cluster.log_dir) for p in Path(d).rglob("*")
              if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []


def test_failures_are_per_request_results(cluster, llm_server):
    llm_server.configure(bad_request_marker="BAD")
    reqs = [*requests(6), {"key": "bad", "input": chat("a BAD prompt")}]
    try:
        with executor(cluster, actors=1) as ex:
            ex.start(spec(llm_server), "k")
            results = {r["key"]: r for r in ex.run(reqs)}
    finally:
        llm_server.configure(bad_request_marker=None)
    assert len(results) == 7 and results["bad"]["status"] == "failed"
    assert results["bad"]["error"].startswith("HTTP 400") and results["bad"]["text"] is None
    assert all(results[r["key"]]["status"] == "ok" for r in reqs[:6])


def test_actor_that_cannot_load_its_llm_is_one_line(cluster, llm_server):
    with executor(cluster, actors=1) as ex, pytest.raises(ActorStartError) as err:
        ex.start(spec(llm_server))  # OpenAILLM without an API key fails in load()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("a Ray actor could not load OpenAILLM: ValueError:")
    assert "API key" in msg and llm_server.requests == 0


@pytest.mark.parametrize("address, words", [
    ("127.0.0.2:1", "cannot reach the Ray cluster at 127.0.0.2:1"),
    ("ray://127.0.0.2:1", "cannot reach the Ray cluster at ray://127.0.0.2:1"),
    ("nowhere", "is not host:port, ray://host:port, auto or local"),
])
def test_unreachable_address_is_one_line(address, words):
    code = ("from kto_build.adapters.ray_calls import ActorStartError, RayExecutor, RayUnavailableError\n"
            "try:\n    RayExecutor(address=__import__('sys').argv[1]).connect()\n"
            "except RayUnavailableError as e:\n    print(e); raise SystemExit(2)\n")
    out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr == ""
    assert out.stdout.count("\n") == 1 and words in out.stdout
    with pytest.raises(RayUnavailableError):
        RayExecutor(address=address).connect()


def test_nothing_leaves_loopback(cluster, llm_server):
    """Everything the cluster started, and the driver, is bound to or connected within 127.0.0.0/8.

    Ray 2.60's gcs_server, raylets, dashboard agent, metrics exporters and core workers *listen* on the wildcard
    address (no flag changes that); those listeners are reported, not hidden (see docs/scale.md)."""
    with executor(cluster, actors=2, resources=BOTH_NODES) as ex:
        infos = ex.start(spec(llm_server), "k")
        assert len(list(ex.run(requests(8)))) == 8
        pids = set(cluster.pids())
        assert {int(i["worker"].rsplit(":", 1)[1]) for i in infos} <= pids  # the actors' processes are checked
        socks = sockets({*pids, os.getpid()})
        bad, wildcard = outside_loopback(socks)
    assert any(s["state"] == "ESTAB" for s in socks)
    assert bad == []
    assert known_wildcard(wildcard), wildcard


def test_killed_worker_node_reruns_its_shard_elsewhere(cluster, llm_server):
    """kill -9 of the worker node while its actor holds a shard: that shard runs again on the head's actor,
    every key comes back exactly once. (Each shard takes 4 x 0.5 s at concurrency 1; the kill follows the
    worker's first result within milliseconds, so its second shard is still running.)"""
    llm_server.configure(latency=0.5)
    reqs = requests(24, tag="k")
    with executor(cluster, actors=2, resources=BOTH_NODES, shard_size=4, in_flight=2) as ex:
        infos = ex.start(spec(llm_server, concurrency=1), "k")
        worker_node = next(i["worker"] for i in infos if i["node_id"] != _head_node_id(infos, cluster))
        seen, killed = [], False
        for r in ex.run(reqs):
            seen.append(r)
            if r["worker"] == worker_node and not killed:
                cluster.kill_node("worker")
                killed = True
    keys = [r["key"] for r in seen]
    assert killed and len(keys) == len(set(keys)) == 24
    assert ex.resubmitted >= 1
    assert all(r["status"] == "ok" for r in seen)


def _head_node_id(infos, cluster) -> str:
    import ray

    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get(HEAD_RESOURCE))
