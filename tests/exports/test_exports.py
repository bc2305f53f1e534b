"""Exports: files that `datasets` loads with TRL's exact schema, row for row equal
to the DuckDB table; format checks; skip / force; the dataset card; lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import pytest
from conftest import PROJECT_YML, cli, make_project

from kto_build.nodes.export.checks import kto_balance_warnings
from kto_build.project import Project
from tests.helpers import query as db_rows

KTO_FEATURES = {"prompt": datasets.Value("string"), "completion": datasets.Value("string"),
                "label": datasets.Value("bool")}
DPO_FEATURES = {"prompt": datasets.Value("string"), "chosen": datasets.Value("string"),
                "rejected": datasets.Value("string")}
MESSAGES = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})




def load_all(d, split="train"):
    """The three outputs, each loaded back with datasets (a fresh cache: datasets caches a
    local folder by its name, so two folders called haiku_kto would share a cache entry)."""
    cache = str(d.parent / ".hf-cache")
    return {
        "parquet": datasets.load_dataset("parquet", data_files=str(d / f"{split}.parquet"), split="train",
                                         cache_dir=cache),
        "jsonl": datasets.load_dataset("json", data_files=str(d / f"{split}.jsonl"), split="train",
                                       cache_dir=cache),
        "save_to_disk": datasets.load_from_disk(str(d / "dataset")),
        "folder": datasets.load_dataset(str(d), split=split, cache_dir=cache),  # via the card's configs
    }


@pytest.mark.parametrize(("export", "model", "features", "cols"), [
    ("haiku_kto", "kto", KTO_FEATURES, "prompt, completion, label"),
    ("haiku_dpo", "dpo", DPO_FEATURES, "prompt, chosen, rejected"),
])
def test_round_trip_exact_schema(project_dir, export, model, features, cols):
    rr = Project.load(project_dir).run()
    assert rr.ok, rr.nodes
    expected = db_rows(project_dir, f"select {cols} from {model}")
    assert len(expected) > 0
    for how, ds in load_all(project_dir / "target" / "exports" / "default" / export).items():
        assert dict(ds.features) == features, how
        got = [tuple(r[c] for c in features) for r in ds]
        assert got == expected, how  # same rows, same order
    assert rr.node(export)["rows"] == len(expected)


def test_conversational_style(tmp_path):
    yml = PROJECT_YML.replace("    format: kto\n", "    format: kto\n    style: conversational\n")
    yml = yml.replace("    format: dpo\n", "    format: dpo\n    style: conversational\n")
    root = make_project(tmp_path / "p", project_yml=yml)
    assert Project.load(root).run().ok
    kto = load_all(root / "target" / "exports" / "default" / "haiku_kto")
    for how, ds in kto.items():
        assert dict(ds.features) == {"prompt": MESSAGES, "completion": MESSAGES, "label": datasets.Value("bool")}, how
        first = ds[0]
        # the generator's system prompt is part of what the model was asked: the first message
        assert [m["role"] for m in first["prompt"]] == ["system", "user"], how
        assert first["completion"][0]["role"] == "assistant"
    expected = db_rows(root, "select system_prompt, prompt, completion, label from kto")
    assert expected[0][0] == "You are a poet specialising in haiku."
    got = [(r["prompt"][0]["content"], r["prompt"][1]["content"], r["completion"][0]["content"], r["label"])
           for r in kto["parquet"]]
    assert got == expected
    dpo = load_all(root / "target" / "exports" / "default" / "haiku_dpo")["jsonl"]
    assert dict(dpo.features) == {"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES}
    assert [m["role"] for m in dpo[0]["prompt"]] == ["system", "user"]


def test_conversational_without_system_prompt_has_only_the_user_message(tmp_path):
    sql = "select prompt, completion, label, case when label then system_prompt end as system_prompt from kto"
    root = _with_model(tmp_path, sql, "kto", "    style: conversational\n    outputs: [parquet]\n")
    assert Project.load(root).run().ok
    ds = datasets.load_dataset("parquet", data_files=str(root / "target/exports/default/out/train.parquet"),
                               split="train")
    roles = sorted({(r["label"], tuple(m["role"] for m in r["prompt"])) for r in ds})
    assert roles == [(False, ("user",)), (True, ("system", "user"))]


def test_standard_style_warns_when_prompt_and_completion_join_without_whitespace(tmp_path):
    root = _with_model(tmp_path, "select prompt, completion, label from kto", "kto",
                       "    weights: {undesirable_weight: 1.5}\n")
    out = Project.load(root).run().node("out")
    assert out["status"] == "built"
    assert out["warnings"] == [
        "9 rows join prompt and completion with no whitespace between them (TRL concatenates the two: "
        "'iet library.Quiet rows o'); use style: conversational, or end the prompts with a newline"]
    (root / "models" / "bad.sql").write_text("select prompt || e'\\n' as prompt, completion, label from kto")
    out = Project.load(root).run().node("out")
    assert out["status"] == "built" and "warnings" not in out


def _with_model(tmp_path, sql, fmt="kto", extra=""):
    yml = PROJECT_YML.split("exports:")[0] + f"exports:\n  out:\n    model: bad\n    format: {fmt}\n{extra}"
    root = make_project(tmp_path / "p", project_yml=yml)
    (root / "models" / "bad.sql").write_text(sql)
    return root


FORMAT_ERRORS = [
    ("kto", "select prompt, completion, 'Yes' as label from kto",
     "project.yml:13: export 'out' (kto format): bad.label is VARCHAR, TRL's KTOTrainer needs BOOLEAN "
     "(e.g. select value = 'Yes' as label)"),
    ("kto", "select prompt, completion from kto",
     "project.yml:13: export 'out' (kto format): model 'bad' has no column 'label' (columns: prompt, completion)"),
    ("kto", "select prompt, completion as completions, label from kto",
     "project.yml:13: export 'out' (kto format): model 'bad' has no column 'completion' "
     "(did you mean 'completions'?)"),
    ("kto", "select prompt, case when label then '' else completion end as completion, label from kto",
     "project.yml:13: export 'out' (kto format): 6 rows have a NULL or empty completion (sample: select * from "
     "\"bad\" where \"completion\" is null or regexp_full_match(\"completion\", '\\s*') limit 5)"),
    ("kto", "select prompt, case when label then e' \\n\\t' else completion end as completion, label from kto",
     "project.yml:13: export 'out' (kto format): 6 rows have a NULL or empty completion (sample: select * from "
     "\"bad\" where \"completion\" is null or regexp_full_match(\"completion\", '\\s*') limit 5)"),
    ("kto", "select prompt, completion, case when label then null else false end as label from kto",
     "project.yml:13: export 'out' (kto format): 6 rows have a NULL label (sample: select * from \"bad\" where "
     "label is null limit 5)"),
    ("kto", "select [{'role': 'user', 'content': prompt}] as prompt, completion, label from kto",
     "project.yml:13: export 'out' (kto format): bad.prompt holds message lists but the export's style is "
     "standard: never mix formats (set style: conversational, or select plain text)"),
    ("dpo", "select prompt, chosen, chosen as rejected from dpo",
     "project.yml:13: export 'out' (dpo format): 5 rows have chosen = rejected: TRL accepts them silently and "
     "learns nothing (sample: select * from \"bad\" where chosen = rejected limit 5)"),
    ("dpo", "select prompt, chosen, length(rejected) as rejected from dpo",
     "project.yml:13: export 'out' (dpo format): bad.rejected is BIGINT; DPO needs text (VARCHAR) or a list of "
     "{role, content} messages"),
]


@pytest.mark.parametrize(("fmt", "sql", "error"), FORMAT_ERRORS)
def test_format_errors(tmp_path, fmt, sql, error):
    root = _with_model(tmp_path, sql, fmt)
    rr = Project.load(root).run()
    out = rr.node("out")
    assert out["status"] == "failed"
    assert out["message"] == error
    assert not (root / "target" / "exports" / "default" / "out").exists(), "nothing written when a check fails"
    # the failed export stays stale and is retried on the next run
    assert Project.load(root).plan().items[-1].action == "build" or any(
        i.name == "out" and i.action == "build" for i in Project.load(root).plan().items)


def test_conversational_empty_messages_error(tmp_path):
    sql = "select [{'role': 'user', 'content': prompt}] as prompt, [] :: STRUCT(role VARCHAR, content VARCHAR)[] " \
          "as completion, label from kto"
    root = _with_model(tmp_path, sql, "kto", "    style: conversational\n")
    out = Project.load(root).run().node("out")
    assert out["status"] == "failed"
    assert "9 rows have a NULL, an empty message list, or a message without role/content completion" in out["message"]


def test_balance_warnings():
    assert kto_balance_warnings(10, 10) == []
    assert kto_balance_warnings(4, 3) == []
    assert kto_balance_warnings(6, 4)[0].endswith(
        "= 1.50:1 with weights 1/1, outside TRL's recommended 1:1 to 4:3; set undesirable_weight=1.13 in KTOConfig "
        "(and in the export's 'weights' to silence this)")
    assert "set desirable_weight=3.00" in kto_balance_warnings(2, 6)[0]
    assert kto_balance_warnings(6, 4, 1.0, 1.13) == []  # the suggestion really lands in range
    assert kto_balance_warnings(2, 6, 3.0, 1.0) == []
    assert kto_balance_warnings(5, 0) == [
        "all 5 labels are true: no undesirable (label false) examples; KTO trains but with a weight warning "
        "(collect more answers or relax min_agreement)"]


def test_one_label_class_warns(tmp_path):
    root = _with_model(tmp_path, "select prompt || ' ' as prompt, completion, label from kto where label")
    out = Project.load(root).run().node("out")
    assert out["status"] == "built"
    assert out["warnings"] == ["all 6 labels are true: no undesirable (label false) examples; KTO trains but with "
                               "a weight warning (collect more answers or relax min_agreement)"]


def test_weights_silence_the_ratio_warning(tmp_path):
    root = _with_model(tmp_path, "select prompt || ' ' as prompt, completion, label from kto", "kto",
                       "    weights: {undesirable_weight: 1.5}\n")
    out = Project.load(root).run().node("out")
    assert out["status"] == "built" and "warnings" not in out


def test_raw_export(tmp_path):
    root = _with_model(tmp_path, "select * from annotator_stats", "raw", "    columns: [annotator_id, answers]\n")
    assert Project.load(root).run().ok
    ds = datasets.load_dataset("parquet", data_files=str(root / "target/exports/default/out/train.parquet"),
                               split="train")
    assert list(ds.features) == ["annotator_id", "answers"]
    assert [(r["annotator_id"], r["answers"]) for r in ds] == db_rows(root, "select annotator_id, answers from "
                                                                            "annotator_stats")


def test_skip_force_and_missing_outputs(project_dir):
    assert Project.load(project_dir).run().ok
    parquet = project_dir / "target/exports/default/haiku_kto/train.parquet"
    stamp = parquet.stat().st_mtime_ns
    rr = Project.load(project_dir).run()
    assert rr.node("haiku_kto")["status"] == "skipped"
    assert parquet.stat().st_mtime_ns == stamp
    res = cli(project_dir, "export", "haiku_kto")
    assert res.returncode == 0, res.stderr
    assert "START export haiku_kto (full refresh)" in res.stdout
    assert parquet.stat().st_mtime_ns != stamp
    parquet.unlink()
    plan = {i.name: i for i in Project.load(project_dir).plan().items}
    assert plan["haiku_kto"].reason == "files missing: target/exports/default/haiku_kto/train.parquet"
    assert plan["haiku_dpo"].action == "skip"
    rr = Project.load(project_dir).run()
    assert {n["name"] for n in rr.nodes if n["status"] == "built"} == {"haiku_kto"}
    assert parquet.exists()
    res = cli(project_dir, "export", "kto")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: 'kto' is a model, not an export (exports: haiku_dpo, haiku_kto)"
    res = cli(project_dir, "export", "haiku_kot")
    assert res.stderr.strip() == "error: unknown node 'haiku_kot' (did you mean 'haiku_kto'?)"


def test_card(project_dir):
    assert Project.load(project_dir).run().ok
    text = (project_dir / "target/exports/default/haiku_kto/README.md").read_text()
    meta = text.split("---\n")[1]
    assert "license: apache-2.0" in meta
    assert "size_categories:\n- n<1K" in meta
    assert "task_categories:\n- text-generation" in meta
    assert "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: train.parquet" in meta
    assert "- rows: 9" in text
    assert "- label balance: 6 desirable (true) : 3 undesirable (false) (67% desirable)" in text
    # current answers = rows of stg_responses (a later discard or draft withdraws a submit), not log rows
    assert "- annotators: 3 (25 current submitted answers; the log keeps 30 events)" in text
    assert db_rows(project_dir, "select count(*) from stg_responses") == [(25,)]
    assert "mean majority share 0.870, unanimous 6 of 9" in text
    assert "### model `kto`" in text and "majority_label as label" in text  # the SQL of the exported model
    assert "### source `haiku_generations`" in text
    assert "min_agreement: 1.0" in text
    dpo = (project_dir / "target/exports/default/haiku_dpo/README.md").read_text()
    assert "- rows: 5" in dpo and "dpo_min_margin: 0.5" in dpo
    assert "\npretty_name: haiku_dpo\n" in dpo and "\n# haiku_dpo\n" in dpo  # not "haiku_test haiku_dpo"


def test_card_redacts_secret_settings():
    from kto_build.nodes.export.card import redact

    assert redact({"api_key": "sk-123", "api_key_env": "OPENAI_API_KEY", "params": {"token": "hf_x", "n": 1}}) == {
        "api_key": "<redacted>", "api_key_env": "OPENAI_API_KEY", "params": {"token": "<redacted>", "n": 1}}
    assert redact({"generation": {"max_new_tokens": 40, "max_tokens": 8}}) == {
        "generation": {"max_new_tokens": 40, "max_tokens": 8}}


def test_unknown_model_and_bad_config(tmp_path):
    root = _with_model(tmp_path, "select 1 as x")
    (root / "project.yml").write_text((root / "project.yml").read_text().replace("model: bad", "model: ktoo"))
    res = cli(root, "plan")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: project.yml:13: export 'out' reads unknown node 'ktoo' (did you mean 'kto'?)"
    (root / "project.yml").write_text((root / "project.yml").read_text().replace("format: kto", "format: kto\n"
                                                                                  "    output: [parquet]"))
    res = cli(root, "plan")
    assert res.stderr.strip() == ("error: project.yml:16: unknown key 'output' in exports 'out' "
                                  "(did you mean 'outputs'?)")


def test_plan_and_noop_run_do_not_import_datasets(project_dir):
    assert Project.load(project_dir).run().ok
    code = ("import sys\nfrom kto_build.project import Project\np = Project.load(sys.argv[1])\np.plan()\n"
            "rr = p.run()\nassert all(n['status'] == 'skipped' for n in rr.nodes)\n"
            "bad = [m for m in ('datasets', 'distilabel', 'argilla') if m in sys.modules]\nprint(bad)\n")
    out = subprocess.run([sys.executable, "-c", code, str(project_dir)], capture_output=True, text=True,
                         env={**os.environ}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_run_results_json_has_tests_and_files(project_dir):
    assert Project.load(project_dir).run().ok
    nodes = {n["name"]: n for n in json.loads((project_dir / "target/run_results.json").read_text())["nodes"]}
    assert {t["name"] for t in nodes["kto"]["tests"]} >= {"not_null(kto.label)", "unique(kto.prompt, completion)"}
    assert nodes["haiku_kto"]["extra"]["files"]["parquet"] == "target/exports/default/haiku_kto/train.parquet"


def test_export_refuses_a_model_that_failed_its_tests(project_dir):
    assert Project.load(project_dir).run().ok
    yml = project_dir / "models" / "marts.yml"
    yml.write_text(yml.read_text().replace("      - row_count: {min: 1, severity: warn}\n",
                                           "      - row_count: {min: 1000}\n", 1))
    assert Project.load(project_dir).run().node("kto")["status"] == "skipped"  # tests are not in the fingerprint
    kto = project_dir / "models" / "kto.sql"
    kto.write_text(kto.read_text().replace("order by prompt, completion, generation_id", "order by prompt"))
    rr = Project.load(project_dir).run()
    assert rr.node("kto")["status"] == "failed"
    assert rr.node("kto")["message"].startswith("1 of 9 tests failed: row_count(kto) expected at least 1000 rows, "
                                                "got 9")
    assert rr.node("haiku_kto")["status"] == "skipped"
    res = cli(project_dir, "export", "haiku_kto")
    assert res.returncode == 1
    assert ("error: haiku_kto: project.yml:13: export 'haiku_kto': model 'kto' failed its data tests, not exporting "
            "it: 1 of 9 tests failed: row_count(kto)") in res.stderr
