"""The config schema: ``kto-build schema`` prints JSON Schema made from the specs that validate a project,
schema/*.json are those prints, the example project passes it, and bad inputs fail both validators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kto_build.cli import cli
from kto_build.nodes import KINDS, node_class
from kto_build.schema import FILES, schema_for

ROOT = Path(__file__).resolve().parents[2]


def printed(name: str) -> str:
    res = CliRunner().invoke(cli, ["schema", name])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_schema_files_are_what_the_command_prints(name):
    committed = (ROOT / "schema" / f"{name}.json").read_text(encoding="utf-8")
    assert committed == printed(name), f"schema/{name}.json is stale: kto-build schema {name} > schema/{name}.json"


def test_node_sections_take_their_node_class_spec():
    """A key added to a node kind's SPEC is in the schema with no other edit."""
    for section in KINDS:
        spec = node_class(section).SPEC
        owner = "project" if section == "exports" else "sources"
        node = schema_for(owner)["properties"][section]["additionalProperties"]
        assert set(node["properties"]) == {*spec.fields, "for_target"}, section
        assert node.get("required", []) == list(spec.required)
        overrides = node["properties"]["for_target"]["additionalProperties"]
        assert "required" not in overrides and "for_target" not in overrides["properties"]


def validator(name: str):
    jsonschema = pytest.importorskip("jsonschema")
    cls = jsonschema.validators.validator_for(schema_for(name))
    cls.check_schema(schema_for(name))
    return cls(schema_for(name))


def example_files() -> list[tuple[str, Path]]:
    files = [("project", ROOT / "project.yml"), ("sources", ROOT / "sources.yml")]
    return files + [("models", p) for p in sorted((ROOT / "models").glob("*.yml"))]


@pytest.mark.parametrize(("name", "path"), example_files(), ids=lambda v: getattr(v, "name", v))
def test_the_example_project_passes_the_schema(name, path):
    errors = [e.message for e in validator(name).iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert errors == []


GOOD = [
    ("sources", "sources.yml", """
prompts:
  raw_prompts:
    path: data/prompts.jsonl
    text: instructions
    for_target:
      prod: {path: data/other.jsonl}
"""),
    ("models", "models/schema.yml", "models:\n  - name: shouty\n    materialized: view\n    tags: fun\n"),
]

# (schema, file, text, the exact line `kto-build ls` prints)
BAD = [
    ("project", "project.yml", "name: demo\nvars: {min_len: 3, suffix: x}\nmodels:\n  materialised: view\n",
     "error: project.yml:4: unknown key 'materialised' in 'models' in project.yml (did you mean 'materialized'?)"),
    ("project", "project.yml", "name: [demo]\n",
     "error: project.yml:1: 'name' in project.yml must be a string, got a list"),
    ("project", "project.yml", "vars: {min_len: 3}\n",
     "error: project.yml:1: project.yml is missing the required key 'name'"),
    ("project", "project.yml", "name: demo\nvars: {min_len: 3}\nexports:\n  e: {model: shouty, format: kto2}\n",
     "error: project.yml:4: 'format' in exports 'e' must be one of 'kto', 'dpo', 'raw', got 'kto2'"),
    ("sources", "sources.yml", "prompts:\n  raw_prompts:\n    path: data/prompts.jsonl\n    txt: instructions\n",
     "error: sources.yml:4: unknown key 'txt' in prompts 'raw_prompts' (did you mean 'text'?)"),
    ("sources", "sources.yml", "prompts:\n  raw_prompts:\n    path: data/prompts.jsonl\n    text: instructions\n"
     "    for_target:\n      prod: {paht: x.jsonl}\n",
     "error: sources.yml:6: unknown key 'paht' in prompts 'raw_prompts' (did you mean 'path'?)"),
    ("sources", "sources.yml", "prompts:\n  raw_prompts: {path: data/prompts.jsonl, text: instructions}\n"
     "generators:\n  gens:\n    prompts: raw_prompts\n    models:\n      - name: m\n        concurrency: 2\n",
     "error: sources.yml:7: item 1 of 'models' in generators 'gens' is missing the required key 'llm'"),
    ("models", "models/schema.yml", "models:\n  - name: shouty\n    materialized: tabel\n",
     "error: models/schema.yml:3: 'materialized' in item 1 of 'models' in models/schema.yml must be one of "
     "'table', 'view', got 'tabel'"),
    ("models", "models/schema.yml", "models:\n  - name: shouty\n    columns:\n      - nmae: prompt\n",
     "error: models/schema.yml:4: unknown key 'nmae' in item 1 of 'columns' in item 1 of 'models' in "
     "models/schema.yml (did you mean 'name'?)"),
]


@pytest.mark.parametrize(("name", "rel", "text"), GOOD, ids=[g[1] for g in GOOD])
def test_good_inputs_pass_both_validators(proj, name, rel, text):
    assert [e.message for e in validator(name).iter_errors(yaml.safe_load(text))] == []
    proj.write(rel, text)
    res = proj.cli("ls", "-t", "prod")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("name", "rel", "text", "message"), BAD, ids=[b[3].split(": ", 2)[2][:40] for b in BAD])
def test_bad_inputs_fail_both_validators(proj, name, rel, text, message):
    assert list(validator(name).iter_errors(yaml.safe_load(text))), "the JSON Schema accepts it"
    proj.write(rel, text)
    if rel == "project.yml":
        proj.write("models/prompt_stats.sql", "select 1 as n")  # no getvariable: the project's vars change
    res = proj.cli("ls", "-t", "prod")
    assert res.exit_code == 2
    assert res.output.strip() == message


def test_schema_command_refuses_an_unknown_name():
    res = CliRunner().invoke(cli, ["schema", "sorces"])
    assert res.exit_code == 2 and "'sorces' is not one of 'project', 'sources', 'models'" in res.output
    assert json.loads(printed("models"))["$schema"].startswith("https://json-schema.org/")
