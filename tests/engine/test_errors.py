"""Bad input: one line naming file:line:col, what is wrong and what was meant; exit 2; nothing lost."""

from __future__ import annotations

import pytest


def err(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


DEMO = "name: demo\nvars: {min_len: 3, suffix: x}\n"

# (id, files written over the `proj` fixture, command, the exact line it prints)
ERRORS = [
    ("unknown-table", {"models/prompt_stats.sql": "select count(*) as n\nfrom stg_prompt"}, ["ls"],
     "error: models/prompt_stats.sql:2:6: unknown table 'stg_prompt' (did you mean 'stg_prompts'?)"),
    ("project-unknown-key", {"project.yml": DEMO + "models:\n  materialised: view\n"}, ["ls"],
     "error: project.yml:4: unknown key 'materialised' in 'models' in project.yml (did you mean 'materialized'?)"),
    ("project-wrong-choice", {"project.yml": DEMO + "models:\n  materialized: tabel\n"}, ["ls"],
     "error: project.yml:4: 'materialized' in 'models' in project.yml must be one of 'table', 'view', got 'tabel'"),
    ("project-wrong-type", {"project.yml": "name: [demo]\n"}, ["ls"],
     "error: project.yml:1: 'name' in project.yml must be a string, got a list"),
    ("sources-unknown-key", {"sources.yml": "prompts:\n  raw_prompts:\n    path: data/prompts.jsonl\n"
                                            "    txt: instructions\n"}, ["ls"],
     "error: sources.yml:4: unknown key 'txt' in prompts 'raw_prompts' (did you mean 'text'?)"),
    ("models-yml-unknown-key", {"models/schema.yml": "models:\n  - name: shouty\n    desciption: hi\n"}, ["ls"],
     "error: models/schema.yml:3: unknown key 'desciption' in item 1 of 'models' in models/schema.yml "
     "(did you mean 'description'?)"),
    ("documented-without-sql", {"models/schema.yml": "models:\n  - name: shoutie\n"}, ["ls"],
     "error: models/schema.yml:2: 'shoutie' is documented but there is no models/shoutie.sql "
     "(did you mean 'shouty'?)"),
    ("cycle", {"models/a.sql": "select * from b", "models/b.sql": "select * from a"}, ["ls"],
     "error: models/a.sql:1: dependency cycle: a -> b -> a"),
    ("two-statements", {"models/prompt_stats.sql": "select 1; select 2"}, ["ls"],
     "error: models/prompt_stats.sql:1: a model file must hold exactly one SELECT statement, found 2 "
     "(split them into files)"),
    ("not-a-select", {"models/prompt_stats.sql": "create table x as select 1"}, ["ls"],
     "error: models/prompt_stats.sql:1: a model must be a SELECT query, found CREATE "
     "(kto-build creates the table itself)"),
    ("undefined-var", {"models/prompt_stats.sql": "select getvariable('min_lenght') as x"}, ["plan"],
     "error: models/prompt_stats.sql:1: getvariable('min_lenght') reads a var that project.yml does not define "
     "(did you mean 'min_len'?)"),
    ("unknown-target", {"project.yml": DEMO + "targets:\n  dev: {}\n  prod: {}\n"}, ["ls", "--target", "prdo"],
     "error: project.yml:3: unknown target 'prdo' (did you mean 'prod'?)"),
    ("unknown-selector-node", {}, ["ls", "--select", "+stg_promts"],
     "error: unknown node 'stg_promts' in selector '+stg_promts' (did you mean 'stg_prompts'?)"),
    ("unknown-tag", {}, ["ls", "--select", "tag:funn"], "error: no node has tag 'funn' (did you mean 'fun'?)"),
    ("duplicate-name", {"models/raw_prompts.sql": "select 1 as x"}, ["ls"],
     "error: models/raw_prompts.sql:1: 'raw_prompts' is defined twice (also a source at sources.yml:2)"),
    *[(f"unknown-node-{cmd}", {}, [cmd, "shoutyy"], "error: unknown node 'shoutyy' (did you mean 'shouty'?)")
      for cmd in ("compile", "show", "lineage")],
]

# (id, files, command, how the line starts, what else it says): the rest is the parser's own wording
ERROR_PREFIXES = [
    ("yaml-syntax", {"sources.yml": "prompts:\n  raw_prompts:\n    path: [data\n"}, ["ls"],
     "error: sources.yml:4:1: invalid YAML:", ""),
    ("sql-syntax", {"models/prompt_stats.sql": "select count(* as n\nfrom stg_prompts"}, ["ls"],
     "error: models/prompt_stats.sql:1:", "SQL syntax error"),
]


@pytest.mark.parametrize(("files", "args", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_input_is_one_exact_line(proj, files, args, message):
    for rel, text in files.items():
        proj.write(rel, text)
    assert err(proj.cli(*args)) == message


@pytest.mark.parametrize(("files", "args", "start", "says"), [c[1:] for c in ERROR_PREFIXES],
                         ids=[c[0] for c in ERROR_PREFIXES])
def test_parser_errors_name_the_place(proj, files, args, start, says):
    for rel, text in files.items():
        proj.write(rel, text)
    line = err(proj.cli(*args))
    assert line.startswith(start) and says in line, line


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
