"""The generation cache: ``_kto_build.generations``, its keys, its rows.

A generation is keyed by its content: ``generation_id = md5(prompt text,
system prompt, model fingerprint, sample index)``. Every generation ever made
lives in the cache table and is never dropped. Its columns are the fields of
``GenerationRow`` (the one definition); a database made before a column
existed gets it on the next run (``ensure_cache``), with NULL in old rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...errors import KtoBuildError
from ...sql import quote
from ...state import SCHEMA, utcnow
from .settings import ModelEntry

if TYPE_CHECKING:
    from datetime import datetime

    from .calls import CallRequest, CallResult

CACHE_TABLE = "generations"
CACHE = f"{SCHEMA}.{CACHE_TABLE}"


def _sql(sql_type: str) -> dict:
    return {"sql": sql_type}


@dataclass
class GenerationRow:
    """One row of the cache table and of a generator's table (same columns, same order)."""

    generation_id: str = field(metadata=_sql("VARCHAR PRIMARY KEY"))
    prompt_id: str | None = field(metadata=_sql("VARCHAR"))
    prompt: str | None = field(metadata=_sql("VARCHAR"))
    system_prompt: str | None = field(metadata=_sql("VARCHAR"))
    generator: str | None = field(metadata=_sql("VARCHAR"))
    model_name: str | None = field(metadata=_sql("VARCHAR"))
    model_fingerprint: str | None = field(metadata=_sql("VARCHAR"))
    sample_index: int | None = field(metadata=_sql("INTEGER"))
    completion: str | None = field(metadata=_sql("VARCHAR"))
    status: str | None = field(metadata=_sql("VARCHAR"))
    error: str | None = field(metadata=_sql("VARCHAR"))
    generation_kwargs: str | None = field(metadata=_sql("JSON"))
    input_tokens: int | None = field(metadata=_sql("INTEGER"))
    output_tokens: int | None = field(metadata=_sql("INTEGER"))
    latency_ms: float | None = field(metadata=_sql("DOUBLE"))
    created_at: datetime | None = field(metadata=_sql("TIMESTAMP"))
    #: "host:pid" of the process that made the call (NULL for rows made before the column existed)
    worker: str | None = field(metadata=_sql("VARCHAR"))

    def values(self) -> tuple:
        return tuple(getattr(self, n) for n in NAMES)


COLUMNS = tuple((f.name, f.metadata["sql"]) for f in dataclasses.fields(GenerationRow))
NAMES = [c for c, _ in COLUMNS]
CACHE_DDL = f"CREATE TABLE IF NOT EXISTS {CACHE} (" + ", ".join(f"{c} {t}" for c, t in COLUMNS) + ")"


def ensure_cache(con) -> None:
    """Create the cache table, or add the columns an older kto-build did not have."""
    con.execute(CACHE_DDL)
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [SCHEMA, CACHE_TABLE]).fetchall()}
    for name, sql_type in COLUMNS:
        if name not in have:
            con.execute(f"ALTER TABLE {CACHE} ADD COLUMN IF NOT EXISTS {name} {sql_type.split()[0]}")


def generation_id(prompt: str, system_prompt: str | None, model_fingerprint: str, sample_index: int) -> str:
    key = "\x1f".join((prompt, system_prompt or "", model_fingerprint, str(sample_index)))
    return hashlib.md5(key.encode("utf-8")).hexdigest()  # noqa: S324 - a cache key, not security


@dataclass
class Work:
    """One generation a generator's table holds: its key and what it is made from."""

    generation_id: str
    prompt_id: str
    prompt: str
    model: ModelEntry
    sample_index: int


def read_prompts(con, relation: str, path: str, line: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(prompt_id, prompt) of ``relation`` with duplicate texts and NULLs dropped, and warnings."""
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {quote(relation)}").fetchall()]
    for col in ("prompt_id", "prompt"):
        if col not in cols:
            raise KtoBuildError(f"'{relation}' has no column '{col}' (columns: {', '.join(cols)})", path, line,
                                hint="a generator reads prompt_id and prompt columns")
    rows = con.execute(f"SELECT CAST(prompt_id AS VARCHAR), CAST(prompt AS VARCHAR) FROM {quote(relation)}"
                       ).fetchall()
    out, seen, nulls, dups = [], set(), 0, 0
    for pid, text in rows:
        if text is None or not text.strip():
            nulls += 1
            continue
        if text in seen:
            dups += 1
            continue
        seen.add(text)
        out.append((pid, text))
    warnings = []
    if nulls:
        warnings.append(f"{nulls} empty prompt{'s' if nulls != 1 else ''} in '{relation}' skipped")
    if dups:
        warnings.append(f"{dups} duplicate prompt text{'s' if dups != 1 else ''} in '{relation}' generated once")
    return out, warnings


def keys_for(models: list[ModelEntry], prompts: list[tuple[str, str]], system_prompt: str | None,
             num_generations: int) -> list[Work]:
    """Every generation the table holds, in table order: model, prompt, sample."""
    out = []
    for m in models:
        fp = m.fingerprint
        for pid, text in prompts:
            for i in range(num_generations):
                out.append(Work(generation_id(text, system_prompt, fp, i), pid, text, m, i))
    return out


def cached_ok(con, models: list[ModelEntry]) -> set[str]:
    """generation_ids already made (status ok) with these models' settings."""
    has_cache = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                            [SCHEMA, CACHE_TABLE]).fetchone()[0]
    if not has_cache or not models:
        return set()
    fps = sorted({m.fingerprint for m in models})
    placeholders = ", ".join("?" for _ in fps)
    return {r[0] for r in con.execute(
        f"SELECT generation_id FROM {CACHE} WHERE status = 'ok' AND model_fingerprint IN ({placeholders})",
        fps).fetchall()}


class GenerationSink:
    """How a generator's call results become cache rows, and how a batch of them is committed."""

    def __init__(self, generator: str, system_prompt: str | None, work: list[Work]):
        self.generator, self.system_prompt = generator, system_prompt
        self.work = {w.generation_id: w for w in work}

    def to_row(self, request: CallRequest, result: CallResult) -> GenerationRow:
        w, m = self.work[request.key], request.model
        return GenerationRow(
            generation_id=w.generation_id, prompt_id=w.prompt_id, prompt=w.prompt, system_prompt=self.system_prompt,
            generator=self.generator, model_name=m.name, model_fingerprint=m.fingerprint,
            sample_index=w.sample_index, completion=result.text, status=result.status, error=result.error,
            generation_kwargs=m.kwargs_json, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            latency_ms=round(result.latency_ms, 3), created_at=utcnow(), worker=result.worker)

    def commit(self, con, rows: list[GenerationRow]) -> None:
        """Insert (or replace: a retried failure) ``rows`` in the caller's transaction."""
        con.execute(CACHE_DDL)
        placeholders = "(" + ", ".join("?" for _ in NAMES) + ")"
        for i in range(0, len(rows), 500):
            chunk = rows[i:i + 500]
            con.execute(f"INSERT OR REPLACE INTO {CACHE} ({', '.join(NAMES)}) VALUES "
                        + ", ".join(placeholders for _ in chunk), [v for r in chunk for v in r.values()])
