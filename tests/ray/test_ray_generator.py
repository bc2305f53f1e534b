"""A generator with `ray:` on the real 2-node loopback cluster: the same table as without Ray, rows made on both
nodes (`worker`), an unreachable cluster is one line before any call, and the no-op rerun imports no ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from kto_build.project import Project
from scripts.ray_cluster import HEAD_RESOURCE, WORKER_RESOURCE

KEY_ENV = "KTO_TEST_RAY_GEN_KEY"
KTO = str(Path(sys.executable).parent / "kto-build")
SAME = ("generation_id", "prompt_id", "prompt", "system_prompt", "generator", "model_name", "model_fingerprint",
        "sample_index", "completion", "status", "error", "generation_kwargs", "input_tokens", "output_tokens")


def project(root: Path, url: str, n: int, ray: str = "") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "project.yml").write_text("name: ray_gen\n")
    (root / "data" / "p.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "text": f"ray topic {i}"}) + "\n"
                                                   for i in range(n)))
    (root / "sources.yml").write_text(f"""prompts:
  raw: {{path: data/p.jsonl, text: text, id: id}}
generators:
  gens:
    prompts: raw
    system_prompt: You write haiku.
    num_generations: 2
    batch_size: 10
{ray}    models:
      - name: a
        llm: OpenAILLM
        params: {{model: test-model, base_url: "{url}"}}
        api_key_env: {KEY_ENV}
        concurrency: 4
        generation: {{temperature: 0.7, max_new_tokens: 16}}
      - name: b
        llm: OpenAILLM
        params: {{model: test-model-b, base_url: "{url}"}}
        api_key_env: {KEY_ENV}
        concurrency: 4
""")
    return root


def rows(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT {', '.join(SAME)}, worker FROM gens ORDER BY generation_id").fetchall()
    finally:
        con.close()


def ray_yaml(cluster) -> str:
    return (f'    ray: {{address: "{cluster.address}", actors: 2, num_cpus: 0.5, num_gpus: 0, '
            f"resources: [{{{HEAD_RESOURCE}: 1}}, {{{WORKER_RESOURCE}: 1}}]}}\n")


def test_generator_on_ray_equals_a_run_without_ray(cluster, llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    plain = project(tmp_path / "plain", llm_server.url, 30)
    on_ray = project(tmp_path / "ray", llm_server.url, 30, ray_yaml(cluster))
    assert Project.load(plain).run().ok
    assert llm_server.requests == 120
    rr = Project.load(on_ray).run()
    assert rr.ok, rr.nodes
    assert llm_server.requests == 240  # every key once, nothing twice
    a, b = rows(plain), rows(on_ray)
    assert [r[:-1] for r in a] == [r[:-1] for r in b]  # row for row, but for where each was made
    here = f":{os.getpid()}"
    assert {r[-1] for r in a} == {r[-1] for r in a if r[-1].endswith(here)}  # without Ray: this process
    workers = {r[-1] for r in b}
    assert len(workers) == 4 and not any(w.endswith(here) for w in workers)  # 2 actors x 2 models
    # the no-op rerun with `ray:` configured: 0 calls, and ray is never imported
    code = ("import sys; from kto_build.project import Project; rr = Project.load(sys.argv[1]).run(); "
            "print(rr.ok, rr.node('gens')['status'], 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(on_ray)], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "skipped", "False"], out.stderr[-2000:]
    assert llm_server.requests == 240


def test_unreachable_cluster_is_one_line_before_any_call(llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    root = project(tmp_path / "p", llm_server.url, 5, '    ray: {address: "127.0.0.2:1", actors: 2}\n')
    out = subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    err = out.stderr.strip()
    assert "Traceback" not in err
    assert "sources.yml:9" in err and "cannot reach the Ray cluster at 127.0.0.2:1" in err, err
    assert llm_server.requests == 0


def test_a_cluster_no_node_of_which_can_hold_an_actor_is_one_line_before_any_call(cluster, llm_server, tmp_path,
                                                                                   monkeypatch):
    """Ray keeps an actor it cannot place pending forever: asking for a GPU on the GPU-less loopback cluster ends,
    after the wait an autoscaler would get (shortened here), in one line at the `ray:` key, before any call, with
    the rows stored before kept."""
    from kto_build.adapters import ray_resources

    monkeypatch.setenv(KEY_ENV, "k")
    monkeypatch.setattr(ray_resources, "PLACEMENT_WAIT", 2.0)
    root = project(tmp_path / "g", llm_server.url, 3)
    assert Project.load(root).run().ok and len(rows(root)) == 12
    project(root, llm_server.url, 5, ray_yaml(cluster).replace("num_gpus: 0", "num_gpus: 1"))
    llm_server.reset()
    rr = Project.load(root).run()
    node = rr.node("gens")
    assert not rr.ok and node["status"] == "failed", rr.nodes
    msg = node["message"]
    assert "\n" not in msg and "sources.yml:9" in msg and "no node of the Ray cluster" in msg, msg
    assert "GPU 1" in msg and "waited 2 s" in msg and "worker_node 100" in msg, msg
    assert llm_server.requests == 0 and len(rows(root)) == 12


def test_kill_9_of_the_driver_mid_run_rerun_sends_only_what_was_not_committed(cluster, llm_server, tmp_path,
                                                                              monkeypatch):
    """The server answers 40 requests and holds the rest; once one is held the driver is killed (-9). The rerun
    asks only for the keys that were not committed, and the table ends complete with no key twice."""
    import signal
    import time

    monkeypatch.setenv(KEY_ENV, "k")
    root = project(tmp_path / "k", llm_server.url, 40, ray_yaml(cluster))  # 40 prompts x 2 samples x 2 models
    llm_server.configure(hold_after=40)
    driver = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240  # a guard against a hang, not a timing assumption
        while llm_server.held < 1 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert llm_server.held >= 1, driver.stderr.read() if driver.poll() is not None else "no request held"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    first = llm_server.requests
    llm_server.reset()  # releases the held requests; counters to 0
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"))
    committed = con.execute("SELECT count(*) FROM _kto_build.generations WHERE status = 'ok'").fetchone()[0]
    con.close()
    assert committed <= 40 < first  # at most what was answered; the held calls were sent and never stored
    rr = Project.load(root).run()
    assert rr.ok, rr.nodes
    # nothing committed is asked again; the killed run's actors may still send what their shards held until Ray
    # reaps them (driver death): at most the shards in flight, 2 models x 2 actors x 2 shards x 4 requests
    assert 160 - committed <= llm_server.requests <= 160 - committed + 32
    got = rows(root)
    assert len(got) == 160 and len({r[0] for r in got}) == 160
