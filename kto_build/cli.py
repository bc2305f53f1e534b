"""The ``kto-build`` command line: parse arguments, call Project, print.

Stays light: importing this module imports click, yaml, duckdb and sqlglot,
never distilabel, argilla or datasets. Feature commands live in
``kto_build/commands/*.py`` (each exposes ``COMMANDS``) and are added here.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import shutil
import sys
from pathlib import Path

import click

from . import __version__
from .errors import KtoBuildError

EXAMPLE_FILES = ("project.yml", "sources.yml", "models", "data")


def load_project(ctx_obj: dict):
    from .project import Project

    ctx = click.get_current_context()
    target = ctx.params.get("target") or ctx_obj["target"]
    variables = {**ctx_obj["vars"], **_parse_vars(ctx.params.get("vars_"))}
    return Project.load(ctx_obj["project_dir"], target=target, vars=variables)


def project_options(fn):
    """--target and --vars on every command too, as dbt users type them."""
    fn = click.option("--vars", "vars_", default=None, help="YAML mapping overriding project vars.")(fn)
    return click.option("--target", "-t", default=None, help="Target from project.yml 'targets'.")(fn)


def friendly(fn):
    """Turn KtoBuildError into one line on stderr and exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KtoBuildError as exc:
            from .redact import redact

            click.echo(f"error: {redact(exc.one_line())}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: finished batches and nodes are kept; rerun to resume", err=True)
            sys.exit(130)

    return wrapper


def _parse_vars(value: str | None) -> dict:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kto-build")
@click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder holding project.yml.")
@click.option("--target", "-t", default=None, help="Target from project.yml 'targets' (default: its 'target').")
@click.option("--vars", "vars_", default=None,
              help="YAML mapping overriding project vars, e.g. '{min_agreement: 0.6}'.")
@click.pass_context
def cli(ctx, project_dir, target, vars_):
    """Declarative builds for KTO / DPO preference datasets."""
    try:
        parsed = _parse_vars(vars_)
    except KtoBuildError as exc:
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(2)
    ctx.obj = {"project_dir": project_dir, "target": target, "vars": parsed}


select_opt = click.option("--select", "-s", multiple=True,
                          help="Nodes to include: name, +name, name+, tag:x, kind:model (repeatable).")
exclude_opt = click.option("--exclude", multiple=True, help="Nodes to leave out (same syntax as --select).")


class EchoReporter:
    """Prints one line per node, dbt style; progress bars through rich."""

    def __init__(self, total: int):
        self.total, self.i = total, 0

    def node_start(self, node, reason):
        self.i += 1
        click.echo(f"{self.i:>3} of {self.total} START {node.kind} {node.name} ({reason})")

    def node_end(self, r):
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
        from .progress import rich_progress

        return rich_progress(description, total)


@cli.command()
@select_opt
@exclude_opt
@click.option("--full-refresh", is_flag=True, help="Rebuild models and exports (never drops generations or answers).")
@click.option("--offline", is_flag=True, help="Skip nodes that talk to a server; build from what is stored.")
@project_options
@click.pass_obj
@friendly
def run(obj, target, vars_, select, exclude, full_refresh, offline):
    """Build what changed."""
    project = load_project(obj)
    total = len(project.graph.select(select, exclude))
    rr = project.run(select, exclude, full_refresh=full_refresh, offline=offline, reporter=EchoReporter(total))
    built, skipped, failed = rr.count("built"), rr.count("skipped"), rr.count("failed")
    line = f"Done in {rr.seconds:.2f}s: {built} built, {skipped} skipped, {failed} failed."
    calls_ok, calls_failed = rr.calls()
    if calls_ok or calls_failed:
        line += f" LLM calls: {calls_ok} ok, {calls_failed} failed."
    click.echo(click.style(line, fg="red" if failed else "green"))
    for n in rr.nodes:
        if n["status"] == "failed":
            click.echo(f"error: {n['name']}: {n['message']}", err=True)
    sys.exit(0 if rr.ok else 1)


