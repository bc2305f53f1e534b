"""`kto-build plan` counts the LLM calls the run then makes, also when the prompts change
upstream of the generator (issue 8, item 7): the chain is evaluated in memory, read-only."""

from __future__ import annotations

import json

from tests.generation.conftest import KEY_ENV


def detail(gproj, name="gens"):
    return next(i for i in gproj.load().plan().items if i.name == name).detail


def test_a_prompt_added_to_the_file_counts_before_the_source_is_rebuilt(gproj, llm_server):
    assert gproj.run().ok and llm_server.requests == 20
    with (gproj.root / "data" / "prompts.jsonl").open("a", encoding="utf-8") as fh:
        for i in (20, 21):
            fh.write(json.dumps({"id": f"p{i:04d}", "instructions": f"A new prompt {i}."}) + "\n")
    stored_before = gproj.scalar("SELECT count(*) FROM raw")
    assert detail(gproj) == "2 calls (srv 2) for the 22 prompts in 'raw'"
    assert gproj.scalar("SELECT count(*) FROM raw") == stored_before == 20  # plan wrote nothing
    llm_server.reset()
    assert gproj.run().ok
    assert llm_server.requests == 2


def test_an_edited_filter_in_an_upstream_model_counts(gproj, llm_server):
    gproj.write("models/stg.sql", "select prompt_id, prompt from raw where prompt like '%number 1%'\n")
    gproj.write("sources.yml", (gproj.root / "sources.yml").read_text().replace("prompts: raw", "prompts: stg"))
    assert detail(gproj) == "11 calls (srv 11) for the 11 prompts in 'stg'"  # nothing built yet: all in memory
    assert gproj.run().ok and llm_server.requests == 11
    gproj.write("models/stg.sql", "select prompt_id, prompt from raw where prompt like '%number%'\n")
    assert detail(gproj) == "9 calls (srv 9) for the 20 prompts in 'stg'"
    llm_server.reset()
    assert gproj.run().ok
    assert llm_server.requests == 9


def test_a_missing_api_key_shows_in_plan(gproj, llm_server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    assert detail(gproj) == (f"20 calls (srv 20) for the 20 prompts in 'raw'; environment variable {KEY_ENV} "
                             "is not set (model 'srv' reads its API key from it)")
    res = gproj.cli("plan", env={KEY_ENV: ""})
    assert res.returncode == 0
    assert f"environment variable {KEY_ENV} is not set (model 'srv' reads its API key from it)]" in res.stdout
    assert llm_server.requests == 0


def test_an_upstream_error_is_named_in_plan(gproj, llm_server):
    gproj.write("models/stg.sql", "select prompt_id, prompt from raw where no_such_column\n")
    gproj.write("sources.yml", (gproj.root / "sources.yml").read_text().replace("prompts: raw", "prompts: stg"))
    assert detail(gproj) == ("1 call per prompt ('stg' cannot be read yet: models/stg.sql:1: Binder Error: "
                             'Referenced column "no_such_column" not found in FROM clause!)')
