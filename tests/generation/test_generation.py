"""Generators against a real OpenAI-compatible HTTP server on 127.0.0.1, through distilabel's OpenAILLM."""

from __future__ import annotations

import json

import pytest

from kto_build.errors import KtoBuildError
from kto_build.nodes.generation import NAMES, generation_id
from tests.generation.conftest import SECRET

CONTRACT = ["generation_id", "prompt_id", "prompt", "system_prompt", "generator", "model_name", "model_fingerprint",
            "sample_index", "completion", "status", "error", "generation_kwargs", "input_tokens", "output_tokens",
            "latency_ms", "created_at", "worker"]


def node(rr, name="gens"):
    return rr.node(name)


def test_table_contract_and_recorded_fields(gproj, llm_server):
    rr = gproj.run()
    assert rr.ok, rr.nodes
    assert llm_server.requests == 20
    assert NAMES == CONTRACT
    cols = [r[0] for r in gproj.query("DESCRIBE gens")]
    assert cols == CONTRACT
    assert [r[0] for r in gproj.query("DESCRIBE _kto_build.generations")] == CONTRACT
    rows = gproj.query("SELECT prompt_id, prompt, system_prompt, generator, model_name, sample_index, completion, "
                       "status, error, generation_kwargs, input_tokens, output_tokens, latency_ms, created_at, "
                       "generation_id, model_fingerprint FROM gens ORDER BY prompt_id")
    assert len(rows) == 20
    r = rows[0]
    assert r[0] == "p0000" and r[1] == "Write a haiku about thing number 0."
    assert r[2] == "You write haiku." and r[3] == "gens" and r[4] == "srv" and r[5] == 0
    assert r[6].startswith("a haiku on: Write a haiku about thing number 0.")
    assert "temperature 0.7" in r[6]  # the generation kwargs reached the server
    assert r[7] == "ok" and r[8] is None
    assert json.loads(r[9]) == {"temperature": 0.7, "max_new_tokens": 32}
    assert r[10] == len("You write haiku. Write a haiku about thing number 0.".split())  # usage from the server
    assert r[11] == len(r[6].split())
    assert r[12] > 0 and r[13] is not None
    assert r[14] == generation_id(r[1], r[2], r[15], 0)
    # the downstream model read the ok rows
    assert gproj.scalar("SELECT count(*) FROM good") == 20


def test_cache_hit_sends_zero_requests(gproj, llm_server):
    assert gproj.run().ok
    assert llm_server.requests == 20
    llm_server.reset()
    plan = gproj.load().plan()
    assert [i.action for i in plan.items] == ["skip", "skip", "skip"]
    rr = gproj.run()
    assert rr.ok and all(n["status"] == "skipped" for n in rr.nodes)
    assert llm_server.requests == 0
    # a transport-only change (concurrency) is not even a rebuild
    gproj.generator(models=gproj.model_entry(extra="concurrency: 3"))
    rr = gproj.run()
    assert node(rr)["status"] == "skipped"
    # the prompt file changed (same prompts, other order): the node reruns, sends nothing, and its data
    # version stays, so downstream models are left alone
    gproj.prompts([f"Write a haiku about thing number {i}." for i in range(20)][::-1])
    rr = gproj.run()
    assert node(rr)["status"] == "built" and node(rr)["reason"] == "upstream 'raw' changed"
    assert node(rr)["message"].startswith("0 generated, 20 cached")
    assert llm_server.requests == 0


def test_more_prompts_and_samples_only_generate_the_missing_keys(gproj, llm_server):
    assert gproj.run().ok
    llm_server.reset()
    gproj.prompts([f"Write a haiku about thing number {i}." for i in range(25)])
    rr = gproj.run()
    assert llm_server.requests == 5 and node(rr)["rows"] == 25
    llm_server.reset()
    gproj.generator(num_generations=3)
    rr = gproj.run()
    assert llm_server.requests == 50  # samples 1 and 2 for 25 prompts; sample 0 is cached
    assert gproj.scalar("SELECT count(DISTINCT generation_id) FROM gens") == 75
    assert sorted(r[0] for r in gproj.query("SELECT DISTINCT sample_index FROM gens")) == [0, 1, 2]
    assert rr.node("good")["status"] == "built"


