"""Docs that cannot drift: every `kto-build ...` command line shown in README.md and
docs/*.md parses with the real click app (command names, flags, arguments), and
every command takes the shared dbt-style options after its name."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kto_build.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```")
INLINE = re.compile(r"`(kto-build [^`]+)`")
# a command shown in a console block: `$ kto-build ...`, or a bare `kto-build ...` line
SHOWN = re.compile(r"^\s*(?:\$\s+)?(?:\.venv/bin/)?(kto-build(?:\s.*)?)$")


def shown_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) for every kto-build command line the docs show."""
    out = []
    for path in DOCS:
        in_code = False
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line):
                in_code = not in_code
                continue
            indented = line.startswith("    ") and not line.lstrip().startswith(("-", "|", "*"))
            if in_code or indented:
                m = SHOWN.match(line)
                if m:
                    out.append((path.name, i, m.group(1)))
            else:
                out.extend((path.name, i, m.group(1)) for m in INLINE.finditer(line))
    return out


def argv(command: str) -> list[str]:
    """The arguments after `kto-build`: comments, pipes and [optional] brackets dropped."""
    text = re.split(r"\s(?:#|\||&&|>)\s?", command + " ")[0]
    text = text.replace("[", " ").replace("]", " ")
    text = re.sub(r"\s\.\.\.(?=\s|$)", " ", text)  # "NAME ..." = more of the same
    words = shlex.split(text)
    assert words[0] == "kto-build"
    return [w for w in words[1:] if w != "|"]


def parse(args: list[str]) -> None:
    """Parse like `kto-build ARGS` would, without running the command."""
    ctx = cli.make_context("kto-build", list(args))
    protected = getattr(ctx, "_protected_args", None)  # click >= 8.2 (deprecated public name)
    if protected is None:
        protected = ctx.protected_args
    name, cmd, rest = cli.resolve_command(ctx, [*protected, *ctx.args])
    cmd.make_context(name, rest, parent=ctx)


COMMANDS = shown_commands()


def test_the_docs_show_commands():
    names = {argv(c)[0] for _, _, c in COMMANDS if argv(c) and not argv(c)[0].startswith("-")}
    assert names >= {"run", "plan", "ls", "compile", "show", "lineage", "test", "export", "annotate", "status",
                     "prune", "init"}
    assert len(COMMANDS) >= 40


@pytest.mark.parametrize(("where", "line", "command"), COMMANDS, ids=[f"{f}:{n}" for f, n, _ in COMMANDS])
def test_shown_command_parses(where, line, command):
    args = argv(command)
    if not args or args in (["--help"], ["--version"]):
        return
    try:
        parse(args)
    except click.exceptions.Exit:  # --help, --version
        pass
    except click.UsageError as exc:
        pytest.fail(f"{where}:{line}: `{command}` does not parse: {exc.format_message()}")


@pytest.mark.parametrize("name", cli.list_commands(click.Context(cli)))
def test_every_command_help_and_shared_options(name, tmp_path):
    res = CliRunner().invoke(cli, [name, "--help"], prog_name="kto-build")
    assert res.exit_code == 0 and "Usage: kto-build " + name in res.output, res.output
    for flag in ("--target", "--vars", "--project-dir"):
        assert flag in res.output, f"{name} --help does not list {flag}"
    needs_arg = [p for p in cli.get_command(click.Context(cli), name).params
                 if isinstance(p, click.Argument) and p.required]
    parse([name, *(["X"] * len(needs_arg)), "-t", "prod", "--vars", "{a: 1}", "--project-dir", str(tmp_path)])


def test_the_parser_catches_a_wrong_flag():
    with pytest.raises(click.UsageError, match=r"No such option.*--selekt"):
        parse(["run", "--selekt", "x"])
    with pytest.raises(click.UsageError, match=r"No such command.*rnu"):
        parse(["rnu"])
