"""Judge nodes against the project's OpenAI-compatible test server: cache, templates, failures,
unparsed verdicts, log-probability scores, several judge models, plan, wiring."""

from __future__ import annotations

import pytest

from tests.judge.conftest import lp

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_judges_every_record_and_caches(jproj):
    srv = jproj.server
    rr = jproj.run()
    assert rr.ok, rr.nodes
    assert srv.requests == 10
    rows = jproj.verdicts()
    assert [r[0] for r in rows] == [f"r{i:02d}" for i in range(10)]
    assert all(r[1] == "judge-a" and r[4] == "ok" for r in rows)
    assert [r[2] for r in rows] == ["No" if i % 2 == 0 else "Yes" for i in range(10)]
    assert jproj.scalar("select rationale from judge where record_id = 'r00'") == "It does not scan."
    assert jproj.scalar("select count(*) from judge where worker like '%:%'") == 10
    assert jproj.scalar("select count(*) from _kto_build.judgements") == 10
    # a rerun sends nothing
    srv.reset()
    rr = jproj.run()
    assert rr.ok and srv.requests == 0
    # one changed record: one request
    jproj.records([(f"r{i:02d}", f"Write a haiku about thing {i}.", ("changed " if i == 3 else "")
                    + (f"haiku number {i} GOOD" if i % 2 else f"haiku number {i} BAD")) for i in range(10)])
    rr = jproj.run()
    assert rr.ok and srv.requests == 1
    assert [p for p in srv.by_prompt if "changed haiku number 3" in p]
    assert jproj.scalar("select count(*) from judge") == 10


def test_changed_template_rejudges_under_new_key_and_switching_back_reuses(jproj):
    srv = jproj.server
    assert jproj.run().ok and srv.requests == 10
    jproj.judge(template="Rate this.\n{prompt}\n{completion}\nSay {labels}:")
    srv.reset()
    assert jproj.run().ok and srv.requests == 10
    assert all(p.startswith("Rate this.") for p in srv.by_prompt)
    jproj.judge()  # back to the default template: every verdict is still in the cache
    srv.reset()
    assert jproj.run().ok and srv.requests == 0
    assert jproj.scalar("select count(*) from _kto_build.judgements") == 20


def test_failures_are_recorded_and_retried_next_run(jproj):
    srv = jproj.server
    srv.configure(fail_marker="number 4 ")
    rr = jproj.run()
    assert rr.ok, rr.nodes
    row = jproj.query("select status, label, error from judge where record_id = 'r04'")[0]
    assert row[0] == "failed" and row[1] is None and "HTTP 500" in row[2]
    assert "1 judgement failed" in " ".join(rr.node("judge")["warnings"])
    srv.configure(fail_marker=None)
    srv.reset()
    rr = jproj.run()
    assert rr.ok and srv.requests == 1
    assert jproj.query("select status, label from judge where record_id = 'r04'") == [("ok", "No")]


def test_failures_fail_the_node_beyond_max_failed_fraction(jproj):
    jproj.server.configure(fail_marker="number 4 ")
    jproj.judge(settings="batch_size: 5\nbackoff: 0.01")  # max_failed_fraction 0, as for generators
    rr = jproj.run()
    assert not rr.ok
    res = jproj.cli("run")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "1 of 10 judgements failed or missing" in res.stdout + res.stderr
    assert jproj.scalar("select count(*) from judge where status = 'ok'") == 9  # the others are kept


def test_unparsed_verdicts_are_never_guessed(jproj):
    srv = jproj.server
    jproj.judge(settings="batch_size: 5\nbackoff: 0.01\nlogprobs: 0")  # the text parser decides
    srv.configure(replies={"number 1 ": "Maybe, hard to say", "number 2 ": "Yes and no", "GOOD": "Yes",
                           "BAD": "No"})
    rr = jproj.run()
    assert rr.ok
    rows = {r[0]: r for r in jproj.verdicts()}
    for rid in ("r01", "r02"):
        assert rows[rid][2] is None and rows[rid][4] == "unparsed" and "none" in rows[rid][5]
    assert jproj.scalar("select raw from judge where record_id = 'r01'") == "Maybe, hard to say"
    assert "2 verdicts name none of the labels" in " ".join(rr.node("judge")["warnings"])
    srv.reset()
    assert jproj.run().ok and srv.requests == 0  # an answer is kept, not asked again


