"""``kto-build test`` (data tests on the stored tables) and ``kto-build export NAME``."""

from __future__ import annotations

import sys

import click

from ..cli import EchoReporter, exclude_opt, friendly, load_project, project_options, select_opt


@click.command("test")
@select_opt
@exclude_opt
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@project_options
@click.pass_obj
@friendly
def test_cmd(obj, target, vars_, select, exclude, as_json):
    """Run the data tests of models/*.yml on the stored tables."""
    from ..services.tests import run_tests

    results = run_tests(load_project(obj), select, exclude)
    if as_json:
        import json

        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            mark = {"pass": click.style("PASS", fg="green"), "warn": click.style("WARN", fg="yellow"),
                    "fail": click.style("FAIL", fg="red"), "error": click.style("ERROR", fg="red")}[r.status]
            click.echo(f"{mark} {r.name}" if r.status == "pass" else f"{mark} {r.describe()}")
        failed = sum(r.status in ("fail", "error") for r in results)
        warned = sum(r.status == "warn" for r in results)
        passed = sum(r.status == "pass" for r in results)
        line = f"Done: {passed} passed, {warned} warned, {failed} failed of {len(results)} tests."
        click.echo(click.style(line, fg="red" if failed else "green"))
    sys.exit(1 if any(r.status in ("fail", "error") for r in results) else 0)


@click.command("export")
@click.argument("names", nargs=-1, required=True)
@click.option("--offline", is_flag=True, help="Write the files, skip push_to_hub.")
@project_options
@click.pass_obj
@friendly
def export_cmd(obj, target, vars_, names, offline):
    """Write exports now, even if they are up to date (their model as stored)."""
    from ..errors import KtoBuildError

    project = load_project(obj)
    chosen = []
    for name in names:
        node = project.node(name)
        if node.kind != "export":
            exports = sorted(n for n, v in project.nodes.items() if v.kind == "export")
            raise KtoBuildError(f"'{node.name}' is a {node.kind}, not an export",
                                hint="exports: " + (", ".join(exports) or "none in project.yml"))
        chosen.append(node.name)
    rr = project.run(chosen, full_refresh=True, offline=offline, reporter=EchoReporter(len(chosen)))
    for n in rr.nodes:
        if n["status"] == "failed":
            click.echo(f"error: {n['name']}: {n['message']}", err=True)
        elif n["status"] == "skipped" and n.get("message"):
            click.echo(f"{n['name']}: {n['message']}")
    sys.exit(0 if rr.ok else 1)


COMMANDS = [test_cmd, export_cmd]
