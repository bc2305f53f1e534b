"""``kto-build docs``: the static lineage and statistics site."""

from __future__ import annotations

import click

from ..cli import friendly, load_project, project_options


@click.command("docs")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Folder to write the site to (default: target/docs beside the database).")
@click.option("--serve", is_flag=True, help="Serve the site over HTTP after building it.")
@click.option("--port", "-p", default=8080, show_default=True, help="Port for --serve (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --serve.")
@project_options
@click.pass_obj
@friendly
def docs(obj, target, vars_, out, serve, port, host):
    """Write a static site: the DAG, node pages, plots of generations, answers and exports."""
    from ..docs import build_site

    project = load_project(obj)
    res = build_site(project, out)
    click.echo(f"Wrote {res['pages']} pages and {res['charts']} charts to {res['out']} in {res['seconds']:.2f}s "
               f"(open {res['out']}/index.html)")
    if serve:
        from ..docs.serve import serve as serve_site

        try:
            serve_site(res["out"], host, port,
                       ready=lambda url: click.echo(f"Serving {res['out']} at {url} (Ctrl+C to stop)"))
        except KeyboardInterrupt:
            click.echo("stopped")
        except OSError as exc:
            from ..errors import KtoBuildError

            raise KtoBuildError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


COMMANDS = [docs]