def test_logprobs_give_the_label_and_a_calibrated_score(jproj):
    srv = jproj.server
    # the text says "Maybe" but the label tokens' probabilities decide
    srv.configure(replies={"GOOD": {"text": "Maybe", "first": lp(Yes=0.6, No=0.2, Maybe=0.2)},
                           "BAD": {"text": "No", "first": lp(No=0.45, Yes=0.05, The=0.5)}})
    assert jproj.run().ok
    rows = {r[0]: r for r in jproj.verdicts()}
    assert rows["r01"][2] == "Yes" and rows["r01"][3] == pytest.approx(0.75) and rows["r01"][4] == "ok"
    assert rows["r00"][2] == "No" and rows["r00"][3] == pytest.approx(0.9)
    # no logprobs asked (logprobs: 0): the text decides and score is NULL
    jproj.judge(settings="batch_size: 5\nbackoff: 0.01\nlogprobs: 0")
    assert jproj.run().ok
    rows = {r[0]: r for r in jproj.verdicts()}
    assert rows["r00"][2] == "No" and rows["r00"][3] is None
    assert rows["r01"][2] is None and rows["r01"][4] == "unparsed"


def test_an_empty_answer_with_logprobs_still_gives_a_label(jproj):
    """A tiny model may answer nothing but whitespace; the label tokens' probabilities still say what it chose.
    Without logprobs an empty answer stays a failed call (retried next run)."""
    srv = jproj.server
    srv.configure(replies={"GOOD": {"text": " ", "first": lp(Yes=0.7, No=0.1)},
                           "BAD": {"text": "", "first": lp(No=0.8, Yes=0.2)}})
    assert jproj.run().ok
    rows = {r[0]: r for r in jproj.verdicts()}
    assert (rows["r01"][2], rows["r01"][4]) == ("Yes", "ok") and rows["r01"][3] == pytest.approx(0.875)
    assert (rows["r00"][2], rows["r00"][4]) == ("No", "ok") and rows["r00"][3] == pytest.approx(0.8)
    jproj.judge(settings="batch_size: 5\nbackoff: 0.01\nmax_failed_fraction: 1.0\nlogprobs: 0")
    jproj.run()
    rows = {r[0]: r for r in jproj.verdicts()}
    assert rows["r00"][4] == "failed" and "empty" in rows["r00"][5]


def test_several_judge_models(jproj):
    srv = jproj.server
    jproj.judge(models=jproj.judge_entry("judge-a", "model-a") + jproj.judge_entry("judge-b", "model-b"))
    rr = jproj.run()
    assert rr.ok and srv.requests == 20
    assert jproj.query("select judge_model, count(*) from judge group by 1 order by 1") == [("judge-a", 10),
                                                                                              ("judge-b", 10)]
    assert jproj.scalar("select count(distinct model_fingerprint) from _kto_build.judgements") == 2
    srv.reset()
    jproj.judge(models=jproj.judge_entry("judge-a", "model-a") + jproj.judge_entry("judge-c", "model-c"))
    assert jproj.run().ok and srv.requests == 10  # only the new model judges


