"""``kto-build docs``: the static lineage and statistics site."""

from __future__ import annotations

import click

from ..errors import KtoBuildError
from . import internals
from .common import load_project, project_command


@project_command("docs")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Folder to write the site to (default: target/docs beside the database).")
@click.option("--serve", is_flag=True, help="Serve the site over HTTP after building it.")
@click.option("--port", "-p", default=8080, show_default=True, help="Port for --serve (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --serve.")
def docs(obj, out, serve, port, host):
    """Write a static site: the DAG, node pages, plots of generations, answers and exports."""
    res = internals.build_site(load_project(obj), out)
    click.echo(f"Wrote {res['pages']} pages and {res['charts']} charts to {res['out']} in {res['seconds']:.2f}s "
               f"(open {res['out']}/index.html)")
    if serve:
        try:
            internals.serve_site(res["out"], host, port,
                                 ready=lambda url: click.echo(f"Serving {res['out']} at {url} (Ctrl+C to stop)"))
        except KeyboardInterrupt:
            click.echo("stopped")
        except OSError as exc:
            raise KtoBuildError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None

