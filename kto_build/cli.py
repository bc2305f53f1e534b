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


def _set_project_dir(ctx, _param, value):
    if value is not None:
        ctx.ensure_object(dict)["project_dir"] = value


def project_options(fn):
    """--target, --vars and --project-dir after every command name too, as dbt users type them."""
    fn = click.option("--project-dir", default=None, expose_value=False, callback=_set_project_dir,
                      type=click.Path(file_okay=False), help="Folder holding project.yml (default: .).")(fn)
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


GITIGNORE = "# kto-build: the database, manifests, exports and caches it builds\ntarget/\n.venv/\n__pycache__/\n"


def example_dir() -> Path:
    """The example project: package data in an installed wheel, the repository root in a checkout."""
    shipped = Path(__file__).parent / "templates" / "example"
    if (shipped / "project.yml").exists():
        return shipped
    return Path(__file__).resolve().parent.parent


@cli.command()
@click.argument("directory", default=None, required=False, type=click.Path(file_okay=False))
@project_options
@click.pass_obj
@friendly
def init(obj, target, vars_, directory):
    """Create a new project from the example (haiku prompts) in DIRECTORY (default: --project-dir or .)."""
    dest = Path(directory or obj.get("project_dir") or ".")
    example = example_dir()
    if not (example / "project.yml").exists():
        raise KtoBuildError("the example project is not installed with this copy of kto-build "
                            "(kto_build/templates/example is missing: reinstall kto-build)")
    if dest.exists() and not dest.is_dir():
        raise KtoBuildError(f"{dest} is a file; init needs a new or empty folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise KtoBuildError(f"{dest} is not empty; init makes new projects only",
                            hint="choose a new folder, e.g. 'kto-build init my_project'")
    dest.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        src = example / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    click.echo(f"Created a kto-build project in {dest}. Next: cd {dest} && kto-build run")


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
