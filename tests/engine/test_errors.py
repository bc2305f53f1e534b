"""Bad input: one line naming file:line:col, what is wrong and what was meant; exit 2; nothing lost."""

from __future__ import annotations

import pytest


def err(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


def test_unknown_table_reference(proj):
    proj.write("models/prompt_stats.sql", "select count(*) as n\nfrom stg_prompt")
    assert err(proj.cli("ls")) == ("error: models/prompt_stats.sql:2:6: unknown table 'stg_prompt' "
                                   "(did you mean 'stg_prompts'?)")


def test_unknown_key_in_project_yml(proj):
    proj.write("project.yml", "name: demo\nvars: {min_len: 3, suffix: x}\nmodels:\n  materialised: view\n")
    assert err(proj.cli("ls")) == ("error: project.yml:4: unknown key 'materialised' in 'models' in project.yml "
                                   "(did you mean 'materialized'?)")


def test_wrong_type_and_choice(proj):
    proj.write("project.yml", "name: demo\nvars: {min_len: 3, suffix: x}\nmodels:\n  materialized: tabel\n")
    assert err(proj.cli("ls")) == ("error: project.yml:4: 'materialized' in 'models' in project.yml must be one of "
                                   "'table', 'view', got 'tabel'")
    proj.write("project.yml", "name: [demo]\n")
    assert err(proj.cli("ls")) == "error: project.yml:1: 'name' in project.yml must be a string, got a list"


def test_unknown_key_in_sources_yml(proj):
    proj.write("sources.yml", "prompts:\n  raw_prompts:\n    path: data/prompts.jsonl\n    txt: instructions\n")
    assert err(proj.cli("ls")) == ("error: sources.yml:4: unknown key 'txt' in prompts 'raw_prompts' "
                                   "(did you mean 'text'?)")


def test_unknown_key_in_models_yml(proj):
    proj.write("models/schema.yml", "models:\n  - name: shouty\n    desciption: hi\n")
    assert err(proj.cli("ls")) == ("error: models/schema.yml:3: unknown key 'desciption' in item 1 of 'models' in "
                                   "models/schema.yml (did you mean 'description'?)")


def test_documented_model_without_sql(proj):
    proj.write("models/schema.yml", "models:\n  - name: shoutie\n")
    assert err(proj.cli("ls")) == ("error: models/schema.yml:2: 'shoutie' is documented but there is no "
                                   "models/shoutie.sql (did you mean 'shouty'?)")


def test_yaml_syntax_error(proj):
    proj.write("sources.yml", "prompts:\n  raw_prompts:\n    path: [data\n")
    line = err(proj.cli("ls"))
    assert line.startswith("error: sources.yml:4:1: invalid YAML:"), line


def test_cycle(proj):
    proj.write("models/a.sql", "select * from b")
    proj.write("models/b.sql", "select * from a")
    assert err(proj.cli("ls")) == "error: models/a.sql:1: dependency cycle: a -> b -> a"


def test_sql_syntax_error(proj):
    proj.write("models/prompt_stats.sql", "select count(* as n\nfrom stg_prompts")
    line = err(proj.cli("ls"))
    assert line.startswith("error: models/prompt_stats.sql:1:"), line
    assert "SQL syntax error" in line


def test_two_statements_and_not_select(proj):
    proj.write("models/prompt_stats.sql", "select 1; select 2")
    assert err(proj.cli("ls")) == ("error: models/prompt_stats.sql:1: a model file must hold exactly one SELECT "
                                   "statement, found 2 (split them into files)")
    proj.write("models/prompt_stats.sql", "create table x as select 1")
    assert err(proj.cli("ls")) == ("error: models/prompt_stats.sql:1: a model must be a SELECT query, found CREATE "
                                   "(kto-build creates the table itself)")


def test_undefined_var(proj):
    proj.write("models/prompt_stats.sql", "select getvariable('min_lenght') as x")
    assert err(proj.cli("plan")) == ("error: models/prompt_stats.sql:1: getvariable('min_lenght') reads a var that "
                                     "project.yml does not define (did you mean 'min_len'?)")


def test_unknown_target_and_selector(proj):
    proj.write("project.yml", "name: demo\nvars: {min_len: 3, suffix: x}\ntargets:\n  dev: {}\n  prod: {}\n")
    assert err(proj.cli("ls", "--target", "prdo")) == (
        "error: project.yml:3: unknown target 'prdo' (did you mean 'prod'?)")
    assert err(proj.cli("ls", "--select", "+stg_promts")) == ("error: unknown node 'stg_promts' in selector "
                                                              "'+stg_promts' (did you mean 'stg_prompts'?)")
    assert err(proj.cli("ls", "--select", "tag:funn")) == "error: no node has tag 'funn' (did you mean 'fun'?)"


def test_duplicate_name(proj):
    proj.write("models/raw_prompts.sql", "select 1 as x")
    assert err(proj.cli("ls")) == ("error: models/raw_prompts.sql:1: 'raw_prompts' is defined twice "
                                   "(also a source at sources.yml:2)")


def test_missing_source_file(proj):
    proj.write("sources.yml", "prompts:\n  raw_prompts:\n    path: data/nope.jsonl\n    text: instructions\n")
    proj.run()
    res = proj.cli("run")
    assert res.exit_code == 1
    assert "sources.yml:3: prompt file 'data/nope.jsonl' not found" in res.output


def test_missing_text_column(proj):
    proj.write("sources.yml", "prompts:\n  raw_prompts:\n    path: data/prompts.jsonl\n    text: instruction\n")
    r = proj.run()
    assert r["exit_code"] == 1
    msg = next(n for n in r["nodes"] if n["name"] == "raw_prompts")["message"]
    assert msg == "sources.yml:4: column 'instruction' not found in data/prompts.jsonl (columns: instructions, topic)"


def test_no_project(tmp_path):
    from click.testing import CliRunner

    from kto_build.cli import cli

    res = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "ls"])
    assert err(res) == f"error: no project.yml in {tmp_path.resolve()} (run 'kto-build init' to create a project)"


@pytest.mark.parametrize("cmd", [["compile", "shoutyy"], ["show", "shoutyy"], ["lineage", "shoutyy"]])
def test_unknown_node_commands(proj, cmd):
    assert err(proj.cli(*cmd)) == "error: unknown node 'shoutyy' (did you mean 'shouty'?)"