@cli.command()
@select_opt
@exclude_opt
@click.option("--full-refresh", is_flag=True)
@click.option("--offline", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@project_options
@click.pass_obj
@friendly
def plan(obj, target, vars_, select, exclude, full_refresh, offline, as_json):
    """Show what a run would rebuild and why; runs nothing."""
    p = load_project(obj).plan(select, exclude, full_refresh=full_refresh, offline=offline)
    if as_json:
        click.echo(json.dumps(p.as_dicts(), indent=2))
        return
    todo = p.to_build()
    width = max((len(i.name) for i in p.items), default=4)
    for i in p.items:
        mark = click.style("build", fg="yellow") if i.action == "build" else click.style("skip ", fg="green")
        detail = f"  [{i.detail}]" if i.detail else ""
        click.echo(f"{mark}  {i.kind:<10} {i.name:<{width}}  {i.reason}{detail}")
    click.echo(f"{len(todo)} of {len(p.items)} nodes would rebuild (target {p.target}).")


@cli.command("ls")
@select_opt
@exclude_opt
@click.option("--json", "as_json", is_flag=True)
@project_options
@click.pass_obj
@friendly
def ls_cmd(obj, target, vars_, select, exclude, as_json):
    """List nodes with kind, materialization and status."""
    rows = load_project(obj).ls(select, exclude)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['kind']:<10} {r['materialized']:<6} {r['status']}")


@cli.command()
@click.argument("name")
@project_options
@click.pass_obj
@friendly
def compile(obj, target, vars_, name):  # noqa: A001 - the dbt command name
    """Print the SQL a model runs."""
    click.echo(load_project(obj).compile(name))


@cli.command()
@click.argument("name")
@click.option("--limit", "-n", default=10, show_default=True)
@project_options
@click.pass_obj
@friendly
def show(obj, target, vars_, name, limit):
    """Preview a node's rows as a table."""
    columns, rows = load_project(obj).show(name, limit)
    click.echo(format_table(columns, rows))


@cli.command()
@click.argument("name")
@click.option("--column", "-c", default=None, help="Trace one column to its source columns.")
@click.option("--json", "as_json", is_flag=True)
@project_options
@click.pass_obj
@friendly
def lineage(obj, target, vars_, name, column, as_json):
    """Upstream and downstream nodes; with --column, column-level lineage."""
    out = load_project(obj).lineage(name, column)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{out['node']}")
    click.echo("  upstream:   " + (", ".join(out["upstream"]) or "(none)"))
    click.echo("  downstream: " + (", ".join(out["downstream"]) or "(none)"))
    if column:
        click.echo(f"  {name}.{column} comes from:")
        for c in out["columns"]:
            click.echo(f"    {c['table']}.{c['column']}")


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@friendly
def init(directory):
    """Create a new project from the example (haiku prompts)."""
    dest = Path(directory)
    example = Path(__file__).parent / "example"
    if not example.is_dir():  # editable install: the repository root is the example
        example = Path(__file__).resolve().parent.parent
    if not (example / "project.yml").exists():
        raise KtoBuildError("the example project is not installed with this copy of kto-build "
                            "(install from a source checkout: pip install -e .)")
    if (dest / "project.yml").exists():
        raise KtoBuildError(f"{dest / 'project.yml'} exists already; init makes new projects only")
    dest.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        src = example / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / name)
    click.echo(f"Created a kto-build project in {dest}. Next: cd {dest} && kto-build run")


def format_table(columns: list[str], rows: list[tuple], max_width: int = 60) -> str:
    def cell(v):
        s = "NULL" if v is None else str(v).replace("\n", "\\n")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    out.append(line)
    out.append(f"{len(rows)} rows")
    return "\n".join(out)


def _add_feature_commands() -> None:
    from . import commands

    for mod in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)


_add_feature_commands()


def main():  # console-script entry point
    cli()


if __name__ == "__main__":
    main()
