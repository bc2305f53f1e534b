"""Data tests from models/*.yml: each kind, severities, exact messages, bad specs,
what happens downstream of a failure, and the `kto-build test` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli

from kto_build.errors import KtoBuildError
from kto_build.project import Project

ROWS = [
    '{"id": 1, "prompt": "a", "label": "Yes"}',
    '{"id": 2, "prompt": "a", "label": "No"}',
    '{"id": 2, "prompt": null, "label": "Maybe"}',
    '{"id": 3, "prompt": "b", "label": "No"}',
]


def mini(root: Path, yml: str, sql: str = "select * from raw") -> Path:
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "project.yml").write_text("name: t\nvars: {lo: 1}\n")
    (root / "sources.yml").write_text("prompts:\n  raw:\n    path: data/raw.jsonl\n")
    (root / "data" / "raw.jsonl").write_text("\n".join(ROWS) + "\n")
    (root / "models" / "m.sql").write_text(sql)
    (root / "models" / "down.sql").write_text("select id from m where id > getvariable('lo')\n")
    (root / "models" / "m.yml").write_text(yml)
    return root


def run_results(root: Path) -> list[dict]:
    return json.loads((root / "target" / "run_results.json").read_text())["nodes"]


EACH = [
    ("- name: id\n        tests: [not_null]", "pass", None),
    ("- name: prompt\n        tests: [not_null]", "fail",
     'not_null(m.prompt) 1 row; sample: select * from "m" where "prompt" is null limit 5'),
    ("- name: id\n        tests: [unique]", "fail",
     'unique(m.id) 2 rows; sample: select * from (select *, count(*) over (partition by "id") as n_records '
     'from "m" where "id" is not null) as d where n_records > 1 limit 5'),
    ("- name: label\n        tests:\n          - accepted_values: {values: [\"Yes\", \"No\"]}", "fail",
     "accepted_values(m.label in Yes, No) 1 row; sample: select * from \"m\" where \"label\" is not null and "
     "\"label\" not in ('Yes', 'No') limit 5"),
    ("- name: label\n        tests:\n          - accepted_values: {values: [\"Yes\", \"No\", \"Maybe\"]}",
     "pass", None),
    ("- name: id\n        tests:\n          - relationships: {to: raw, field: id}", "pass", None),
    ("- name: prompt\n        tests:\n          - relationships: {to: raw, field: label}", "fail",
     'relationships(m.prompt -> raw.label) 3 rows; sample: select * from "m" where "prompt" is not null and '
     '"prompt" not in (select "label" from "raw" where "label" is not null) limit 5'),
    ("- name: id\n        tests:\n          - expression: {expression: \"id < 3\"}", "fail",
     'expression(m: id < 3) 1 row; sample: select * from "m" where not coalesce((id < 3), false) limit 5'),
    ("- name: id\n        tests:\n          - row_count: {min: 5}", "fail",
     'row_count(m) expected at least 5 rows, got 4; query: select count(*) as row_count from "m" '
     'having not (count(*) >= 5)'),
    ("- name: id\n        tests:\n          - row_count: {min: 1, max: 4}", "pass", None),
]


@pytest.mark.parametrize(("column_yml", "status", "message"), EACH)
def test_each_kind(tmp_path, column_yml, status, message):
    root = mini(tmp_path / "p", f"models:\n  - name: m\n    columns:\n      {column_yml}\n")
    rr = Project.load(root).run()
    m = rr.node("m")
    assert [t["status"] for t in m["tests"]] == [status]
    if status == "pass":
        assert m["status"] == "built"
        assert rr.node("down")["status"] == "built"
    else:
        assert m["status"] == "failed"
        assert m["message"] == f"1 of 1 test failed: {message}"
        # dbt build semantics: downstream of a failed test is skipped, the old tables stay
        assert rr.node("down")["status"] == "skipped"
        assert rr.node("down")["blocked_by"] == "m"


def test_severity_warn_and_summary(tmp_path):
    yml = """models:
  - name: m
    columns:
      - name: id
        tests: [not_null, unique]
      - name: prompt
        tests:
          - not_null: {severity: warn}
    tests:
      - row_count: {min: 5, config: {severity: warn}}
      - unique: {columns: [prompt, label]}
      - expression: {expression: "id < 3"}
