"""Generators: completions for every prompt through distilabel LLMs, paid for once.

A generation is keyed by its content: ``generation_id = md5(prompt text, system
prompt, model fingerprint, sample index)``, where the model fingerprint hashes
the LLM class, its params (minus transport-only ones such as ``base_url``) and
the generation kwargs. Every generation ever made lives in
``_kto_build.generations`` and is never dropped; a run asks the LLMs only for
keys that are missing there (or recorded as failed), commits results in
batches (each batch its own short write transaction), and finally rebuilds the
node's table as the current settings' rows.

Calls go through distilabel (``kto_build.adapters.distilabel_llm``, imported
in ``run`` only) with bounded concurrency per model, retries with exponential
backoff for transient failures, and per-row failure records that the next run
retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import KtoBuildError, did_you_mean
from ..redact import redact, register
from ..sql import fingerprint as hash_parts
from ..sql import quote
from ..state import SCHEMA, DatabaseBusyError, utcnow
from ..yamlio import ANY, BOOL, INT, NUM, STR, Dict, List, Map, OneOf, YMap
from .base import Node, NodeResult

if TYPE_CHECKING:
    from .base import NodeContext

CACHE = f"{SCHEMA}.generations"
COLUMNS = (
    ("generation_id", "VARCHAR PRIMARY KEY"),
    ("prompt_id", "VARCHAR"),
    ("prompt", "VARCHAR"),
    ("system_prompt", "VARCHAR"),
    ("generator", "VARCHAR"),
    ("model_name", "VARCHAR"),
    ("model_fingerprint", "VARCHAR"),
    ("sample_index", "INTEGER"),
    ("completion", "VARCHAR"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
    ("generation_kwargs", "JSON"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("latency_ms", "DOUBLE"),
    ("created_at", "TIMESTAMP"),
)
CACHE_DDL = f"CREATE TABLE IF NOT EXISTS {CACHE} (" + ", ".join(f"{c} {t}" for c, t in COLUMNS) + ")"
NAMES = [c for c, _ in COLUMNS]

#: distilabel 1.5.3's LLM classes (distilabel.models.llms.__all__) and ours: known
#: without importing distilabel, so `ls` and `plan` can say "did you mean".
KNOWN_LLMS = (
    "AnthropicLLM", "AnyscaleLLM", "AzureOpenAILLM", "ClientvLLM", "CohereLLM", "GroqLLM", "InferenceEndpointsLLM",
    "LiteLLM", "LlamaCppLLM", "MistralLLM", "MixtureOfAgentsLLM", "MlxLLM", "OllamaLLM", "OpenAILLM", "TogetherLLM",
    "TransformersLLM", "VertexAILLM", "vLLM", "LlamaCppCompletionLLM",
)
#: LLMs that run in this process (no server): not skipped by --offline
LOCAL_LLMS = frozenset({"LlamaCppCompletionLLM", "LlamaCppLLM", "TransformersLLM", "vLLM", "MlxLLM"})
#: same as adapters.distilabel_llm.TRANSPORT_PARAMS (kept here so planning imports nothing heavy)
TRANSPORT_PARAMS = frozenset({
    "base_url", "timeout", "max_retries", "default_headers", "verbose", "n_threads", "n_gpu_layers", "n_batch",
    "use_offline_batch_generation", "offline_batch_generation_block_until_done", "jobs_ids",
})
#: params that name the model; without one of them, ``base_url`` names it and joins the cache key
MODEL_PARAMS = frozenset({"model", "model_id", "model_path", "endpoint_name", "repo_id", "deployment_name"})
#: seconds one LLM call may take before it counts as failed (and is retried); a model's ``timeout:`` overrides it
DEFAULT_TIMEOUT = 120.0
SECRET_PARAMS = frozenset({"api_key", "token", "hf_token", "api_token", "access_token", "secret", "password"})

MODEL_SPEC = Map(
    {
        "name": STR,
        "llm": STR,
        "params": Dict(ANY),
        "generation": Dict(ANY),
        "api_key_env": STR,
        "targets": OneOf(STR, List(STR), what="a target or a list of targets"),
        "concurrency": INT,
        "retries": INT,
        "timeout": NUM,
        "description": STR,
    },
    required=("name", "llm"),
)


@dataclass
class ModelEntry:
    name: str
    llm: str
    params: dict
    generation: dict
    api_key_env: str | None
    concurrency: int | None
    retries: int
    timeout: float | None
    cfg: Any = None  # the YMap (for lines)

    @functools.cached_property
    def fingerprint(self) -> str:
        """What decides the text: LLM class, content params, generation kwargs."""
        content = {k: v for k, v in self.params.items()
                   if k not in TRANSPORT_PARAMS or (k == "base_url" and not MODEL_PARAMS & set(self.params))}
        return hash_parts(json.dumps({"llm": self.llm, "params": content, "generation": self.generation},
                                     sort_keys=True, default=str))

    @functools.cached_property
    def kwargs_json(self) -> str:
        return json.dumps(self.generation, sort_keys=True)

    def line(self, key: str | None = None) -> int:
        if isinstance(self.cfg, YMap):
            return self.cfg.line_of(key) if key else self.cfg.line
        return 0


def generation_id(prompt: str, system_prompt: str | None, model_fingerprint: str, sample_index: int) -> str:
    key = "\x1f".join((prompt, system_prompt or "", model_fingerprint, str(sample_index)))
    return hashlib.md5(key.encode("utf-8")).hexdigest()  # noqa: S324 - a cache key, not security


@dataclass
class Work:
    generation_id: str
    prompt_id: str
    prompt: str
    model: ModelEntry
    sample_index: int


@dataclass
class GenerationNode(Node):
    prompts: str = ""
    system_prompt: str | None = None
    num_generations: int = 1
    models: list[ModelEntry] = field(default_factory=list)
    batch_size: int = 100
    commit_seconds: float = 5.0
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_consecutive_failures: int = 20
    max_failed_fraction: float = 0.0
    key_lines: dict = field(default_factory=dict)

    kind: ClassVar[str] = "generation"
    refreshable: ClassVar[bool] = False
    SPEC: ClassVar = Map(
        {
            "prompts": STR,
            "system_prompt": STR,
            "num_generations": INT,
            "models": List(MODEL_SPEC),
            "batch_size": INT,
            "commit_seconds": NUM,
            "backoff": NUM,
            "max_backoff": NUM,
            "max_consecutive_failures": INT,
            "max_failed_fraction": NUM,
            "description": STR,
            "tags": OneOf(STR, List(STR)),
            "enabled": BOOL,
        },
        required=("prompts", "models"),
    )

    # ------------------------------------------------------------- config
    @classmethod
    def from_config(cls, name: str, cfg, project) -> GenerationNode:
        path = cfg.path
        targets = set((project.config.get("targets") or {}).keys())
        models: list[ModelEntry] = []
        seen: set[str] = set()
        for m in cfg["models"]:
            wanted = m.get("targets")
            if wanted is not None:
                wanted = [wanted] if isinstance(wanted, str) else list(wanted)
                for t in wanted:
                    if targets and t not in targets:
                        raise KtoBuildError(f"model '{m['name']}' lists unknown target '{t}'", path,
                                            m.line_of("targets"),
                                            hint=did_you_mean(t, targets) or "targets: " + ", ".join(sorted(targets)))
                if project.target not in wanted:
                    continue
            if m["name"] in seen:
                raise KtoBuildError(f"model name '{m['name']}' is used twice in generator '{name}'", path, m.line)
            seen.add(m["name"])
            llm = m["llm"]
            if "." not in llm and llm not in KNOWN_LLMS:
                raise KtoBuildError(f"unknown LLM class '{llm}'", path, m.line_of("llm"),
                                    hint=did_you_mean(llm, KNOWN_LLMS)
                                    or "use a distilabel LLM class name or a dotted path package.module.Class")
            params = dict(m.get("params") or {})
            for key in params:
                if str(key).lower() in SECRET_PARAMS:
                    raise KtoBuildError(f"'{key}' in params would store a secret in sources.yml", path,
                                        m["params"].line_of(key) if isinstance(m["params"], YMap) else m.line,
                                        hint="name the environment variable that holds it: api_key_env: MY_KEY")
            for key in ("concurrency", "retries"):
                if key in m and m[key] < (1 if key == "concurrency" else 0):
                    raise KtoBuildError(f"'{key}' must be at least {1 if key == 'concurrency' else 0}", path,
                                        m.line_of(key))
            models.append(ModelEntry(name=m["name"], llm=llm, params=_plain(params),
                                     generation=_plain(dict(m.get("generation") or {})),
                                     api_key_env=m.get("api_key_env"), concurrency=m.get("concurrency"),
                                     retries=m.get("retries", 4), timeout=m.get("timeout", DEFAULT_TIMEOUT),
                                     cfg=m))
        by_fp: dict[str, ModelEntry] = {}
        for m in models:
            if m.fingerprint in by_fp:
                raise KtoBuildError(f"model '{m.name}' has the same LLM, params and generation settings as "
                                    f"'{by_fp[m.fingerprint].name}'; they would share every generation", path,
                                    m.line(), hint="change a setting or remove one of them")
            by_fp[m.fingerprint] = m
        if not models:
            raise KtoBuildError(f"generator '{name}' has no model for target '{project.target}'", path,
                                cfg.line_of("models"), hint="list the target under a model's 'targets:'")
        n = cfg.get("num_generations", 1)
        if n < 1:
            raise KtoBuildError("'num_generations' must be at least 1", path, cfg.line_of("num_generations"))
        frac = cfg.get("max_failed_fraction", 0.0)
        if not 0 <= frac <= 1:
            raise KtoBuildError("'max_failed_fraction' must be between 0 and 1", path,
                                cfg.line_of("max_failed_fraction"), hint="0.05 tolerates 5% failed generations")
        tags = cfg.get("tags", [])
        node = cls(name=name, path=path, line=cfg.line, depends_on=[cfg["prompts"].lower()], config=dict(cfg),
                   description=cfg.get("description", ""), tags=[tags] if isinstance(tags, str) else list(tags),
                   prompts=cfg["prompts"].lower(), system_prompt=cfg.get("system_prompt"), num_generations=n,
                   models=models, batch_size=max(1, cfg.get("batch_size", 100)),
                   commit_seconds=float(cfg.get("commit_seconds", 5.0)), backoff=float(cfg.get("backoff", 1.0)),
                   max_backoff=float(cfg.get("max_backoff", 30.0)),
                   max_consecutive_failures=max(1, cfg.get("max_consecutive_failures", 20)),
                   max_failed_fraction=float(frac),
                   key_lines=dict(getattr(cfg, "key_lines", {})))
        return node

    @property
    def network(self) -> bool:
        """Local models (``llm: llama_cpp``) still generate under ``run --offline``."""
        return not all(m.llm in LOCAL_LLMS for m in self.models)

    def definition(self) -> Any:
        return json.dumps({
            "prompts": self.prompts, "system_prompt": self.system_prompt, "num_generations": self.num_generations,
            "models": [{"name": m.name, "fingerprint": m.fingerprint, "llm": m.llm, "params": m.params,
                        "api_key_env": m.api_key_env} for m in self.models],
        }, sort_keys=True, default=str)

    def summary(self) -> dict:
        d = super().summary()
        d["models"] = [{"name": m.name, "llm": m.llm, "fingerprint": m.fingerprint} for m in self.models]
        d["num_generations"] = self.num_generations
        return d

    # --------------------------------------------------------- staleness
    def stale_reason(self, ctx: NodeContext) -> str | None:
        extra = ctx.state.extra if ctx.state else {}
        failed, missing = extra.get("failed") or 0, extra.get("missing") or 0
        if failed:
            return f"{failed} failed generation{'s' if failed != 1 else ''} to retry"
        if missing:
            return f"{missing} generation{'s' if missing != 1 else ''} not made yet"
        return None

    def plan_detail(self, ctx: NodeContext) -> str | None:
        """The calls a run would make: the prompts chain evaluated in memory (upstream edits count)."""
        from ..dry_run import dry_upstream

        try:
            with dry_upstream(ctx.project, self.prompts) as con:
                work, keys, _ = self._work(con)
        except KtoBuildError as exc:  # the run would fail there too: say where
            return self._calls_unknown(exc.one_line()) + self._missing_keys()
        per_model: dict[str, int] = {}
        for w in work:
            per_model[w.model.name] = per_model.get(w.model.name, 0) + 1
        parts = ", ".join(f"{m.name} {per_model.get(m.name, 0)}" for m in self.models)
        prompts = len(keys) // max(1, len(self.models) * self.num_generations)
        return (f"{len(work)} call{'s' if len(work) != 1 else ''} ({parts}) for the {prompts} prompt"
                f"{'s' if prompts != 1 else ''} in '{self.prompts}'" + self._missing_keys(work))

    def _missing_keys(self, work: list | None = None) -> str:
        """Models whose API-key variable is not set (the run would fail on them)."""
        calling = None if work is None else {w.model.name for w in work}
        unset = [m for m in self.models if m.api_key_env and not os.environ.get(m.api_key_env)
                 and (calling is None or m.name in calling)]
        return "".join(f"; environment variable {m.api_key_env} is not set (model '{m.name}' reads its API key "
                       "from it)" for m in unset)

    def _calls_unknown(self, why: str = "") -> str:
        per = len(self.models) * self.num_generations
        return (f"{per} call{'s' if per != 1 else ''} per prompt ('{self.prompts}' cannot be read yet"
                + (f": {why})" if why else ")"))

    # ---------------------------------------------------------------- keys
    def _read_prompts(self, con) -> tuple[list[tuple[str, str]], list[str]]:
        """(prompt_id, prompt) with duplicate texts and NULLs dropped, and warnings."""
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {quote(self.prompts)}").fetchall()]
        for col in ("prompt_id", "prompt"):
            if col not in cols:
                raise KtoBuildError(f"'{self.prompts}' has no column '{col}' (columns: {', '.join(cols)})",
                                    self.path, self._line("prompts"),
                                    hint="a generator reads prompt_id and prompt columns")
        rows = con.execute(f"SELECT CAST(prompt_id AS VARCHAR), CAST(prompt AS VARCHAR) FROM {quote(self.prompts)}"
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
            warnings.append(f"{nulls} empty prompt{'s' if nulls != 1 else ''} in '{self.prompts}' skipped")
        if dups:
            warnings.append(f"{dups} duplicate prompt text{'s' if dups != 1 else ''} in '{self.prompts}' "
                            "generated once")
        return out, warnings

    def _line(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def _keys(self, prompts: list[tuple[str, str]]) -> list[Work]:
        out = []
        for m in self.models:
            fp = m.fingerprint
            for pid, text in prompts:
                for i in range(self.num_generations):
                    out.append(Work(generation_id(text, self.system_prompt, fp, i), pid, text, m, i))
        return out

    def _work(self, con) -> tuple[list[Work], list[Work], list[str]]:
        """(rows to generate, all current rows, warnings)."""
        prompts, warnings = self._read_prompts(con)
        keys = self._keys(prompts)
        has_cache = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                                [SCHEMA, "generations"]).fetchone()[0]
        ok: set[str] = set()
        if has_cache and keys:
            fps = sorted({m.fingerprint for m in self.models})
            placeholders = ", ".join("?" for _ in fps)
            ok = {r[0] for r in con.execute(
                f"SELECT generation_id FROM {CACHE} WHERE status = 'ok' AND model_fingerprint IN ({placeholders})",
                fps).fetchall()}
        return [k for k in keys if k.generation_id not in ok], keys, warnings

    # ----------------------------------------------------------------- run
    def run(self, ctx: NodeContext) -> NodeResult:
        with ctx.transaction() as tx:
            tx.con.execute(CACHE_DDL)
            work, keys, warnings = self._work(tx.con)
        started = time.monotonic()
        stats = _Stats()
        if work:
            stats = self._generate(ctx, work)
        warnings += stats.warnings
        with ctx.transaction() as tx:
            con = tx.con
            rows, failed, content = self._build_table(con, keys)
            missing = len(keys) - rows
            data_version = hash_parts("generations", content)
            extra = {"failed": failed, "missing": missing, "calls": stats.calls, "generated": stats.ok,
                     "models": {m.name: m.fingerprint for m in self.models}}
            tx.save(rows=rows, data_version=data_version, extra=extra)
        cached = len(keys) - len(work)
        secs = stats.seconds or (time.monotonic() - started)
        msg = f"{stats.ok} generated, {cached} cached"
        if stats.failed:
            msg += f", {stats.failed} failed"
        if stats.calls:
            msg += f"; {stats.calls} calls in {secs:.1f}s ({stats.calls / max(secs, 1e-9):.1f}/s)"
        if stats.output_tokens:
            msg += f", {stats.output_tokens} tokens out"
        if failed:
            sample = stats.first_error or "see the error column"
            sample = sample if len(sample) <= 160 else sample[:159] + "…"
            warnings.append(f"{failed} generation{'s' if failed != 1 else ''} failed ({sample}); "
                            f"they are kept as status 'failed' and retried on the next run")
        if missing:
            warnings.append(f"{missing} generation{'s' if missing != 1 else ''} not made (rerun to continue)")
        extra = {"calls": stats.calls, "calls_ok": stats.ok, "calls_failed": stats.failed, "generated": stats.ok,
                 "failed": failed, "missing": missing, "cached": cached}
        bad = failed + missing
        if bad and bad > self.max_failed_fraction * len(keys):
            extra["over_failure_limit"] = True
            warnings = [redact(w) for w in warnings]
            raise _TooManyFailuresError(
                f"{bad} of {len(keys)} generations failed or missing (max_failed_fraction "
                f"{self.max_failed_fraction:g}); the table keeps the {rows - failed} good ones and the next run "
                f"retries the rest", self.path, self._line("max_failed_fraction"),
                result=NodeResult(rows=rows, message=redact(msg), warnings=warnings, extra=extra))
        return NodeResult(rows=rows, message=msg, warnings=[redact(w) for w in warnings], extra=extra)

    def _build_table(self, con, keys: list[Work]) -> tuple[int, int, str]:
        import pyarrow as pa  # lazy; installed with datasets/duckdb arrow support

        keys_tbl = pa.table({
            "generation_id": [k.generation_id for k in keys],
            "prompt_id": [k.prompt_id for k in keys],
            "model_name": [k.model.name for k in keys],
            "ord": list(range(len(keys))),
        })
        con.register("_kto_keys", keys_tbl)
        try:
            cols = ", ".join(
                "k.prompt_id" if c == "prompt_id" else "k.model_name" if c == "model_name"
                else "? AS generator" if c == "generator" else f"c.{c}" for c in NAMES)
            con.execute(f"CREATE OR REPLACE TABLE {quote(self.name)} AS SELECT {cols} FROM _kto_keys k "
                        f"JOIN {CACHE} c ON c.generation_id = k.generation_id ORDER BY k.ord", [self.name])
        finally:
            con.unregister("_kto_keys")
        rows, failed, content = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE status <> 'ok'), "
            f"md5(coalesce(string_agg(generation_id || ':' || prompt_id || ':' || model_name || ':' || status, ',' "
            f"ORDER BY generation_id), '')) FROM {quote(self.name)}").fetchone()
        return rows, failed, content

    # ---------------------------------------------------------- generation
    def _generate(self, ctx: NodeContext, work: list[Work]) -> _Stats:
        by_model: dict[str, list[Work]] = {}
        for w in work:
            by_model.setdefault(w.model.name, []).append(w)
        active = [m for m in self.models if m.name in by_model]
        # secrets and classes first: a clear error before any call
        keys = {}
        for m in active:
            if m.api_key_env:
                value = os.environ.get(m.api_key_env)
                if not value:
                    raise KtoBuildError(f"environment variable {m.api_key_env} is not set (model '{m.name}' "
                                        "reads its API key from it)", self.path, m.line("api_key_env"),
                                        hint=f"export {m.api_key_env}=...")
                keys[m.name] = value
                register(value)
        from ..adapters import distilabel_llm as dl  # ~2 s: only once there is work and the keys are there

        llms = {}
        for m in active:
            try:
                cls = dl.load_llm_class(m.llm)
            except LookupError as exc:
                raise KtoBuildError(str(exc), self.path, m.line("llm"),
                                    hint=did_you_mean(m.llm.rsplit(".", 1)[-1], KNOWN_LLMS)) from None
            try:
                llm = dl.build_llm(cls, m.params, keys.get(m.name), m.timeout)
            except Exception as exc:
                raise KtoBuildError(f"cannot configure {m.llm} for model '{m.name}': {dl.first_error_line(exc)}",
                                    self.path, m.line("params")) from None
            names, varkw = dl.generation_parameters(llm)
            for k in m.generation:
                if k not in names and not varkw:
                    raise KtoBuildError(
                        f"{m.llm} has no generation setting '{k}'", self.path, m.line("generation"),
                        hint=did_you_mean(k, names) or "known: " + ", ".join(sorted(names)))
            try:
                llm.load()  # once per run (llama.cpp loads the model file here)
            except Exception as exc:
                raise KtoBuildError(f"cannot load {m.llm} for model '{m.name}': {dl.first_error_line(exc)}",
                                    self.path, m.line("llm")) from None
            llms[m.name] = llm
        try:
            return _run_async(self._agenerate(ctx, by_model, llms, dl))
        finally:
            for llm in llms.values():
                with contextlib.suppress(Exception):
                    llm.unload()

    def _input(self, prompt: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*msgs, {"role": "user", "content": prompt}]

    async def _agenerate(self, ctx: NodeContext, by_model: dict[str, list[Work]], llms: dict, dl) -> _Stats:
        stats = _Stats()
        buf = _Buffer(self, ctx, stats)
        total = sum(len(v) for v in by_model.values())
        t_start = time.monotonic()
        in_flight: dict[int, float] = {}  # id(work) -> start of the call

        async def attempt(w: Work, llm) -> tuple:
            m = w.model
            tries = 0
            while True:
                tries += 1
                t0 = time.monotonic()
                try:
                    text, tin, tout = await dl.agenerate_one(llm, self._input(w.prompt), m.generation, m.timeout)
                    return _row(self, w, text, "ok", None, tin, tout, (time.monotonic() - t0) * 1000)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    retryable, retry_after, message = dl.classify(exc)
                    if not retryable or tries > m.retries:
                        if tries > 1:
                            message = f"{message} (after {tries} attempts)"
                        return _row(self, w, None, "failed", message, None, None, (time.monotonic() - t0) * 1000)
                    stats.retries += 1
                    delay = min(self.max_backoff, self.backoff * 2 ** (tries - 1)) * (0.5 + random.random() / 2)
                    if retry_after is not None:
                        delay = min(max(delay, retry_after), self.max_backoff)
                    await asyncio.sleep(delay)

        with ctx.reporter.progress(f"{self.name}", total) as bar:
            buf.bar = bar

            async def worker(name: str, queue: list[Work], llm, state: dict) -> None:
                while queue and not state["stopped"] and not flush_task.done():
                    # back-pressure: no new call while two batches wait for the database
                    await buf.room_for_more(flush_task)
                    if not queue or flush_task.done():
                        return
                    w = queue.pop()
                    in_flight[id(w)] = time.monotonic()
                    try:
                        row = await attempt(w, llm)
                    finally:
                        in_flight.pop(id(w), None)
                    self._count(stats, state, name, row)
                    buf.add(row)
                    bar.advance(1)

            async def ticker() -> None:  # the progress line names calls that wait long
                while True:
                    await asyncio.sleep(1.0)
                    now = time.monotonic()
                    slow = [now - t for t in in_flight.values() if now - t >= 5]
                    extra = f" ({len(slow)} calls waiting, longest {max(slow):.0f}s)" if slow else ""
                    bar.update(description=f"{self.name}{buf.note or extra}")

            flush_task = asyncio.create_task(buf.flusher())
            tick_task = asyncio.create_task(ticker())
            workers: list[asyncio.Task] = []
            try:
                for name, items in by_model.items():
                    llm = llms[name]
                    m = items[0].model
                    conc = m.concurrency or (8 if dl.is_async(llm) else 1)
                    queue = list(reversed(items))  # pop() from the end keeps prompt order
                    state = {"fails": 0, "stopped": False}
                    workers += [asyncio.create_task(worker(name, queue, llm, state)) for _ in range(conc)]
                await asyncio.gather(*workers)
                stats.seconds = time.monotonic() - t_start
                buf.done = True
                buf.flush_now.set()
                await flush_task
            except BaseException:
                # Ctrl-C / cancellation / an unexpected error: keep what finished
                for t in [*workers, flush_task]:
                    t.cancel()
                buf.last_chance()
                raise
            finally:
                tick_task.cancel()
        return stats

    def _count(self, stats: _Stats, state: dict, name: str, row: tuple) -> None:
        stats.calls += 1
        if row[NAMES.index("status")] == "ok":
            stats.ok += 1
            stats.output_tokens += row[NAMES.index("output_tokens")] or 0
            state["fails"] = 0
            return
        stats.failed += 1
        stats.first_error = stats.first_error or row[NAMES.index("error")]
        state["fails"] += 1
        if state["fails"] >= self.max_consecutive_failures and not state["stopped"]:
            state["stopped"] = True
            stats.warnings.append(f"stopped calling '{name}' after {state['fails']} failures in a row: "
                                  f"{row[NAMES.index('error')]}")


class _Buffer:
    """Finished rows waiting for their batch commit; a row leaves memory only once committed.

    A commit that cannot get the file (a reader such as a duckdb shell holds it) keeps its rows, says so
    in one line (naming the pid when DuckDB does), and tries again with backoff; workers stop issuing new
    calls while two batches wait.
    """

    def __init__(self, node: GenerationNode, ctx: NodeContext, stats: _Stats):
        self.node, self.ctx, self.stats = node, ctx, stats
        self.rows: list[tuple] = []
        self.flush_now = asyncio.Event()
        self.room = asyncio.Event()
        self.done = False
        self.note = ""  # shown in the progress line while the database is busy
        self.bar = None

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.node.batch_size:
            self.flush_now.set()

    async def room_for_more(self, flush_task: asyncio.Task) -> None:
        while len(self.rows) >= 2 * self.node.batch_size and not flush_task.done():
            self.room.clear()
            self.flush_now.set()
            await self.room.wait()

    def commit(self, rows: list[tuple], retries: float = 0.2) -> None:
        placeholders = "(" + ", ".join("?" for _ in NAMES) + ")"
        with self.ctx.db.connect(retries=retries) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(CACHE_DDL)
                for i in range(0, len(rows), 500):
                    chunk = rows[i:i + 500]
                    con.execute(f"INSERT OR REPLACE INTO {CACHE} ({', '.join(NAMES)}) VALUES "
                                + ", ".join(placeholders for _ in chunk), [v for r in chunk for v in r])
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                raise

    async def flusher(self) -> None:
        delay, waiting_since = 0.05, None
        while True:
            if not self.done and waiting_since is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.flush_now.wait(), self.node.commit_seconds)
            self.flush_now.clear()
            if self.rows:
                n = len(self.rows)
                try:
                    await asyncio.to_thread(self.commit, self.rows[:n])
                except DatabaseBusyError as exc:
                    if waiting_since is None:
                        waiting_since = time.monotonic()
                        line = (f"{n} finished generation{'s' if n != 1 else ''} wait for the database: "
                                f"{exc.holder_text()}; they stay in memory and are committed as soon as it "
                                "is closed")
                        self.ctx.reporter.warn(line)
                        self.stats.warnings.append(line)
                        self.note = f" (waiting for the database: {exc.holder_text()})"
                    await asyncio.sleep(delay)
                    delay = min(2.0, delay * 2)
                    continue
                del self.rows[:n]
                self.stats.batches += 1
                if waiting_since is not None:
                    self.ctx.reporter.info(f"database free again after {time.monotonic() - waiting_since:.1f}s: "
                                           f"{n} generations committed")
                delay, waiting_since, self.note = 0.05, None, ""
                self.room.set()
            if self.done and not self.rows:
                return

    def last_chance(self) -> None:
        """On interruption: commit what finished (waiting a few seconds for a reader), or say what is lost."""
        if not self.rows:
            return
        try:
            self.commit(list(self.rows), retries=5.0)
            self.rows.clear()
        except Exception as exc:
            self.ctx.reporter.warn(f"{len(self.rows)} finished generations could not be stored ({exc}); "
                                   "the next run makes these calls again")


class _TooManyFailuresError(KtoBuildError):
    """The table and state are committed, but too many calls failed: the node (and the run) fails."""

    def __init__(self, message, path, line, result: NodeResult):
        super().__init__(message, path, line)
        self.result = result


@dataclass
class _Stats:
    calls: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _row(node: GenerationNode, w: Work, text, status, error, tin, tout, latency_ms) -> tuple:
    m = w.model
    values = {
        "generation_id": w.generation_id, "prompt_id": w.prompt_id, "prompt": w.prompt,
        "system_prompt": node.system_prompt, "generator": node.name, "model_name": m.name,
        "model_fingerprint": m.fingerprint, "sample_index": w.sample_index, "completion": text, "status": status,
        "error": redact(error), "generation_kwargs": m.kwargs_json, "input_tokens": tin,
        "output_tokens": tout, "latency_ms": round(latency_ms, 3), "created_at": utcnow(),
    }
    return tuple(values[c] for c in NAMES)


def _plain(value):
    """YAML containers -> plain dict/list (stable JSON, picklable)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _run_async(coro):
    """asyncio.run, also from a notebook whose loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="kto-build-generation")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