def test_settings_change_generates_anew_and_keeps_old_rows(gproj, llm_server):
    assert gproj.run().ok
    old_fp = gproj.scalar("SELECT DISTINCT model_fingerprint FROM gens")
    llm_server.reset()
    gproj.generator(models=gproj.model_entry(generation="{temperature: 0.2, max_new_tokens: 32}"))
    assert gproj.load().plan().items[1].detail == "20 calls (srv 20) for the 20 prompts in 'raw'"
    rr = gproj.run()
    assert rr.ok and llm_server.requests == 20
    new_fp = gproj.scalar("SELECT DISTINCT model_fingerprint FROM gens")
    assert new_fp != old_fp
    assert gproj.scalar("SELECT count(*) FROM gens") == 20
    assert gproj.scalar("SELECT count(*) FROM gens WHERE completion LIKE '%temperature 0.2%'") == 20
    # the old, paid-for rows are still queryable
    assert gproj.query("SELECT model_fingerprint, count(*) FROM _kto_build.generations GROUP BY 1 ORDER BY 1") == \
        sorted([(old_fp, 20), (new_fp, 20)])
    # going back to the old settings costs nothing
    llm_server.reset()
    gproj.generator()
    rr = gproj.run()
    assert rr.ok and llm_server.requests == 0
    assert gproj.scalar("SELECT DISTINCT model_fingerprint FROM gens") == old_fp
    # a model rename, a new base_url or a new api_key_env is not a new model: nothing to pay
    gproj.generator(models=gproj.model_entry(name="renamed"))
    rr = gproj.run()
    assert llm_server.requests == 0
    assert gproj.query("SELECT DISTINCT model_name FROM gens") == [("renamed",)]


def test_failures_are_retried_recorded_and_retried_next_run(gproj, llm_server):
    gproj.prompts([f"Write a haiku about thing number {i}." for i in range(12)]
                  + ["BROKEN prompt one", "BROKEN prompt two", "EMPTY answer please", "REFUSED request"])
    gproj.generator(models=gproj.model_entry(extra="retries: 2"),
                    settings="batch_size: 10\nbackoff: 0.01\nmax_failed_fraction: 0.25")
    llm_server.configure(fail_marker="BROKEN", empty_marker="EMPTY", bad_request_marker="REFUSED")
    rr = gproj.run()
    gens = node(rr)
    assert gens["status"] == "built"  # failures are data, not a crash
    rows = dict(gproj.query("SELECT prompt, status FROM gens"))
    assert len(rows) == 16
    assert {p for p, s in rows.items() if s == "failed"} == {"BROKEN prompt one", "BROKEN prompt two",
                                                             "EMPTY answer please", "REFUSED request"}
    failed = dict(gproj.query("SELECT prompt, error FROM gens WHERE status = 'failed'"))
    assert failed["BROKEN prompt one"].startswith("HTTP 500") and "after 3 attempts" in failed["BROKEN prompt one"]
    assert "no completion" in failed["EMPTY answer please"]  # distilabel's None became a failure, not ""
    assert failed["REFUSED request"].startswith("HTTP 400")  # permanent: not retried
    assert gproj.scalar("SELECT count(*) FROM gens WHERE status = 'failed' AND completion IS NOT NULL") == 0
    # retries: 3 attempts for 500s and empty answers, 1 for the 400
    assert llm_server.by_prompt["BROKEN prompt one"] == 3 and llm_server.by_prompt["EMPTY answer please"] == 3
    assert llm_server.by_prompt["REFUSED request"] == 1
    assert all(llm_server.by_prompt[f"Write a haiku about thing number {i}."] >= 1 for i in range(12))
    assert gproj.scalar("SELECT count(*) FROM gens WHERE status = 'ok'") == 12
    assert any("4 generations failed" in w for w in gens["warnings"])
    assert gproj.scalar("SELECT count(*) FROM good") == 12
    # the next run retries exactly the failed rows
    plan = gproj.load().plan()
    assert plan.items[1].action == "build" and plan.items[1].reason == "4 failed generations to retry"
    assert plan.items[1].detail == "4 calls (srv 4) for the 16 prompts in 'raw'"
    llm_server.configure(fail_marker=None, empty_marker=None, bad_request_marker=None, rate_limit_every=0)
    llm_server.reset()
    rr = gproj.run()
    assert llm_server.requests == 4
    assert gproj.scalar("SELECT count(*) FROM gens WHERE status = 'ok'") == 16
    assert rr.node("good")["status"] == "built"
    assert gproj.load().plan().items[1].action == "skip"


def test_rate_limits_and_server_errors_are_retried_into_successes(gproj, llm_server):
    llm_server.configure(rate_limit_every=3, fail_rate=0.2)
    gproj.generator(models=gproj.model_entry(extra="retries: 8"))
    rr = gproj.run()
    assert rr.ok and not rr.node("gens").get("warnings")
    assert gproj.scalar("SELECT count(*) FROM gens WHERE status = 'ok'") == 20
    assert llm_server.by_status[429] >= 5 and llm_server.by_status[500] >= 1
    assert llm_server.by_status[200] == 20  # one successful answer per row, no duplicates
    assert llm_server.requests == 20 + llm_server.by_status[429] + llm_server.by_status[500]


