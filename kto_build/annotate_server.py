"""The built-in local annotator: a small web page on 127.0.0.1 (stdlib http.server).

A person enters a name and rates the pending records of one annotation node
(prompt, completion, one button per label, skip). Every answer is appended to
the node's response log in its own short write transaction: the DuckDB file
is opened, written and closed per answer, so ``kto-build run`` (which also
opens the file per node or batch) can run while the page is open. If the file
is busy for more than 5 s the answer is refused with 503 and the page keeps it
for a retry.

Endpoints: ``GET /`` (the page), ``GET /static/<file>``, ``GET /api/info``,
``GET /api/next?annotator=NAME`` (records nobody-yet-enough and not this person
first; the ones this person skipped come back at the end),
``GET /api/previous?annotator=NAME&before=RECORD_ID`` (the record this person
answered before RECORD_ID, or the last one: undo / go back, answering again
adds a newer row that replaces it), ``POST /api/answer`` with JSON
``{record_id, annotator, value, status}`` (status ``submitted`` or ``discarded``
for a skip). A record carries ``suggestion`` (value, score, agent = the judge model,
judge) when a judge node answers the question (``suggestions_from``): the page
shows it pre-selected and marked "model suggestion"; only a person's click or
key press is an answer, a suggestion alone writes nothing. Metadata columns
reach the page only with ``metadata_visible: true`` on the annotation (raters
do not see e.g. which model wrote a completion).
The server is single-threaded: requests are handled one at a time, which is
also what keeps the log's writes in order.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

from .errors import KtoBuildError
from .sql import quote

if TYPE_CHECKING:
    from .nodes.annotation import AnnotationNode
    from .project import Project

STATIC = Path(__file__).parent / "static"
MAX_BODY = 64 * 1024


class Annotator:
    """The page's API on top of the DuckDB file; one short connection per call."""

    def __init__(self, project: Project, node: AnnotationNode):
        self.project, self.node = project, node
        self.db = project.database()
        if not self.db.exists():
            raise KtoBuildError(f"{self.db.display} does not exist yet", hint="run 'kto-build run' first")
        with self.db.connect() as con:
            cols = node.record_columns(con)  # fails, writing nothing, if the records are not built
            self.meta = node.metadata_columns(cols)
            con.execute("BEGIN TRANSACTION")
            node.ensure_tables(con)
            con.execute("COMMIT")

    def info(self) -> dict:
        n = self.node
        return {"node": n.name, "question": n.question, "title": n.title or n.question, "labels": n.labels,
                "guidelines": n.guidelines, "min_submitted": n.min_submitted, "project": self.project.name}

    def _progress(self, con, annotator_id: str | None) -> dict:
        n = self.node
        total = con.execute(f"SELECT count(*) FROM {quote(n.records)}").fetchone()[0]
        pending_all = len(n.pending(con))
        out = {"total": total, "completed": total - pending_all, "pending_for_me": None, "mine": 0, "skipped": 0}
        if annotator_id:
            out["pending_for_me"] = len(n.pending(con, annotator_id))
            out["skipped"] = len(self._skipped(con, annotator_id))
            out["mine"] = con.execute(
                f"SELECT count(*) FROM {quote(n.latest_view)} WHERE annotator_id = ? AND question = ? "
                "AND status = 'submitted'", [annotator_id, n.question]).fetchone()[0]
        return out

    def _skipped(self, con, annotator_id: str) -> list[str]:
        """Records this person skipped that still need answers, the earliest skip first."""
        n = self.node
        still = set(n.pending(con))
        rows = con.execute(f"SELECT record_id FROM {quote(n.latest_view)} WHERE annotator_id = ? AND question = ? "
                           "AND status = 'discarded' ORDER BY response_updated_at, record_id",
                           [annotator_id, n.question]).fetchall()
        return [r[0] for r in rows if r[0] in still]

    def _record(self, con, record_id: str, annotator_id: str | None = None) -> dict:
        n = self.node
        meta = self.meta if getattr(n, "metadata_visible", False) else []
        cols = ["id", "prompt", "completion", *meta]
        row = con.execute(f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(n.records)} "
                          "WHERE CAST(id AS VARCHAR) = ?", [record_id]).fetchone()
        out = {"id": str(row[0]), "prompt": row[1], "completion": row[2],
               "metadata": {m: (None if v is None else str(v)) for m, v in zip(meta, row[3:], strict=True)},
               "mine": None}
        if annotator_id:
            mine = con.execute(f"SELECT value, status FROM {quote(n.latest_view)} WHERE record_id = ? "
                               "AND annotator_id = ? AND question = ?",
                               [record_id, annotator_id, n.question]).fetchone()
            out["mine"] = {"value": mine[0], "status": mine[1]} if mine else None
        out["suggestion"] = self._suggestion(con, record_id)
        return out

    def _suggestion(self, con, record_id: str) -> dict | None:
        """The judge verdict shown pre-selected as a model suggestion (nodes/annotation/suggestions.py);
        only the person's click is logged."""
        if not self.node.suggestions_from:
            return None
        from .nodes.annotation.suggestions import chosen

        s = chosen(con, self.node, [record_id]).get(record_id)
        return s.as_json() if s else None

    def next(self, annotator: str) -> dict:
        annotator_id = annotator.strip().lower() or None
        with self.db.connect(read_only=True) as con:
            record = None
            if annotator_id:
                ids = self.node.pending(con, annotator_id) or self._skipped(con, annotator_id)
                record = self._record(con, ids[0], annotator_id) if ids else None
            return {"record": record, "progress": self._progress(con, annotator_id)}

    def previous(self, annotator: str, before: str | None) -> dict:
        """The record this person answered (or skipped) just before ``before``, newest first."""
        annotator_id = annotator.strip().lower() or None
        n = self.node
        with self.db.connect(read_only=True) as con:
            record = None
            if annotator_id:
                ids = [r[0] for r in con.execute(
                    f"SELECT record_id FROM {quote(n.latest_view)} WHERE annotator_id = ? AND question = ? "
                    "ORDER BY response_updated_at DESC, record_id DESC", [annotator_id, n.question]).fetchall()]
                if before in ids:
                    ids = ids[ids.index(before) + 1:]
                record = self._record(con, ids[0], annotator_id) if ids else None
            return {"record": record, "progress": self._progress(con, annotator_id)}

    def answer(self, body: dict) -> dict:
        n = self.node
        record_id = str(body.get("record_id") or "")
        annotator = str(body.get("annotator") or "").strip()
        status = body.get("status") or "submitted"
        value = body.get("value")
        value = None if value is None or status == "discarded" else str(value)
        with self.db.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                n.check_answer(record_id, annotator, value, status, {record_id} & n.record_ids(con))
                row = n.answer_row(con, record_id, annotator, value, status)
                if row is not None:
                    n.append(con, [row])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        out = self.next(annotator)
        out["saved"] = row is not None
        return out


