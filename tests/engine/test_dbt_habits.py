"""Issue 8: positive_label checked at load, SKIP lines, `show` that fits, shared options after
every command name, dbt selector syntax on the command line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kto_build.cli import cli
from kto_build.commands.common import format_table


@pytest.fixture
def example(tmp_path):
    dest = tmp_path / "haiku"
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "init", str(dest)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return dest


def one_error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_positive_label_must_be_one_of_the_labels(example):
    text = (example / "project.yml").read_text()
    (example / "project.yml").write_text(text.replace('positive_label: "Yes"', 'positive_label: "yes"'))
    line = next(i for i, t in enumerate((example / "project.yml").read_text().splitlines(), 1) if "positive_label" in t)
    res = CliRunner().invoke(cli, ["--project-dir", str(example), "ls"])
    assert one_error(res) == (f"error: project.yml:{line}:19: positive_label 'yes' is not one of the labels of "
                              "annotation 'haiku_ratings': Yes, No (did you mean 'Yes'?)")
    assert not (example / "target" / "kto_build.duckdb").exists()
    res = CliRunner().invoke(cli, ["--project-dir", str(example), "plan", "--vars", "{positive_label: Jes}"])
    assert one_error(res) == ("error: --vars: positive_label 'Jes' is not one of the labels of annotation "
                              "'haiku_ratings': Yes, No (did you mean 'Yes'?)")
    (example / "project.yml").write_text(text)
    assert CliRunner().invoke(cli, ["--project-dir", str(example), "ls"]).exit_code == 0


def test_a_node_skipped_for_a_failed_upstream_gets_a_skip_line(proj):
    proj.write("models/stg_prompts.sql", "select no_such_column from raw_prompts")
    r = proj.run()
    assert r["exit_code"] == 1
    lines = r["output"].splitlines()
    skips = [line for line in lines if " SKIP " in line]
    assert skips == ["  3 of 4 SKIP model prompt_stats (upstream 'stg_prompts' failed)",
                     "  4 of 4 SKIP model shouty (upstream 'stg_prompts' failed)"], r["output"]
    assert "Done in" in lines[-1] or "Done in" in lines[-2]


def test_show_fits_the_terminal_and_rounds_floats():
    rows = [(1, 2 / 3, "x" * 200, 12.5), (2, 1.0, "short", None)]
    out = format_table(["id", "share", "text", "score"], rows, width=60).splitlines()
    assert max(len(line) for line in out[:-1]) == 60
    assert out[3].startswith("| 1  | 0.6667 | xxxx") and out[3].endswith("x… | 12.5  |")
    assert out[4].split("|")[2].strip() == "1.0" and out[4].split("|")[4].strip() == "NULL"
    assert out[-1] == "2 rows"
    wide = format_table(["id", "share"], [(1, 2 / 3)], width=200).splitlines()
    assert wide[1] == "| id | share  |"


def test_shared_options_after_every_command_name(proj, tmp_path):
    proj.write("project.yml", """
        name: demo
        target: dev
        targets:
          dev: {database: target/dev.duckdb}
          prod: {database: target/prod.duckdb}
        vars:
          min_len: 3
          suffix: "!"
    """)
    runner = CliRunner()
    where = ["--project-dir", str(proj.root)]
    assert runner.invoke(cli, ["run", "-t", "prod", *where]).exit_code == 0
    assert (proj.root / "target" / "prod.duckdb").exists() and not (proj.root / "target" / "dev.duckdb").exists()
    res = runner.invoke(cli, ["test", "-t", "prod", "--vars", "{min_len: 3}", *where])
    assert res.exit_code == 0 and "No such option" not in res.output, res.output
    res = runner.invoke(cli, ["show", "stg_prompts", *where, "--target", "prod"])
    assert res.exit_code == 0 and res.output.splitlines()[-1] == "2 rows"
    res = runner.invoke(cli, ["export", "stg_prompts", "-t", "prod", *where])
    assert one_error(res) == "error: 'stg_prompts' is a model, not an export (exports: none in project.yml)"


def test_selectors_on_the_command_line(proj):
    def names(*args):
        res = proj.cli("ls", *args)
        assert res.exit_code == 0, res.output
        return [line.split()[0] for line in res.output.splitlines()]

    assert names("-s", "stg_prompts+,tag:fun") == ["prompt_stats", "shouty"]  # a comma: intersection
    assert names("-s", "tag:fun,tag:report") == ["prompt_stats"]
    assert names("-s", "tag:fun,tag:report shouty") == ["prompt_stats", "shouty"]
    assert names("-s", "raw_prompts shouty") == ["raw_prompts", "shouty"]  # a space: union
    assert names("-s", "raw_prompts", "-s", "shouty") == ["raw_prompts", "shouty"]
    assert names("-s", "+shouty", "--exclude", "raw_prompts+,tag:fun") == ["raw_prompts", "stg_prompts"]


def test_compile_names_its_vars_as_set_variable(proj):
    out = proj.cli("compile", "stg_prompts").output
    assert re.match(r'SET VARIABLE "min_len" = 3;\nCREATE OR REPLACE TABLE "stg_prompts" AS\n', out)
    assert out.rstrip().endswith(";")
