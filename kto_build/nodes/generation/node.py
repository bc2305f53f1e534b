"""Generators: completions for every prompt through distilabel LLMs, paid for once.

A run asks the LLMs only for keys (``cache.generation_id``) that are missing
from ``_kto_build.generations`` (or recorded as failed), commits results in
batches (each batch its own short write transaction), and finally rebuilds the
node's table as the current settings' rows.

Calls go through ``calls.CallDriver`` with the in-process ``LocalExecutor``
(distilabel, imported only when there is work): bounded concurrency per model,
retries with exponential backoff for transient failures, and per-row failure
records that the next run retries.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import KtoBuildError
from ...redact import redact
from ...sql import fingerprint as hash_parts
from ...sql import quote
from ...yamlio import BOOL, INT, NUM, STR, List, Map, OneOf
from ..base import Node, NodeResult
from .cache import CACHE, NAMES, Work, cached_ok, ensure_cache, keys_for, read_prompts
from .settings import (
    MODEL_SPEC,
    RAY_SPEC,
    ModelEntry,
    RaySettings,
    api_keys,
    calls_per_model,
    model_entries,
    ray_settings,
    stale_calls,
)

if TYPE_CHECKING:
    from ..base import NodeContext
    from .calls import CallStats


@dataclass(eq=False)  # identity: two nodes are never equal by their fields
class GenerationNode(Node):
    """A generator: prompts x models x samples through distilabel LLMs, cached by content."""

    prompts: str = ""
    system_prompt: str | None = None
    num_generations: int = 1
    models: list[ModelEntry] = field(default_factory=list)
    #: entries with ``enabled: false``: no calls, keys or rows; ``prune`` keeps their cached rows
    disabled_models: list[ModelEntry] = field(default_factory=list)
    batch_size: int = 100
    commit_seconds: float = 5.0
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_consecutive_failures: int = 20
    max_failed_fraction: float = 0.0
    key_lines: dict = field(default_factory=dict)
    #: ``ray:``: calls in Ray actors (not in the fingerprint: where calls run does not change the text)
    ray: RaySettings | None = None

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
            "ray": RAY_SPEC,
        },
        required=("prompts", "models"),
    )

    # ------------------------------------------------------------- config
    @classmethod
    def from_config(cls, name: str, cfg, project) -> GenerationNode:
        path = cfg.path
        entries = model_entries(cfg, f"generator '{name}'", project)
        n = cfg.get("num_generations", 1)
        if n < 1:
            raise KtoBuildError("'num_generations' must be at least 1", path, cfg.line_of("num_generations"))
        frac = cfg.get("max_failed_fraction", 0.0)
        if not 0 <= frac <= 1:
            raise KtoBuildError("'max_failed_fraction' must be between 0 and 1", path,
                                cfg.line_of("max_failed_fraction"), hint="0.05 tolerates 5% failed generations")
        tags = cfg.get("tags", [])
        return cls(name=name, path=path, line=cfg.line, depends_on=[cfg["prompts"].lower()], config=dict(cfg),
                   description=cfg.get("description", ""), tags=[tags] if isinstance(tags, str) else list(tags),
                   prompts=cfg["prompts"].lower(), system_prompt=cfg.get("system_prompt"), num_generations=n,
                   models=entries.active, disabled_models=entries.disabled,
                   batch_size=max(1, cfg.get("batch_size", 100)),
                   commit_seconds=float(cfg.get("commit_seconds", 5.0)), backoff=float(cfg.get("backoff", 1.0)),
                   max_backoff=float(cfg.get("max_backoff", 30.0)),
                   max_consecutive_failures=max(1, cfg.get("max_consecutive_failures", 20)),
                   max_failed_fraction=float(frac),
                   key_lines=dict(getattr(cfg, "key_lines", {})), ray=ray_settings(cfg, path))

    @property
    def network(self) -> bool:
        """Local models (``llm: llama_cpp``) still generate under ``run --offline``."""
        return not all(m.local for m in self.models)

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
        return stale_calls(ctx.state.extra if ctx.state else None, "generation")

    def plan_detail(self, ctx: NodeContext) -> str | None:
        """The calls a run would make: the prompts chain evaluated in memory (upstream edits count)."""
        from ...dry_run import dry_upstream

        try:
            with dry_upstream(ctx.project, self.prompts) as con:
                work, keys, _ = self._work(con)
        except KtoBuildError as exc:  # the run would fail there too: say where
            return self._calls_unknown(exc.one_line()) + self._missing_keys()
        parts = calls_per_model(work, self.models)
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
    def _line(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def _work(self, con) -> tuple[list[Work], list[Work], list[str]]:
        """(rows to generate, all current rows, warnings)."""
        prompts, warnings = read_prompts(con, self.prompts, self.path, self._line("prompts"))
        keys = keys_for(self.models, prompts, self.system_prompt, self.num_generations)
        ok = cached_ok(con, self.models) if keys else set()
        return [k for k in keys if k.generation_id not in ok], keys, warnings

    # ----------------------------------------------------------------- run
    def run(self, ctx: NodeContext) -> NodeResult:
        from .calls import CallStats

        with ctx.transaction() as tx:
            ensure_cache(tx.con)
            work, keys, warnings = self._work(tx.con)
        started = time.monotonic()
        stats = self._generate(ctx, work) if work else CallStats()
        warnings += stats.warnings
        with ctx.transaction() as tx:
            rows, failed, content = self._build_table(tx.con, keys)
            missing = len(keys) - rows
            extra = {"failed": failed, "missing": missing, "calls": stats.calls, "generated": stats.ok,
                     "models": {m.name: m.fingerprint for m in self.models}}
            tx.save(rows=rows, data_version=hash_parts("generations", content), extra=extra)
        cached = len(keys) - len(work)
        msg = _summary_line(stats, cached, stats.seconds or (time.monotonic() - started))
        if failed:
            sample = stats.first_error or "see the error column"
            sample = sample if len(sample) <= 160 else sample[:159] + "…"
            warnings.append(f"{failed} generation{'s' if failed != 1 else ''} failed ({sample}); "
                            f"they are kept as status 'failed' and retried on the next run")
        if missing:
            warnings.append(f"{missing} generation{'s' if missing != 1 else ''} not made (rerun to continue)")
        extra = {"calls": stats.calls, "calls_ok": stats.ok, "calls_failed": stats.failed, "generated": stats.ok,
                 "failed": failed, "missing": missing, "cached": cached}
        result = NodeResult(rows=rows, message=msg, warnings=[redact(w) for w in warnings], extra=extra)
        self._check_failures(failed + missing, len(keys), rows - failed, result)
        return result

    def _check_failures(self, bad: int, total: int, good: int, result: NodeResult) -> None:
        """More failed or missing rows than ``max_failed_fraction`` allows: the node fails (rows kept)."""
        if not bad or bad <= self.max_failed_fraction * total:
            return
        from .calls import TooManyFailuresError

        result.extra["over_failure_limit"] = True
        result.message = redact(result.message)
        raise TooManyFailuresError(
            f"{bad} of {total} generations failed or missing (max_failed_fraction "
            f"{self.max_failed_fraction:g}); the table keeps the {good} good ones and the next run "
            f"retries the rest", self.path, self._line("max_failed_fraction"), result=result)

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
    def _input(self, prompt: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*msgs, {"role": "user", "content": prompt}]

    def _generate(self, ctx: NodeContext, work: list[Work]) -> CallStats:
        from .cache import GenerationSink
        from .calls import CallDriver, CallRequest, CallSetupError
        from .local import Backoff
        from .ray_executor import executor_for

        calling = {w.model.name for w in work}
        active = [m for m in self.models if m.name in calling]
        keys = api_keys(active, self.path)  # secrets first: a clear error before any call
        executor = executor_for(self.ray, Backoff(self.backoff, self.max_backoff))
        try:
            try:
                executor.start(active, keys)
            except CallSetupError as exc:
                raise KtoBuildError(str(exc), self.path, exc.model.line(exc.key), hint=exc.hint) from None
            driver = CallDriver(self.name, ctx, executor, GenerationSink(self.name, self.system_prompt, work),
                                batch_size=self.batch_size, commit_seconds=self.commit_seconds,
                                max_consecutive_failures=self.max_consecutive_failures)
            return driver.run([CallRequest(w.generation_id, self._input(w.prompt), w.model) for w in work])
        finally:
            executor.close()


def _summary_line(stats: CallStats, cached: int, secs: float) -> str:
    msg = f"{stats.ok} generated, {cached} cached"
    if stats.failed:
        msg += f", {stats.failed} failed"
    if stats.calls:
        msg += f"; {stats.calls} calls in {secs:.1f}s ({stats.calls / max(secs, 1e-9):.1f}/s)"
    if stats.output_tokens:
        msg += f", {stats.output_tokens} tokens out"
    return msg
