"""Serve a built site folder over HTTP on 127.0.0.1 (``kto-build docs --serve``)."""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on the terminal
        pass


def make_server(folder: str | Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    handler = functools.partial(_Quiet, directory=str(folder))
    return ThreadingHTTPServer((host, port), handler)


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8080, ready=None) -> None:
    httpd = make_server(folder, host, port)
    try:
        if ready is not None:
            ready(f"http://{host}:{httpd.server_address[1]}/")
        httpd.serve_forever()
    finally:
        httpd.server_close()
