"""The response log of an annotation node: one row per (record, annotator, question) change.

``AnnotationNode`` mixes ``ResponseLog`` in: the methods below read and append
to ``<node>`` and its view ``<node>_latest``, and nothing here ever deletes a
row. A changed or discarded answer adds a row; the earlier one stays.
"""

from __future__ import annotations

from datetime import datetime

from ...errors import KtoBuildError
from ...sql import quote
from ...state import SCHEMA, utcnow
from .push import ensure_push_log

STATUSES = ("submitted", "draft", "discarded")
LOG_COLUMNS = ("record_id", "question", "annotator_id", "annotator", "value", "status",
               "response_created_at", "response_updated_at", "pulled_at", "backend")
LOG_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    record_id VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    annotator_id VARCHAR NOT NULL,
    annotator VARCHAR,
    value VARCHAR,
    status VARCHAR NOT NULL,
    response_created_at TIMESTAMP,
    response_updated_at TIMESTAMP,
    pulled_at TIMESTAMP NOT NULL,
    backend VARCHAR NOT NULL
)"""
LATEST_DDL = """CREATE OR REPLACE VIEW {view} AS
SELECT * FROM {table}
QUALIFY row_number() OVER (PARTITION BY record_id, annotator_id, question
                           ORDER BY pulled_at DESC, response_updated_at DESC NULLS LAST) = 1"""


class ResponseLog:
    """Log reads and writes of an annotation node (``name``, ``records``, ``question``, ``labels``, ...)."""

    name: str
    records: str
    question: str
    labels: list[str]
    min_submitted: int

    @property
    def latest_view(self) -> str:
        return f"{self.name}_latest"

    def ensure_tables(self, con) -> None:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        con.execute(LOG_DDL.format(table=quote(self.name)))
        con.execute(LATEST_DDL.format(view=quote(self.latest_view), table=quote(self.name)))
        ensure_push_log(con)

    def log_version(self, con) -> tuple[int, str | None]:
        n, newest = con.execute(f"SELECT count(*), max(pulled_at) FROM {quote(self.name)}").fetchone()
        return int(n), newest.isoformat() if newest else None

    def latest_rows(self, con) -> dict[tuple, tuple]:
        """(record_id, annotator_id, question) -> (value, status, response_updated_at, response_created_at)."""
        rows = con.execute(f"SELECT record_id, annotator_id, question, value, status, response_updated_at, "
                           f"response_created_at FROM {quote(self.latest_view)}").fetchall()
        return {(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in rows}

    def append(self, con, rows: list[dict]) -> int:
        """Append log rows (dicts keyed by LOG_COLUMNS) in one statement."""
        if not rows:
            return 0
        types = {"response_created_at": "TIMESTAMP[]", "response_updated_at": "TIMESTAMP[]",
                 "pulled_at": "TIMESTAMP[]"}
        selects = ", ".join(f"unnest(?::{types.get(c, 'VARCHAR[]')}) AS {c}" for c in LOG_COLUMNS)
        params = [[r.get(c) for r in rows] for c in LOG_COLUMNS]
        con.execute(f"INSERT INTO {quote(self.name)} ({', '.join(LOG_COLUMNS)}) SELECT * FROM (SELECT {selects})",
                    params)
        return len(rows)

    def diff(self, con, fetched: list[dict], backend: str) -> list[dict]:
        """The fetched responses that differ from the log's latest row for their key."""
        latest = self.latest_rows(con)
        now = utcnow()
        out = []
        seen = set()
        for r in fetched:
            q = r.get("question") or self.question
            key = (r["record_id"], r["annotator_id"], q)
            if key in seen:
                continue
            seen.add(key)
            prev = latest.get(key)
            # a row per change of value or status; a re-save of the same answer is not a change
            if prev is not None and (prev[0], prev[1]) == (r["value"], r["status"]):
                continue
            out.append({**r, "question": q, "pulled_at": now, "backend": backend})
        return out

    def pending(self, con, annotator_id: str | None = None) -> list[str]:
        """Record ids still needing answers: fewer than min_submitted submitted answers,
        and (for an annotator) none of theirs yet, submitted or discarded."""
        mine = ""
        params: list = [self.question, self.min_submitted]
        if annotator_id is not None:
            mine = (f"AND CAST(r.id AS VARCHAR) NOT IN (SELECT record_id FROM {quote(self.latest_view)} "
                    "WHERE annotator_id = ? AND question = ? AND status IN ('submitted', 'discarded'))")
            params = [self.question, self.min_submitted, annotator_id, self.question]
        rows = con.execute(
            f"SELECT CAST(r.id AS VARCHAR) FROM {quote(self.records)} r LEFT JOIN ("
            f"  SELECT record_id, count(*) AS n FROM {quote(self.latest_view)} "
            "   WHERE question = ? AND status = 'submitted' GROUP BY record_id) s "
            f"ON s.record_id = CAST(r.id AS VARCHAR) WHERE coalesce(s.n, 0) < ? {mine} ORDER BY 1",
            params).fetchall()
        return [r[0] for r in rows]

    def answer_row(self, con, record_id: str, annotator: str, value: str | None, status: str,
                   now: datetime | None = None) -> dict | None:
        """The log row for one local answer, or None when it repeats the latest row."""
        annotator = annotator.strip()
        annotator_id = annotator.lower()
        now = now or utcnow()
        prev = con.execute(f"SELECT value, status, response_created_at FROM {quote(self.latest_view)} "
                           "WHERE record_id = ? AND annotator_id = ? AND question = ?",
                           [record_id, annotator_id, self.question]).fetchone()
        if prev is not None and (prev[0], prev[1]) == (value, status):
            return None
        return {"record_id": record_id, "question": self.question, "annotator_id": annotator_id,
                "annotator": annotator, "value": value, "status": status,
                "response_created_at": prev[2] if prev else now, "response_updated_at": now, "pulled_at": now,
                "backend": "local"}

    def check_answer(self, record_id: str, annotator: str, value, status: str, known: set[str],
                     where: tuple[str | None, int | None] = (None, None)) -> None:
        if not annotator or not str(annotator).strip():
            raise KtoBuildError("an answer needs an annotator name", *where)
        if status not in STATUSES:
            raise KtoBuildError(f"status {status!r} is not one of {', '.join(STATUSES)}", *where)
        if record_id not in known:
            raise KtoBuildError(f"record_id {record_id!r} is not in '{self.records}'", *where)
        if status != "discarded" and value not in self.labels:
            raise KtoBuildError(f"value {value!r} is not a label of '{self.name}'", *where,
                                hint="labels: " + ", ".join(self.labels))

    def record_ids(self, con) -> set[str]:
        return {r[0] for r in con.execute(f"SELECT CAST(id AS VARCHAR) FROM {quote(self.records)}").fetchall()}
