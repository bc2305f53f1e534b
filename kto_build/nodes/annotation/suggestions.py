"""Judge verdicts as suggestions for an annotation node's question.

An annotation node lists in ``suggestions_from`` the judge nodes that answer
its question. Their tables hold one verdict per (record, judge model); the
usable ones (``status = 'ok'``, a label that is one of the node's labels, a
record still in the node's records model) become *suggestions*: what people
see pre-selected, clearly marked as a model's, before they answer.

Argilla holds one suggestion per question per record, and so does the local
page, so one verdict per record is chosen. **The rule: the highest score wins;
a verdict without a score ranks below every verdict with one; ties go to the
judge model whose name sorts first, then to the judge node whose name sorts
first.** A score outside [0, 1] (Argilla's range for a suggestion score) is
sent as no score.

The suggestion log ``_kto_build.argilla_suggestions`` remembers, per Argilla
dataset, record and question, the suggestion last sent (value, score, agent,
sent_at). A push sends only the suggestions that differ from it, and writes it
in the same transaction as the push log's rows of that batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...sql import literal, quote
from ...state import SCHEMA, relations, utcnow
from .push import FIELDS, record_hash_sql

if TYPE_CHECKING:
    from .node import AnnotationNode

LOG_TABLE = f"{SCHEMA}.argilla_suggestions"
LOG_DDL = f"""CREATE TABLE IF NOT EXISTS {LOG_TABLE} (
    dataset_id VARCHAR NOT NULL,
    record_id VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    value VARCHAR,
    score DOUBLE,
    agent VARCHAR,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (dataset_id, record_id, question)
)"""


@dataclass(frozen=True)
class Suggestion:
    """A judge's verdict shown to people as a suggestion on one record."""

    record_id: str
    value: str
    score: float | None
    agent: str  # the judge model's name
    judge: str  # the judge node

    def as_json(self) -> dict:
        return {"value": self.value, "score": self.score, "agent": self.agent, "judge": self.judge}


def verdicts_sql(con, node: AnnotationNode) -> str | None:
    """One SELECT over the judge tables named in ``suggestions_from`` that exist (a judge not built yet
    suggests nothing): record_id, value, score, agent, judge, created_at; usable verdicts only."""
    rels = relations(con)
    parts = []
    for judge in getattr(node, "suggestions_from", ()) or ():
        if judge.lower() not in rels:
            continue
        parts.append(
            f"SELECT CAST(record_id AS VARCHAR) AS record_id, CAST(label AS VARCHAR) AS value, "
            f"CASE WHEN score BETWEEN 0 AND 1 THEN CAST(score AS DOUBLE) END AS score, "
            f"CAST(judge_model AS VARCHAR) AS agent, {literal(judge)} AS judge, created_at "
            f"FROM {quote(judge)} WHERE status = 'ok' AND label IS NOT NULL AND judge_model IS NOT NULL")
    return " UNION ALL ".join(parts) or None


def chosen(con, node: AnnotationNode, record_ids: list[str] | None = None) -> dict[str, Suggestion]:
    """record_id -> the suggestion shown for it (the rule in the module docstring); only records of the
    node's records model, only labels of its question."""
    union = verdicts_sql(con, node)
    if union is None:
        return {}
    where, params = "", [list(node.labels)]
    if record_ids is not None:
        where, params = "AND v.record_id IN (SELECT unnest(?::VARCHAR[]))", [*params, [str(r) for r in record_ids]]
    rows = con.execute(
        f"WITH v AS ({union}), "
        # one verdict per (judge node, judge model, record): the newest, should a table hold two
        "latest AS (SELECT * FROM v QUALIFY row_number() OVER (PARTITION BY judge, agent, record_id "
        "ORDER BY created_at DESC NULLS LAST) = 1) "
        "SELECT v.record_id, v.value, v.score, v.agent, v.judge FROM latest v "
        "WHERE v.value IN (SELECT unnest(?::VARCHAR[])) "
        f"AND v.record_id IN (SELECT CAST(id AS VARCHAR) FROM {quote(node.records)}) {where} "
        "QUALIFY row_number() OVER (PARTITION BY v.record_id "
        "ORDER BY v.score DESC NULLS LAST, v.agent, v.judge) = 1", params).fetchall()
    return {r[0]: Suggestion(*r) for r in rows}


