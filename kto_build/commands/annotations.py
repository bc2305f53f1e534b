"""``kto-build annotate`` (the built-in local annotator) and ``kto-build status``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import friendly, load_project, project_options


@click.command()
@click.argument("node", required=False)
@click.option("--port", "-p", default=8765, show_default=True, help="Port to serve on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on, e.g. 0.0.0.0 for your network (no login: trusted networks only).")
@click.option("--answers", "answers_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Import answers from a jsonl file (record_id, annotator, value[, status]) instead of serving.")
@click.option("--export-pending", "export_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the records still needing answers to a jsonl file, for rating offline.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@project_options
@click.pass_obj
@friendly
def annotate(obj, target, vars_, node, port, host, answers_file, export_file, no_browser):
    """Rate records of a local annotation node in a web page (on 127.0.0.1 unless --host).

    Each answer is its own short write to the DuckDB file, so 'kto-build run'
    can run between answers (it waits up to 5 s for an answer being written).
    """
    from ..services.annotations import export_pending, import_answers, pick_local_node

    project = load_project(obj)
    n = pick_local_node(project, node)
    if answers_file is not None and export_file is not None:
        raise click.UsageError("use --answers or --export-pending, not both")
    if answers_file is not None:
        out = import_answers(project, n, answers_file)
        click.echo(f"{n.name}: read {out['lines']} answers from {answers_file}: {out['appended']} added to the log, "
                   f"{out['unchanged']} unchanged")
        return
    if export_file is not None:
        count = export_pending(project, n, export_file)
        click.echo(f"{n.name}: wrote {count} pending records to {export_file} "
                   f"(fill in 'annotator' and 'value', then: kto-build annotate {n.name} --answers FILE)")
        return
    from ..annotate_server import serve

    serve(project, n, port=port, host=host, open_browser=not no_browser,
          ready=lambda url: click.echo(f"Annotating {n.name} at {url} (Ctrl+C to stop)"))


@click.command()
@click.argument("nodes", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@project_options
@click.pass_obj
@friendly
def status(obj, target, vars_, nodes, as_json):
    """Annotation progress: records pushed, records with enough answers, answers per annotator."""
    from ..services.annotations import status as annotation_status

    rows = annotation_status(load_project(obj), list(nodes) or None)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no annotation nodes")
    for d in rows:
        click.echo(f"{d['node']} ({d['backend']})")
        if not d["built"]:
            click.echo("  not built yet (kto-build run)")
            continue

        def show(v):
            return "-" if v is None else v

        if d["backend"] == "argilla":
            click.echo(f"  records pushed:   {show(d['pushed'])} of {show(d['records'])}")
        else:
            click.echo(f"  records:          {show(d['records'])}")
        click.echo(f"  completed:        {show(d['completed'])} (>= {d['min_submitted']} submitted answers)")
        click.echo(f"  answers:          {d['answers']} submitted, {d['log_rows']} log rows")
        for who, counts in d["annotators"].items():
            parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            click.echo(f"    {who}: {parts}")
        if d["backend"] == "argilla":
            click.echo(f"  last pull:        {show(d['last_pull_at'])}")
        click.echo(f"  last answer:      {show(d['last_answer_at'])}")


COMMANDS = [annotate, status]