def test_consecutive_failures_stop_a_model(gproj, llm_server):
    gproj.prompts([f"BROKEN {i}" for i in range(30)])
    gproj.generator(models=gproj.model_entry(extra="retries: 0\nconcurrency: 1"),
                    settings="batch_size: 10\nbackoff: 0.01\nmax_consecutive_failures: 5")
    llm_server.configure(fail_marker="BROKEN")
    rr = gproj.run()
    assert llm_server.requests == 5
    assert any("stopped calling 'srv' after 5 failures in a row" in w for w in node(rr)["warnings"])
    assert gproj.scalar("SELECT count(*) FROM _kto_build.generations") == 5
    assert gproj.load().plan().items[1].reason == "5 failed generations to retry"


def test_concurrency_is_bounded_per_model(gproj, llm_server):
    llm_server.configure(latency=0.02)
    gproj.generator(models=gproj.model_entry(extra="concurrency: 3"))
    assert gproj.run().ok
    assert llm_server.max_in_flight == 3


def test_missing_env_var_is_one_line_before_any_call(gproj, llm_server, monkeypatch):
    monkeypatch.delenv("KTO_TEST_LLM_KEY")
    res = gproj.cli("run")
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: gens: sources.yml:17: environment variable KTO_TEST_LLM_KEY is not set (model 'srv' "
                      "reads its API key from it) (export KTO_TEST_LLM_KEY=...)"]
    assert "Traceback" not in res.stderr + res.stdout
    assert llm_server.requests == 0


def test_secret_is_not_stored(gproj, llm_server):
    assert gproj.run().ok
    target = gproj.root / "target"
    for f in target.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in (gproj.root / "sources.yml").read_text()


@pytest.mark.parametrize(("change", "message", "hint"), [
    ("llm: OpenAILM", "unknown LLM class 'OpenAILM'", "did you mean 'OpenAILLM'"),
    ("params: {model: m, api_key: sk-123}", "'api_key' in params would store a secret", "api_key_env"),
    ("targets: [dve]", "model 'srv' lists unknown target 'dve'", "did you mean 'dev'"),
    ("temprature: 1", "unknown key 'temprature'", "known keys: api_key_env, concurrency"),
])
def test_config_errors_point_at_the_line(gproj, change, message, hint):
    key = change.split(":")[0]
    entry = gproj.model_entry()
    lines = [ln for ln in entry.splitlines() if not ln.strip().startswith(key + ":")]
    lines.insert(2, "    " + change)
    gproj.generator(models="\n".join(lines) + "\n")
    with pytest.raises(KtoBuildError) as exc:
        gproj.load()
    assert message in exc.value.message and exc.value.path == "sources.yml" and exc.value.line
    assert hint in exc.value.one_line()
    res = gproj.cli("ls")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_unknown_generation_kwarg_fails_before_any_call(gproj, llm_server):
    gproj.generator(models=gproj.model_entry(generation="{temprature: 0.7}"))
    rr = gproj.run()
    msg = node(rr)["message"]
    assert node(rr)["status"] == "failed"
    assert "OpenAILLM has no generation setting 'temprature'" in msg and "did you mean 'temperature'" in msg
    assert msg.startswith("sources.yml:")
    assert llm_server.requests == 0


def test_dotted_path_llm_class(gproj, llm_server):
    gproj.generator(models=gproj.model_entry(llm="distilabel.models.llms.openai.OpenAILLM"))
    assert gproj.run().ok and llm_server.requests == 20
    gproj.generator(models=gproj.model_entry(llm="distilabel.models.llms.openai.NoSuchLLM"))
    rr = gproj.run()
    assert node(rr)["status"] == "failed" and "cannot import 'distilabel.models.llms.openai.NoSuchLLM'" in \
        node(rr)["message"]


def test_targets_pick_models_per_target(gproj, llm_server):
    models = gproj.model_entry(name="dev-model", extra="targets: [dev]") + \
        gproj.model_entry(name="prod-model", generation="{temperature: 0.1}", extra="targets: [prod]")
    gproj.generator(models=models)
    dev = gproj.load().nodes["gens"]
    prod = gproj.load("prod").nodes["gens"]
    assert [m.name for m in dev.models] == ["dev-model"] and [m.name for m in prod.models] == ["prod-model"]
    assert gproj.run().ok
    assert gproj.query("SELECT DISTINCT model_name FROM gens") == [("dev-model",)]


