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
from ...state import GENERATION_CACHE, SCHEMA, utcnow
from .settings import ModelEntry

if TYPE_CHECKING:
    from datetime import datetime

    from .calls import CallRequest, CallResult

CACHE = GENERATION_CACHE  # the one definition lives in state
CACHE_TABLE = CACHE.split(".", 1)[1]


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


_ARROW = {"VARCHAR": "string", "JSON": "string", "INTEGER": "int32", "DOUBLE": "float64", "TIMESTAMP": "timestamp"}


class CacheTable:
    """A cache table whose columns are a row dataclass's fields (``metadata["sql"]``): the one definition of its
    DDL, of the columns an older database gets added, and of the batch insert both cache sinks commit with."""

    def __init__(self, table: str, row_type: type):
        self.table, self.name = table, f"{SCHEMA}.{table}"
        self.columns = tuple((f.name, f.metadata["sql"]) for f in dataclasses.fields(row_type))
        self.names = [c for c, _ in self.columns]
        self.ddl = f"CREATE TABLE IF NOT EXISTS {self.name} (" + ", ".join(f"{c} {t}" for c, t in self.columns) + ")"

    def ensure(self, con) -> None:
        """Create the table, or add the columns an older kto-build did not have (NULL in old rows)."""
        con.execute(self.ddl)
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
            [SCHEMA, self.table]).fetchall()}
        for name, sql_type in self.columns:
            if name not in have:
                con.execute(f"ALTER TABLE {self.name} ADD COLUMN IF NOT EXISTS {name} {sql_type.split()[0]}")

    def insert(self, con, rows: list) -> None:
        """INSERT OR REPLACE ``rows`` (a retried failure replaces its row) as one Arrow table, in the caller's
        transaction: ~10x cheaper than a parameterised VALUES list of the same rows."""
        import pyarrow as pa  # only when there is something to commit: a no-op run imports none of it

        con.execute(self.ddl)
        if not rows:
            return
        arrays = {}
        for name, sql_type in self.columns:
            kind = _ARROW[sql_type.split()[0]]
            pa_type = pa.timestamp("us") if kind == "timestamp" else getattr(pa, kind)()
            arrays[name] = pa.array([getattr(r, name) for r in rows], type=pa_type)
        view = f"_kto_batch_{self.table}"
        con.register(view, pa.table(arrays))
        try:
            cols = ", ".join(self.names)
            con.execute(f"INSERT OR REPLACE INTO {self.name} ({cols}) SELECT {cols} FROM {view}")
        finally:
            con.unregister(view)


TABLE = CacheTable(CACHE_TABLE, GenerationRow)
COLUMNS = TABLE.columns
NAMES = TABLE.names
CACHE_DDL = TABLE.ddl
ensure_cache = TABLE.ensure


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
        TABLE.insert(con, rows)