def test_plan_counts_judge_calls_and_wiring(jproj):
    res = jproj.cli("plan")
    assert res.returncode == 0, res.stderr
    assert "10 calls (judge-a 10) for the 10 records in 'raw'" in res.stdout
    project = jproj.load()
    ann, judge = project.nodes["ratings"], project.nodes["judge"]
    assert judge.kind == "judge" and judge.labels == ["Yes", "No"] and judge.annotation == "ratings"
    assert ann.suggestions_from == ("judge",) and "judge" in ann.depends_on
    assert jproj.run().ok
    res = jproj.cli("plan")
    assert [ln.split()[:3] for ln in res.stdout.splitlines() if " judge " in f" {ln} "] == [["skip", "judge", "judge"]]
    word = {i: "new" if i == 5 else "GOOD" if i % 2 else "BAD" for i in range(10)}
    jproj.records([(f"r{i:02d}", f"Write a haiku about thing {i}.", f"haiku number {i} {word[i]}")
                   for i in range(10)])
    assert "[1 call (judge-a 1) for the 10 records in 'raw']" in jproj.cli("plan").stdout


@pytest.mark.parametrize(("yaml", "message"), [
    ("annotation: rating", "annotation 'rating' is not defined"),
    ("template: 'Rate {completoin}'", "unknown placeholder '{completoin}'"),
    ("template: 'Rate {prompt}'", "has no {completion}"),
])
def test_bad_judge_config_is_one_clear_line(jproj, yaml, message):
    text = (jproj.root / "sources.yml").read_text()
    key = yaml.split(":")[0]
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"    {key}:")]
    at = lines.index("  judge:") + 1
    lines.insert(at, f"    {yaml}")
    (jproj.root / "sources.yml").write_text("\n".join(lines) + "\n")
    res = jproj.cli("ls")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert message in res.stderr and "sources.yml:" in res.stderr


def test_kill9_mid_run_loses_at_most_the_batches_in_flight(jproj):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    srv = jproj.server
    jproj.records([(f"r{i:03d}", f"Write a haiku about thing {i}.", f"haiku {i} GOOD") for i in range(120)])
    jproj.judge(models=jproj.judge_entry(extra="concurrency: 4"),
                settings="batch_size: 10\nbackoff: 0.01\ncommit_seconds: 0.2")
    srv.configure(hold_after=60)  # answers 60, then holds the next 4 (concurrency 4): no clock
    proc = subprocess.Popen([str(Path(sys.executable).parent / "kto-build"), "--project-dir", str(jproj.root), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        while not (srv.ok_requests == 60 and srv.held == 4):
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.01)  # polling the counters, not waiting for time to pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        srv.configure(hold_after=None)
    committed = {r[0] for r in jproj.query("select record_id from _kto_build.judgements where status = 'ok'")}
    assert 60 - (2 * 10 + 2 * 4) <= len(committed) <= 60  # at most two batches in memory and the calls in flight
    srv.reset()
    assert jproj.run().ok
    assert srv.requests == 120 - len(committed)  # nothing committed is asked again
    assert jproj.scalar("select count(*) from judge where status = 'ok'") == 120


def test_cli_run_of_a_generator_and_a_judge_ends_without_a_traceback(jproj):
    """The LLM clients are closed inside the event loop that used them: nothing is printed after the run
    (it used to end with "RuntimeError: Event loop is closed" from httpx when they were garbage-collected)."""
    judge_yml = (jproj.root / "sources.yml").read_text(encoding="utf-8")
    jproj.write("sources.yml", judge_yml.replace(
        "prompts:\n", "prompts:\n  asks:\n    path: data/records.jsonl\n    text: prompt\n    id: id\n", 1)
        + "generators:\n  gens:\n    prompts: asks\n    batch_size: 4\n    models:\n"
        + "      " + jproj.model_entry().strip("\n").replace("\n", "\n      ") + "\n")
    res = jproj.cli("run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert jproj.server.requests == 20  # 10 generations, 10 judgements
    assert jproj.scalar("select count(*) from gens where status = 'ok'") == 10
    assert jproj.scalar("select count(*) from judge where status = 'ok'") == 10
    assert "Traceback" not in res.stderr and "Event loop is closed" not in res.stderr, res.stderr
