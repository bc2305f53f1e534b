"""The dbt-style commands: ``run``, ``plan``, ``ls``, ``compile``, ``show``, ``lineage``, ``init``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import KtoBuildError
from .common import (
    EchoReporter,
    echo_failures,
    exclude_opt,
    format_table,
    load_project,
    project_command,
    project_dir,
    select_opt,
)

EXAMPLE_FILES = ("project.yml", "sources.yml", "models", "data")
GITIGNORE = "# kto-build: the database, manifests, exports and caches it builds\ntarget/\n.venv/\n__pycache__/\n"


def _json(data) -> None:
    import json

    click.echo(json.dumps(data, indent=2))


@project_command()
@select_opt
@exclude_opt
@click.option("--full-refresh", is_flag=True, help="Rebuild models and exports (never drops generations or answers).")
@click.option("--offline", is_flag=True, help="Skip nodes that talk to a server; build from what is stored.")
def run(obj, select, exclude, full_refresh, offline):
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
    echo_failures(rr.nodes)
    sys.exit(0 if rr.ok else 1)


@project_command()
@select_opt
@exclude_opt
@click.option("--full-refresh", is_flag=True)
@click.option("--offline", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(obj, select, exclude, full_refresh, offline, as_json):
    """Show what a run would rebuild and why; runs nothing."""
    p = load_project(obj).plan(select, exclude, full_refresh=full_refresh, offline=offline)
    if as_json:
        _json(p.as_dicts())
        return
    todo = p.to_build()
    width = max((len(i.name) for i in p.items), default=4)
    for i in p.items:
        mark = click.style("build", fg="yellow") if i.action == "build" else click.style("skip ", fg="green")
        detail = f"  [{i.detail}]" if i.detail else ""
        click.echo(f"{mark}  {i.kind:<10} {i.name:<{width}}  {i.reason}{detail}")
    click.echo(f"{len(todo)} of {len(p.items)} nodes would rebuild (target {p.target}).")


@project_command("ls")
@select_opt
@exclude_opt
@click.option("--json", "as_json", is_flag=True)
def ls_cmd(obj, select, exclude, as_json):
    """List nodes with kind, materialization and status."""
    rows = load_project(obj).ls(select, exclude)
    if as_json:
        _json(rows)
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['kind']:<10} {r['materialized']:<6} {r['status']}")


@project_command("compile")
@click.argument("name")
def compile_cmd(obj, name):
    """Print the SQL a model runs."""
    click.echo(load_project(obj).compile(name))


@project_command()
@click.argument("name")
@click.option("--limit", "-n", default=10, show_default=True)
def show(obj, name, limit):
    """Preview a node's rows as a table."""
    columns, rows = load_project(obj).show(name, limit)
    click.echo(format_table(columns, rows))


@project_command()
@click.argument("name")
@click.option("--column", "-c", default=None, help="Trace one column to its source columns.")
@click.option("--json", "as_json", is_flag=True)
def lineage(obj, name, column, as_json):
    """Upstream and downstream nodes; with --column, column-level lineage."""
    out = load_project(obj).lineage(name, column)
    if as_json:
        _json(out)
        return
    click.echo(f"{out['node']}")
    click.echo("  upstream:   " + (", ".join(out["upstream"]) or "(none)"))
    click.echo("  downstream: " + (", ".join(out["downstream"]) or "(none)"))
    if column:
        click.echo(f"  {name}.{column} comes from:")
        for c in out["columns"]:
            click.echo(f"    {c['table']}.{c['column']}")


def example_dir() -> Path:
    """The example project: package data in an installed wheel, the repository root in a checkout."""
    shipped = Path(__file__).resolve().parent.parent / "templates" / "example"
    if (shipped / "project.yml").exists():
        return shipped
    return Path(__file__).resolve().parent.parent.parent


@project_command()
@click.argument("directory", default=None, required=False, type=click.Path(file_okay=False))
def init(obj, directory):
    """Create a new project from the example (haiku prompts) in DIRECTORY (default: --project-dir or .)."""
    import shutil

    dest = Path(directory or project_dir(obj))
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