"""
    root = mini(tmp_path / "p", yml)
    rr = Project.load(root).run()
    m = rr.node("m")
    assert m["status"] == "failed"
    assert m["message"].startswith("2 of 6 tests failed: unique(m.id) 2 rows; sample: ")
    assert "; expression(m: id < 3) 1 row; sample: " in m["message"]
    assert m["warnings"] == [
        'test not_null(m.prompt) 1 row; sample: select * from "m" where "prompt" is null limit 5',
        'test row_count(m) expected at least 5 rows, got 4; query: select count(*) as row_count from "m" '
        'having not (count(*) >= 5)',
    ]
    assert run_results(root)[1]["tests"][0]["status"] == "pass"  # recorded in run_results.json
    # the failed model stays stale: the next run rebuilds and retests it
    rr = Project.load(root).run()
    assert rr.node("m")["reason"] == "its data tests failed last run"
    assert rr.node("m")["status"] == "failed"
    # fixing the data clears it; downstream then builds
    (root / "models" / "m.sql").write_text("select * from raw where id < 3 and prompt is not null")
    rr = Project.load(root).run()
    assert rr.node("m")["status"] == "built"
    assert rr.node("down")["status"] == "built"
    assert rr.node("m")["warnings"] == [
        'test row_count(m) expected at least 5 rows, got 2; query: select count(*) as row_count from "m" '
        'having not (count(*) >= 5)']
    assert Project.load(root).run().node("m")["status"] == "skipped"


def test_warn_only_builds_downstream(tmp_path):
    root = mini(tmp_path / "p", "models:\n  - name: m\n    columns:\n      - name: id\n        tests:\n"
                                "          - unique: {severity: warn}\n")
    rr = Project.load(root).run()
    assert rr.ok
    assert rr.node("m")["status"] == "built"
    assert rr.node("down")["status"] == "built"
    assert rr.node("m")["warnings"][0].startswith("test unique(m.id) 2 rows; sample: ")


BAD = [
    ("      - name: id\n        tests: [not_nul]\n",
     "models/m.yml:5: unknown test 'not_nul' in model 'm' column 'id' (did you mean 'not_null'?)"),
    ("      - name: id\n        tests:\n          - unique: {severty: warn}\n",
     "models/m.yml:6: unknown option 'severty' for test 'unique' in model 'm' column 'id' "
     "(did you mean 'severity'?)"),
    ("      - name: id\n        tests:\n          - unique: {severity: fatal}\n",
     "models/m.yml:6: severity of test 'unique' in model 'm' column 'id' must be 'error' or 'warn', got 'fatal'"),
    ("      - name: id\n        tests:\n          - accepted_values: {vals: [1]}\n",
     "models/m.yml:6: unknown option 'vals' for test 'accepted_values' in model 'm' column 'id' "
     "(did you mean 'values'?)"),
    ("      - name: id\n        tests:\n          - accepted_values: {}\n",
     "models/m.yml:6: test 'accepted_values' in model 'm' column 'id' needs 'values' "
     '(e.g. accepted_values: {values: ["Yes", "No"]})'),
    ("      - name: id\n        tests:\n          - relationships: {to: rwa, field: id}\n",
     "models/m.yml:6: relationships on model 'm' column 'id' points to unknown node 'rwa' (did you mean 'raw'?)"),
    ("      - name: id\n        tests:\n          - row_count: {}\n",
     "models/m.yml:6: row_count on model 'm' column 'id' needs 'min' or 'max' (e.g. row_count: {min: 1})"),
]


@pytest.mark.parametrize(("columns_yml", "error"), BAD)
def test_bad_specs_point_at_the_yml(tmp_path, columns_yml, error):
    root = mini(tmp_path / "p", "models:\n  - name: m\n    columns:\n" + columns_yml)
    with pytest.raises(KtoBuildError) as exc:  # found when the project loads, before anything runs
        Project.load(root)
    assert exc.value.one_line() == error
    for command in ("test", "plan", "run"):
        res = cli(root, command)
        assert res.returncode == 2
        assert res.stderr.strip() == f"error: {error}"
        assert "Traceback" not in res.stderr


def test_bad_expression_sql_is_reported_when_tests_run(tmp_path):
    # loading checks test names and options only (no sqlglot import); the SQL of an
    # `expression` test is parsed when the model's tests run
    error = ("models/m.yml:6: expression 'id <' is not valid SQL (write a boolean SQL expression, e.g. "
             '"length(prompt) > 0")')
    root = mini(tmp_path / "p", "models:\n  - name: m\n    columns:\n      - name: id\n        tests:\n"
                                "          - expression: {expression: \"id <\"}\n")
    rr = Project.load(root).run()
    assert rr.node("m")["status"] == "failed"
    assert rr.node("m")["message"] == error
    res = cli(root, "test")
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {error}"
    assert "Traceback" not in res.stderr


def test_missing_column(tmp_path):
    root = mini(tmp_path / "p", "models:\n  - name: m\n    columns:\n      - name: promt\n        tests: [not_null]\n")
    rr = Project.load(root).run()
    assert rr.node("m")["message"] == ("1 of 1 test failed: not_null(m.promt): models/m.yml:5: column 'promt' is "
                                       "not in m (did you mean 'prompt'?)")


def test_test_command(tmp_path):
    yml = ("models:\n  - name: m\n    columns:\n      - name: id\n        tests: [not_null, unique]\n"
           "  - name: down\n    tests:\n      - row_count: {min: 1}\n")
    root = mini(tmp_path / "p", yml)
    res = cli(root, "test")
    assert res.returncode == 2
    assert "has not been built yet" in res.stdout + res.stderr or "does not exist yet" in res.stderr
    Project.load(root).run()
    res = cli(root, "test", "--select", "m")
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "PASS not_null(m.id)",
        'FAIL unique(m.id) 2 rows; sample: select * from (select *, count(*) over (partition by "id") as n_records '
        'from "m" where "id" is not null) as d where n_records > 1 limit 5',
        "Done: 1 passed, 0 warned, 1 failed of 2 tests.",
    ]
    res = cli(root, "test", "--select", "down", "--json")
    assert res.returncode == 1  # down was skipped (m failed), so it was never built
    assert json.loads(res.stdout)[0]["message"] == "'down' has not been built yet (run 'kto-build run')"


def test_compile_error_is_ktobuilderror(tmp_path):
    root = mini(tmp_path / "p", "models:\n  - name: m\n    tests: [not_null]\n")
    with pytest.raises(KtoBuildError) as e:
        Project.load(root)
    assert e.value.one_line() == ("models/m.yml:3: test 'not_null' on model 'm' needs a column (put it under a "
                                  "column, or give column_name)")

