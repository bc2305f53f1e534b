"""Run argilla-server 2.8 on 127.0.0.1 without Elasticsearch, for tests and benchmarks.

Runs inside the server's own venv (scripts/install-test-services.sh builds it
at .cache/argilla-server-venv):

    python launch.py --home DIR --redis-url redis://127.0.0.1:P/0 serve --port 6900
    python launch.py --home DIR --redis-url ... cli database migrate
    python launch.py --home DIR --redis-url ... cli database users create_default --api-key K --password P

Everything lives under DIR: the SQLite database, the server's home and its
TMPDIR (importing the app copies its web UI into a temp dir each time). The
search engine is scripts/argilla_server/inprocess_engine.py, registered as
``inprocess``. Dataset jobs that the stock server hands to an rq worker (the
record-status recompute after a distribution change) run inside the server
process instead, so the database and the in-process index stay consistent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def configure_env(home: Path, redis_url: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    os.environ.update({
        "ARGILLA_HOME_PATH": str(home),
        "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'argilla.db'}",
        "ARGILLA_SEARCH_ENGINE": "inprocess",
        "ARGILLA_REDIS_URL": redis_url,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "TMPDIR": str(home / "tmp"),
    })


def patch_jobs() -> None:
    """Run the dataset status job in the server's event loop instead of an rq worker."""
    from argilla_server.jobs import dataset_jobs

    job = dataset_jobs.update_dataset_records_status_job
    tasks = set()

    def delay(dataset_id, *args, **kwargs):
        task = asyncio.get_running_loop().create_task(job(dataset_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    job.delay = delay


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--redis-url", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, required=True)
    cli = sub.add_parser("cli")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    setup = sub.add_parser("setup", help="migrate, create the owner and annotators (server CLI, one process)")
    setup.add_argument("--owner-key", required=True)
    setup.add_argument("--annotator", action="append", default=[], metavar="NAME:API_KEY:WORKSPACE")
    ns = ap.parse_args(argv)

    configure_env(ns.home.resolve(), ns.redis_url)
    sys.path.insert(0, str(HERE))
    import inprocess_engine  # noqa: F401 - registers the 'inprocess' engine

    if ns.cmd == "cli":
        from argilla_server.cli import app

        sys.argv = ["argilla_server", *ns.args]
        app()
        return
    if ns.cmd == "setup":
        from argilla_server.cli import app

        runs = [["database", "migrate"],
                ["database", "users", "create_default", "--api-key", ns.owner_key, "--password", "owner-password"]]
        for spec in ns.annotator:
            name, key, workspace = spec.split(":")
            runs.append(["database", "users", "create", "--first-name", name, "--username", name,
                         "--role", "annotator", "--password", f"{name}-password", "--api-key", key,
                         "--workspace", workspace])
        for args in runs:
            app(args, standalone_mode=False)
        return

    patch_jobs()
    import uvicorn
    from argilla_server._app import app

    uvicorn.run(app, host="127.0.0.1", port=ns.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