# ------------------------------------------------------------ the log
def ensure_log(con) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(LOG_DDL)


def sent(con, dataset_id: str, question: str) -> dict[str, tuple]:
    """record_id -> (value, score, agent) last sent to this dataset for this question."""
    rows = con.execute(f"SELECT record_id, value, score, agent FROM {LOG_TABLE} WHERE dataset_id = ? "
                       "AND question = ?", [dataset_id, question]).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def changed(con, node: AnnotationNode, dataset_id: str) -> dict[str, Suggestion]:
    """The chosen suggestions that differ from what the log says was sent (new, or a changed verdict)."""
    before = sent(con, dataset_id, node.question)
    return {rid: s for rid, s in chosen(con, node).items()
            if before.get(rid) != (s.value, s.score, s.agent)}


def stale(con, node: AnnotationNode, dataset_id: str) -> list[str]:
    """Records the log says carry a suggestion that no usable verdict backs any more (the judge was removed,
    or its verdict is now unparsed or failed): their suggestion is withdrawn."""
    picks = chosen(con, node)
    return sorted(rid for rid in sent(con, dataset_id, node.question) if rid not in picks)


def forget(con, dataset_id: str, question: str, record_ids: list[str]) -> None:
    """Drop withdrawn suggestions from the log (the caller's transaction)."""
    con.execute(f"DELETE FROM {LOG_TABLE} WHERE dataset_id = ? AND question = ? AND record_id IN "
                "(SELECT unnest(?::VARCHAR[]))", [dataset_id, question, record_ids])


def log_sent(con, dataset_id: str, question: str, suggestions: list[Suggestion]) -> int:
    """Record ``suggestions`` as sent (one statement; the caller's transaction)."""
    if not suggestions:
        return 0
    con.execute(
        f"INSERT OR REPLACE INTO {LOG_TABLE} (dataset_id, record_id, question, value, score, agent, sent_at) "
        "SELECT * FROM (SELECT ? AS dataset_id, unnest(?::VARCHAR[]) AS record_id, ? AS question, "
        "unnest(?::VARCHAR[]) AS value, unnest(?::DOUBLE[]) AS score, unnest(?::VARCHAR[]) AS agent, "
        "?::TIMESTAMP AS sent_at)",
        [dataset_id, [s.record_id for s in suggestions], question, [s.value for s in suggestions],
         [s.score for s in suggestions], [s.agent for s in suggestions], utcnow()])
    return len(suggestions)


def plan_push(con, node: AnnotationNode, meta: list[str], dataset_id: str,
              todo: list[dict]) -> tuple[list[dict], int]:
    """Attach to each record about to be pushed its suggestion (key ``_suggestion``) and add the records
    pushed before whose suggestion changed (re-sent with their fields and metadata: Argilla's bulk upsert
    needs them). Returns (rows to send, how many of them are re-sent only for a suggestion)."""
    ensure_log(con)
    if not node.suggestions_from:
        return todo, 0
    picks = chosen(con, node)
    diff = changed(con, node, dataset_id)
    for row in todo:
        row["_suggestion"] = picks.get(row["id"])
    pending = {row["id"] for row in todo}
    extra = sorted(rid for rid in diff if rid not in pending)
    rows = records_rows(con, node, meta, extra)
    for row in rows:
        row["_suggestion"] = diff[row["id"]]
    return todo + rows, len(rows)


def records_rows(con, node: AnnotationNode, meta: list[str], ids: list[str]) -> list[dict]:
    """Rows of the records model (id, fields, metadata as text, ``_hash``) for the given ids."""
    if not ids:
        return []
    cols = ["id", *FIELDS, *meta]
    select = ", ".join(f"CAST({quote(c)} AS VARCHAR) AS {quote(c)}" for c in cols)
    rows = con.execute(f"SELECT {select}, {record_hash_sql(meta)} AS _hash FROM {quote(node.records)} "
                       "WHERE CAST(id AS VARCHAR) IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1", [ids]).fetchall()
    return [dict(zip([*cols, "_hash"], r, strict=True)) for r in rows]
