"""The README's example session is a recorded real run (scripts/readme_session.py): the shown
blocks are exactly the recording, the recording is of the script's current session, and the
parts that do not depend on the model match a fresh run of the example now."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import readme_session  # noqa: E402


def recorded() -> list[dict]:
    return json.loads(readme_session.TRANSCRIPT.read_text(encoding="utf-8"))["steps"]


def test_readme_blocks_are_the_recorded_run():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_session.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "README.md's 4 session blocks match docs/readme_session.json\n"


def test_the_recording_is_of_the_current_session():
    assert [(s["block"], s["command"]) for s in recorded()] == [(b, c) for b, c, _ in readme_session.SESSION]


def test_check_fails_on_a_hand_edited_block():
    readme = readme_session.README.read_text(encoding="utf-8")
    edited = readme.replace("18 built, 0 skipped, 0 failed.", "18 built, 0 skipped, 0 failed!", 1)
    assert edited != readme
    fixed = readme_session.apply(edited, readme_session.render(recorded()))
    assert fixed != edited and fixed == readme  # --check compares exactly this


def _steady(line: str) -> str:
    """A run line without its position and timing."""
    line = re.sub(r"^\s*\d+ of \d+ ", "", line.strip())
    return re.sub(r", \d+\.\d+s\]$", "]", line)


def test_model_independent_lines_match_a_run_now(tmp_path):
    project = tmp_path / "haiku"
    cli = [sys.executable, "-m", "kto_build.cli"]
    assert subprocess.run([*cli, "init", str(project)], capture_output=True).returncode == 0
    res = subprocess.run([*cli, "run", "-s", "+stg_prompts"], cwd=project, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    now = [_steady(line) for line in res.stdout.splitlines()[:-1]]
    first_run = recorded()[0]["output"].splitlines()
    assert [_steady(line) for line in first_run[:4]] == now == [
        "START source haiku_prompts (new)", "OK source haiku_prompts [32 rows]",
        "START model stg_prompts (new)", "OK model stg_prompts [30 rows]"]
    plan = subprocess.run([*cli, "plan"], cwd=project, capture_output=True, text=True).stdout
    calls = re.search(r"\[(\d+) calls \(gemma-3-270m \d+\) for the 30 prompts in 'stg_prompts'\]", plan)
    assert calls, plan
    assert f"{calls.group(1)} generated, 0 cached; {calls.group(1)} calls" in recorded()[0]["output"]
