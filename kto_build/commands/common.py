"""What every command shares: the project options, the error wrapper, loading the project, printing.

Every command is made by :func:`project_command`, so every command takes ``-t/--target``, ``--vars`` and
``--project-dir`` the same way, after the command name as dbt users type them, or before it on the group
(``kto-build --project-dir p run``). The options store into the click context object; a command's value wins
over the group's, and ``--vars`` mappings merge (the command's keys win).
"""

from __future__ import annotations

import functools
import shutil
import sys

import click

from ..errors import KtoBuildError

DEFAULT_PROJECT_DIR = "."


def parse_vars(value: str | None) -> dict:
    if not value:
        return {}
    import yaml

    try:
        data = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise KtoBuildError(f"--vars {value!r} is not valid YAML{where}: {problem}",
                            hint="write a mapping such as --vars '{min_agreement: 0.6}'") from None
    if not isinstance(data, dict):
        raise KtoBuildError(f"--vars {value!r} is not a mapping", hint="write --vars '{min_annotators: 3}'")
    return data


def fail(exc: KtoBuildError) -> None:
    """One line on stderr, exit 2: how every user error ends."""
    from ..redact import redact

    click.echo(f"error: {redact(exc.one_line())}", err=True)
    sys.exit(2)


def _store(key: str):
    def callback(ctx: click.Context, _param, value):
        if value is None:
            return
        obj = ctx.ensure_object(dict)
        if key == "vars":
            try:
                value = {**obj.get("vars", {}), **parse_vars(value)}
            except KtoBuildError as exc:
                fail(exc)
        obj[key] = value

    return callback


def project_options(fn):
    """``--project-dir``, ``--target/-t`` and ``--vars``: the same three options on the group and every command."""
    fn = click.option("--vars", "vars_", default=None, expose_value=False, callback=_store("vars"),
                      help="YAML mapping overriding project vars, e.g. '{min_agreement: 0.6}'.")(fn)
    fn = click.option("--target", "-t", default=None, expose_value=False, callback=_store("target"),
                      help="Target from project.yml 'targets' (default: its 'target').")(fn)
    return click.option("--project-dir", default=None, expose_value=False, callback=_store("project_dir"),
                        type=click.Path(file_okay=False), help="Folder holding project.yml (default: .).")(fn)


def friendly(fn):
    """Turn KtoBuildError into one line on stderr and exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KtoBuildError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted: finished batches and nodes are kept; rerun to resume", err=True)
            sys.exit(130)

    return wrapper


def project_command(name: str | None = None, **kwargs):
    """A ``kto-build`` command: the project options, the context object as first argument, one-line errors."""

    def decorate(fn):
        return click.command(name, **kwargs)(project_options(click.pass_obj(friendly(fn))))

    return decorate


select_opt = click.option("--select", "-s", multiple=True,
                          help="Nodes to include: name, +name, name+, tag:x, kind:model (repeatable).")
exclude_opt = click.option("--exclude", multiple=True, help="Nodes to leave out (same syntax as --select).")


def project_dir(obj: dict | None) -> str:
    return (obj or {}).get("project_dir") or DEFAULT_PROJECT_DIR


def load_project(obj: dict | None):
    """The project the options name: ``--project-dir``, ``--target`` and ``--vars``."""
    from ..project import Project

    obj = obj or {}
    return Project.load(project_dir(obj), target=obj.get("target"), vars=obj.get("vars") or {})


class EchoReporter:
    """Prints one line per node, dbt style; progress bars through rich."""

    def __init__(self, total: int):
        self.total, self.i = total, 0

    def node_start(self, node, reason):
        self.i += 1
        click.echo(f"{self.i:>3} of {self.total} START {node.kind} {node.name} ({reason})")

    def node_end(self, r):
        if r["status"] == "skipped":  # upstream failed: dbt's SKIP line, numbered like the others
            self.i += 1
            click.echo(click.style(f"{self.i:>3} of {self.total} SKIP {r['kind']} {r['name']} ({r['message']})",
                                   fg="yellow"))
            return
        status = {"built": click.style("OK", fg="green"), "failed": click.style("ERROR", fg="red")}.get(
            r["status"], r["status"])
        rows = f"{r['rows']} rows, " if r.get("rows") is not None else ""
        click.echo(f"      {status} {r['kind']} {r['name']} [{rows}{r['seconds']:.2f}s]")
        if r.get("message"):
            click.echo(f"      {r['message']}")
        for w in r.get("warnings", []):
            click.echo(click.style(f"      warning: {w}", fg="yellow"))

    def info(self, message):
        click.echo(f"      {message}")

    def warn(self, message):
        click.echo(click.style(f"      warning: {message}", fg="yellow"))

    def progress(self, description, total):
        from ..progress import rich_progress

        return rich_progress(description, total)


def echo_failures(nodes: list[dict]) -> None:
    for n in nodes:
        if n["status"] == "failed":
            click.echo(f"error: {n['name']}: {n['message']}", err=True)


def _cell(v) -> str:
    if isinstance(v, float):  # rounded, as a person reads it: 0.6667, 12.5, 3.0
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        text = f"{v:.4f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return "NULL" if v is None else str(v).replace("\n", "\\n")


def format_table(columns: list[str], rows: list[tuple], max_width: int = 60, width: int | None = None) -> str:
    """A text table no wider than the terminal (``width``): the widest columns are cut with '…'."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    texts = [[_cell(v) for v in r] for r in rows]
    widths = [min(max_width, max([len(c)] + [len(r[i]) for r in texts])) for i, c in enumerate(columns)]
    floor = 6
    while sum(widths) + 3 * len(widths) + 1 > width and max(widths, default=0) > floor:
        widest = widths.index(max(widths))
        widths[widest] -= 1

    def fit(text: str, w: int) -> str:
        return text.ljust(w) if len(text) <= w else text[: w - 1] + "…"

    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(fit(c, w) for c, w in zip(columns, widths, strict=True)) + " |", line]
    out += ["| " + " | ".join(fit(v, w) for v, w in zip(r, widths, strict=True)) + " |" for r in texts]
    out.append(line)
    out.append(f"{len(rows)} rows")
    return "\n".join(out)
