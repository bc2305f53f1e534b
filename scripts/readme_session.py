"""Regenerate the README's example session from a real run.

    .venv/bin/python scripts/readme_session.py          # run the session, rewrite the README blocks
    .venv/bin/python scripts/readme_session.py --check  # the README blocks == the last recorded run?

The session runs in a temporary copy of the example project (`kto-build init`),
with the real local model, exactly as a new user types it: a first run, a no-op
run, answers exported to a file, filled in by one annotator and loaded back,
the run that writes the datasets, two queries on the results, and a plan with
another var. Every command's real output is recorded in
docs/readme_session.json and written into README.md between the markers

    <!-- readme-session: NAME -->
    ```console
    ...
    ```
    <!-- /readme-session -->

(the prose around the blocks is left alone). ``--check`` runs no model: it
renders the blocks from docs/readme_session.json and fails when README.md
differs, so a hand edit of a shown output cannot drift from the recorded run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TRANSCRIPT = ROOT / "docs" / "readme_session.json"
BLOCK = re.compile(r"(<!-- readme-session: (?P<name>[\w-]+) -->\n)```console\n.*?```\n(<!-- /readme-session -->)",
                   re.S)

KTO_QUERY = ("import duckdb; print(duckdb.connect('target/kto_build.duckdb', read_only=True)"
             ".sql('select prompt, label from kto limit 2'))")
LOAD_KTO = "from datasets import load_from_disk; print(load_from_disk('target/exports/dev/haiku_kto/dataset'))"

# (block, shown command line, argv): `kto-build` runs the installed CLI of this interpreter
SESSION = [
    ("first-run", "kto-build run", ["kto-build", "run"]),
    ("first-run", "kto-build run", ["kto-build", "run"]),
    ("answers", "kto-build annotate haiku_ratings --export-pending pending.jsonl",
     ["kto-build", "annotate", "haiku_ratings", "--export-pending", "pending.jsonl"]),
    ("answers", "$EDITOR pending.jsonl          # each line: {\"record_id\", \"prompt\", \"completion\", ..., "
                "\"annotator\": \"ana\", \"value\": \"Yes\"}", ["fill-answers"]),
    ("answers", "kto-build annotate haiku_ratings --answers pending.jsonl",
     ["kto-build", "annotate", "haiku_ratings", "--answers", "pending.jsonl"]),
    ("second-run", "kto-build run", ["kto-build", "run"]),
    ("second-run", f'python -c "{KTO_QUERY}"', ["python", "-c", KTO_QUERY]),
    ("second-run", f'python -c "{LOAD_KTO}"', ["python", "-c", LOAD_KTO]),
    ("plan", "kto-build plan --vars '{min_agreement: 0.6}'      # a 2-of-3 majority instead of unanimity",
     ["kto-build", "plan", "--vars", "{min_agreement: 0.6}"]),
]


def fill_answers(project: Path) -> str:
    """One annotator, 'ana': per prompt, Yes for its first record and No for the others, so that
    prompts with two rated haiku give DPO pairs whatever the model wrote."""
    path = project / "pending.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: r["record_id"]):
        row["annotator"], row["value"] = "ana", "No" if row["prompt"] in seen else "Yes"
        seen.add(row["prompt"])
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return ""


def run_session() -> list[dict]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
    steps = []
    with tempfile.TemporaryDirectory(prefix="kto-readme-") as tmp:
        project = Path(tmp) / "haiku"
        subprocess.run([sys.executable, "-m", "kto_build.cli", "init", str(project)], check=True,
                       capture_output=True)
        for block, shown, args in SESSION:
            if args == ["fill-answers"]:
                out, code = fill_answers(project), 0
            else:
                cmd = [sys.executable, "-m", "kto_build.cli", *args[1:]] if args[0] == "kto-build" else \
                    [sys.executable, *args[1:]]
                res = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=1800)
                out, code = res.stdout + res.stderr, res.returncode
            if code != 0:
                raise SystemExit(f"`{shown}` exited {code}:\n{out}")
            print(f"$ {shown}\n{out}", end="" if out.endswith("\n") or not out else "\n")
            steps.append({"block": block, "command": shown, "output": out})
    return steps


def render(steps: list[dict]) -> dict[str, str]:
    """The text of each console block."""
    blocks: dict[str, list[str]] = {}
    for s in steps:
        out = s["output"].rstrip("\n")
        blocks.setdefault(s["block"], []).append(f"$ {s['command']}" + (f"\n{out}" if out else ""))
    return {name: "```console\n" + "\n\n".join(parts) + "\n```\n" for name, parts in blocks.items()}


def apply(readme: str, blocks: dict[str, str]) -> str:
    missing = set(blocks) - {m.group("name") for m in BLOCK.finditer(readme)}
    if missing:
        raise SystemExit(f"README.md has no '<!-- readme-session: NAME -->' block for: {', '.join(sorted(missing))}")
    return BLOCK.sub(lambda m: m.group(1) + blocks[m.group("name")] + m.group(3), readme)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare README.md with the last recorded run; run nothing")
    args = ap.parse_args(argv)
    if args.check:
        steps = json.loads(TRANSCRIPT.read_text(encoding="utf-8"))["steps"]
        readme = README.read_text(encoding="utf-8")
        if apply(readme, render(steps)) != readme:
            print("README.md's session blocks differ from docs/readme_session.json: "
                  "run scripts/readme_session.py to regenerate them", file=sys.stderr)
            return 1
        print(f"README.md's {len(render(steps))} session blocks match docs/readme_session.json")
        return 0
    steps = run_session()
    TRANSCRIPT.write_text(json.dumps({"steps": steps}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    README.write_text(apply(README.read_text(encoding="utf-8"), render(steps)), encoding="utf-8")
    print(f"wrote {TRANSCRIPT.relative_to(ROOT)} and {len(render(steps))} blocks of README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