def test_two_models_and_samples(gproj, llm_server):
    gproj.generator(models=gproj.model_entry(name="a") + gproj.model_entry(name="b", generation="{temperature: 0.1}"),
                    num_generations=2)
    plan = gproj.load().plan()
    assert plan.items[1].detail == "80 calls (a 40, b 40) for the 20 prompts in 'raw'"  # read in memory
    rr = gproj.run()
    assert rr.ok and llm_server.requests == 80
    assert gproj.query("SELECT model_name, count(*) FROM gens GROUP BY 1 ORDER BY 1") == [("a", 40), ("b", 40)]


def test_plan_and_noop_run_do_not_import_distilabel(gproj):
    assert gproj.run().ok
    code = ("import sys; from kto_build.project import Project; p = Project.load(sys.argv[1]); p.plan(); "
            "rr = p.run(); assert all(n['status'] == 'skipped' for n in rr.nodes), rr.nodes; "
            "bad = [m for m in ('distilabel', 'argilla', 'datasets', 'openai', 'llama_cpp') if m in sys.modules]; "
            "print('heavy:', bad)")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, str(gproj.root)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "heavy: []"


def test_offline_run_skips_a_server_generator(gproj, llm_server):
    rr = gproj.run(offline=True)
    assert rr.node("gens")["status"] == "skipped" and llm_server.requests == 0


def test_server_completions_endpoint_and_usage(llm_server):
    import urllib.request

    data = json.dumps({"model": "m", "prompt": "Haiku about fog:", "max_tokens": 5}).encode()
    req = urllib.request.Request(f"{llm_server.url}/completions", method="POST", data=data,
                                 headers={"Content-Type": "application/json"})
    body = json.loads(urllib.request.urlopen(req, timeout=5).read())
    assert body["choices"][0]["text"] == "a haiku on: Haiku about"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert llm_server.requests == 1 and llm_server.by_status == {200: 1}


def test_inference_endpoints_llm_swallowed_errors_are_recorded(gproj, llm_server):
    """InferenceEndpointsLLM (the prod target's class) catches HTTP errors and returns None: the error it
    logged is recorded on the row instead of an empty completion."""
    gproj.prompts(["Write a haiku about tea.", "BROKEN prompt", "REFUSED prompt"])
    base = llm_server.url[: -len("/v1")]
    entry = (f"  - name: tgi\n    llm: InferenceEndpointsLLM\n    params: {{base_url: \"{base}\"}}\n"
             "    api_key_env: KTO_TEST_LLM_KEY\n    retries: 1\n"
             "    generation: {temperature: 0.7, max_new_tokens: 16}\n")
    gproj.generator(models=entry)
    llm_server.configure(fail_marker="BROKEN", bad_request_marker="REFUSED")
    rr = gproj.run()
    assert rr.node("gens")["status"] == "failed" and rr.node("gens")["extra"]["calls_failed"] == 2
    rows = {r[0]: r[1:] for r in gproj.query("SELECT prompt, status, completion, error FROM gens")}
    assert rows["Write a haiku about tea."][0] == "ok" and rows["Write a haiku about tea."][1].startswith("a haiku")
    status, completion, error = rows["BROKEN prompt"]
    assert status == "failed" and completion is None
    assert "no completion (HTTP 500): the backend returned no text" in error and "after 2 attempts" in error
    status, _, error = rows["REFUSED prompt"]
    assert status == "failed" and "(HTTP 400)" in error and "attempts" not in error  # a 400 is not retried
    assert llm_server.by_prompt["BROKEN prompt"] == 2 and llm_server.by_prompt["REFUSED prompt"] == 1


def test_models_with_identical_settings_are_refused(gproj):
    gproj.generator(models=gproj.model_entry(name="a") + gproj.model_entry(name="b"))
    with pytest.raises(KtoBuildError, match="model 'b' has the same LLM, params and generation settings as 'a'"):
        gproj.load()


def test_base_url_names_the_model_only_when_no_model_param():
    from kto_build.nodes.generation import ModelEntry

    def fp(params):
        return ModelEntry("m", "OpenAILLM", params, {}, None, None, 0, None).fingerprint

    assert fp({"model": "x", "base_url": "http://a"}) == fp({"model": "x", "base_url": "http://b"})
    assert fp({"base_url": "http://a"}) != fp({"base_url": "http://b"})
    assert fp({"model": "x", "timeout": 5}) == fp({"model": "x"})
    assert fp({"model": "x"}) != fp({"model": "y"})


def test_run_from_inside_a_running_event_loop(gproj, llm_server):
    """A notebook has a running loop: the generator then runs its own loop in a thread."""
    import asyncio

    async def notebook_cell():
        return gproj.run()

    rr = asyncio.run(notebook_cell())
    assert rr.ok and llm_server.requests == 20
