"""A stand-in for the example's judge node in test copies of the example that have no judge: a model
``haiku_judge`` with the judge table's columns and no rows (no verdicts), and the vars the label models
read, fixed in the copied SQL (``label_source`` = 'human': people's labels only, as before judges existed),
so the test's project.yml keeps its lines."""

from __future__ import annotations

from pathlib import Path

from bench.engine.projects import JUDGE_STANDIN_SQL


def write_judge_standin(models_dir: Path) -> None:
    (models_dir / "haiku_judge.sql").write_text(JUDGE_STANDIN_SQL)
    for name in ("label_choice.sql", "judge_labels.sql"):
        path = models_dir / name
        text = path.read_text().replace("getvariable('label_source')", "'human'")
        path.write_text(text.replace("getvariable('judge_model')", "'none'"))