class AnnotateHandler(BaseHTTPRequestHandler):
    """The page's HTTP side; ``make_handler`` binds it to one ``Annotator``."""

    server_version = "kto-build-annotate"
    api: Annotator

    def log_message(self, format, *args):  # noqa: A002 - quiet: the terminal shows the URL only
        return

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False, default=str).encode(), "application/json")

    def _error(self, exc: KtoBuildError) -> None:
        busy = "another process has it open" in exc.message
        self._json(HTTPStatus.SERVICE_UNAVAILABLE if busy else HTTPStatus.BAD_REQUEST,
                   {"error": exc.one_line(), "busy": busy})

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        try:
            if url.path in ("/", "/index.html"):
                return self._file("annotate.html")
            if url.path.startswith("/static/"):
                return self._file(url.path[len("/static/"):])
            if url.path == "/api/info":
                return self._json(HTTPStatus.OK, self.api.info())
            if url.path == "/api/next":
                return self._json(HTTPStatus.OK, self.api.next((q.get("annotator") or [""])[0]))
            if url.path == "/api/previous":
                return self._json(HTTPStatus.OK, self.api.previous((q.get("annotator") or [""])[0],
                                                                   (q.get("before") or [None])[0]))
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        except KtoBuildError as exc:
            self._error(exc)

    def do_POST(self):
        if urlparse(self.path).path != "/api/answer":
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": f"not JSON: {exc}"})
        try:
            self._json(HTTPStatus.OK, self.api.answer(body))
        except KtoBuildError as exc:
            self._error(exc)

    def _file(self, name: str) -> None:
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        self._send(HTTPStatus.OK, path.read_bytes(), ctype)


def make_handler(api: Annotator) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (AnnotateHandler,), {"api": api})


def make_server(project: Project, node: AnnotationNode, port: int = 0, host: str = "127.0.0.1") -> HTTPServer:
    api = Annotator(project, node)
    try:
        return HTTPServer((host, port), make_handler(api))
    except OSError as exc:
        raise KtoBuildError(f"cannot listen on {host}:{port}: {exc.strerror}",
                            hint="pick another --port (0: any free port) or --host") from None


def serve(project: Project, node: AnnotationNode, port: int = 8765, open_browser: bool = True,
          ready: Callable[[str], None] | None = None, host: str = "127.0.0.1") -> None:
    httpd = make_server(project, node, port, host)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{httpd.server_address[1]}/"
    if ready:
        ready(url)
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
