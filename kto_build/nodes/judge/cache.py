"""The judgement cache: ``_kto_build.judgements``, its keys, its rows.

A judgement is keyed by its content: ``judgement_id = md5(prompt, completion,
template fingerprint, judge model fingerprint)``, where the template
fingerprint hashes the template text, the annotation's question and labels and
the number of log-probabilities asked for. Every judgement ever made stays in
the cache (a rebuild never drops it): a changed template or judge model judges
under new keys, and switching back finds the old verdicts. Verdicts with status
``ok`` or ``unparsed`` are kept; ``failed`` ones are asked again on the next run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...state import SCHEMA, utcnow
from ..generation.cache import CacheTable
from .verdict import answer_position, rationale_of, read_verdict

if TYPE_CHECKING:
    from datetime import datetime

    from ..generation.calls import CallRequest, CallResult
    from ..generation.settings import ModelEntry

CACHE_TABLE = "judgements"
CACHE = f"{SCHEMA}.{CACHE_TABLE}"
KEPT = ("ok", "unparsed")  # verdicts a rerun does not ask for again


def _sql(sql_type: str) -> dict:
    return {"sql": sql_type}


@dataclass
class JudgementRow:
    """One row of the cache table."""

    judgement_id: str = field(metadata=_sql("VARCHAR PRIMARY KEY"))
    judge: str | None = field(metadata=_sql("VARCHAR"))
    record_id: str | None = field(metadata=_sql("VARCHAR"))
    prompt: str | None = field(metadata=_sql("VARCHAR"))
    completion: str | None = field(metadata=_sql("VARCHAR"))
    judge_model: str | None = field(metadata=_sql("VARCHAR"))
    model_fingerprint: str | None = field(metadata=_sql("VARCHAR"))
    template_fingerprint: str | None = field(metadata=_sql("VARCHAR"))
    label: str | None = field(metadata=_sql("VARCHAR"))
    score: float | None = field(metadata=_sql("DOUBLE"))
    rationale: str | None = field(metadata=_sql("VARCHAR"))
    raw: str | None = field(metadata=_sql("VARCHAR"))
    logprobs: str | None = field(metadata=_sql("JSON"))
    status: str | None = field(metadata=_sql("VARCHAR"))
    error: str | None = field(metadata=_sql("VARCHAR"))
    input_tokens: int | None = field(metadata=_sql("INTEGER"))
    output_tokens: int | None = field(metadata=_sql("INTEGER"))
    latency_ms: float | None = field(metadata=_sql("DOUBLE"))
    created_at: datetime | None = field(metadata=_sql("TIMESTAMP"))
    worker: str | None = field(metadata=_sql("VARCHAR"))

    def values(self) -> tuple:
        return tuple(getattr(self, n) for n in NAMES)


TABLE = CacheTable(CACHE_TABLE, JudgementRow)
COLUMNS = TABLE.columns
NAMES = TABLE.names
CACHE_DDL = TABLE.ddl
ensure_cache = TABLE.ensure
#: the judge node's table: the contract's columns, in this order
TABLE_COLUMNS = ("record_id", "judge_model", "label", "score", "rationale", "raw", "status", "error", "created_at",
                 "worker")


def judgement_id(prompt: str, completion: str, template_fingerprint: str, model_fingerprint: str) -> str:
    key = "\x1f".join((prompt, completion, template_fingerprint, model_fingerprint))
    return hashlib.md5(key.encode("utf-8")).hexdigest()  # noqa: S324 - a cache key, not security


@dataclass
class Verdict:
    """One row a judge's table holds: a record and a judge model, and the judgement that answers it."""

    judgement_id: str
    record_id: str
    prompt: str
    completion: str
    model: ModelEntry


def kept(con, ids: list[str]) -> set[str]:
    """Those of ``ids`` the cache holds with a verdict (ok or unparsed)."""
    has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                      [SCHEMA, CACHE_TABLE]).fetchone()[0]
    if not has or not ids:
        return set()
    con.execute("CREATE OR REPLACE TEMP TABLE _kto_judge_ids (id VARCHAR)")
    try:
        con.executemany("INSERT INTO _kto_judge_ids VALUES (?)", [(i,) for i in sorted(set(ids))])
        return {r[0] for r in con.execute(
            f"SELECT c.judgement_id FROM {CACHE} c JOIN _kto_judge_ids k ON k.id = c.judgement_id "
            f"WHERE c.status IN {KEPT}").fetchall()}
    finally:
        con.execute("DROP TABLE IF EXISTS _kto_judge_ids")


class JudgementSink:
    """How a judge's call results become cache rows (verdict read here), and how a batch is committed."""

    def __init__(self, judge: str, labels: list[str], template_fingerprint: str, work: list[Verdict]):
        self.judge, self.labels, self.template_fingerprint = judge, labels, template_fingerprint
        self.work = {w.judgement_id: w for w in work}

    def to_row(self, request: CallRequest, result: CallResult) -> JudgementRow:
        w, m = self.work[request.key], request.model
        label = score = rationale = positions = None
        status, error = result.status, result.error
        if status == "ok":
            raw = result.raw if isinstance(result.raw, dict) else {}
            per_generation = raw.get("logprobs") or []
            positions = per_generation[0] if per_generation else None
            label, score, status = read_verdict(result.text, positions, self.labels)
            rationale = rationale_of(result.text, label)
            if status == "unparsed":
                error = "the answer names none (or more than one) of the labels: " + ", ".join(self.labels)
        return JudgementRow(
            judgement_id=w.judgement_id, judge=self.judge, record_id=w.record_id, prompt=w.prompt,
            completion=w.completion, judge_model=m.name, model_fingerprint=m.fingerprint,
            template_fingerprint=self.template_fingerprint, label=label, score=score, rationale=rationale,
            raw=result.text, logprobs=json.dumps(answer_position(positions)) if positions else None, status=status,
            error=error,
            input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            latency_ms=round(result.latency_ms, 3), created_at=utcnow(), worker=result.worker)

    def commit(self, con, rows: list[JudgementRow]) -> None:
        """Insert (or replace: a retried failure) ``rows`` in the caller's transaction."""
        TABLE.insert(con, rows)
