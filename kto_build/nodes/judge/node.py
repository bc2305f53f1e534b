"""Judge nodes (sources.yml ``judges:``): a model answers an annotation's question for every record.

A judge reads a records model (``id``, ``prompt``, ``completion``, as the
annotation it answers for) and asks each of its models (the generator's model
entries: any distilabel LLM) the annotation's question, with its labels. The
calls go through the generation package's ``CallDriver`` and executor
(concurrency, retries, batching with back-pressure, progress, failure
accounting); results are committed in batches to ``_kto_build.judgements``
(``cache``), so a rerun asks only for records it has no verdict for, and kill -9
loses at most the batch in flight. The node's table holds one verdict per
(record, judge model): ``label`` is one of the annotation's labels or NULL,
``status`` ``ok`` / ``unparsed`` / ``failed``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import KtoBuildError, did_you_mean
from ...redact import redact
from ...sql import fingerprint as hash_parts
from ...sql import quote
from ...yamlio import ANY, INT, NUM, STR, List, Map, OneOf
from ..base import Node, NodeResult
from ..generation.settings import (
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
from .cache import CACHE, TABLE_COLUMNS, Verdict, ensure_cache, judgement_id, kept
from .template import DEFAULT_TEMPLATE, PLACEHOLDERS, render, unknown_placeholders

if TYPE_CHECKING:
    from ..base import NodeContext
    from ..generation.calls import CallStats

#: top alternatives asked for per answer token, where the backend gives log-probabilities (0 = never ask)
DEFAULT_LOGPROBS = 10


@dataclass(eq=False)  # identity: two nodes are never equal by their fields
class JudgeNode(Node):
    """A judge: a model's verdict on each record, answering an annotation's question (AI feedback)."""

    records: str = ""
    annotation: str = ""
    template: str = DEFAULT_TEMPLATE
    models: list[ModelEntry] = field(default_factory=list)
    disabled_models: list[ModelEntry] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    question: str = ""
    guidelines: str = ""
    logprobs: int = DEFAULT_LOGPROBS
    batch_size: int = 100
    commit_seconds: float = 5.0
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_consecutive_failures: int = 20
    max_failed_fraction: float = 0.0
    key_lines: dict = field(default_factory=dict)
    #: ``ray:``: calls in Ray actors, as for generators (not in the fingerprint)
    ray: RaySettings | None = None

    kind: ClassVar[str] = "judge"
    refreshable: ClassVar[bool] = False
    SPEC: ClassVar = Map(
        {
            "records": STR,
            "annotation": STR,
            "template": STR,
            "models": List(MODEL_SPEC),
            "logprobs": INT,
            "batch_size": INT,
            "commit_seconds": NUM,
            "backoff": NUM,
            "max_backoff": NUM,
            "max_consecutive_failures": INT,
            "max_failed_fraction": NUM,
            "description": STR,
            "tags": OneOf(STR, List(STR)),
            "for_target": ANY,
            "ray": RAY_SPEC,
        },
        required=("records", "annotation", "models"),
    )

    # ------------------------------------------------------------- config
    @classmethod
    def from_config(cls, name: str, cfg, project) -> JudgeNode:
        path = cfg.path
        ann = _annotation(cfg, project)
        template = cfg.get("template") or DEFAULT_TEMPLATE
        bad = unknown_placeholders(template)
        if bad:
            raise KtoBuildError(f"unknown placeholder '{{{bad[0]}}}' in the template of judge '{name}'", path,
                                cfg.line_of("template"), hint=did_you_mean(bad[0], PLACEHOLDERS)
                                or "placeholders: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
        if "{completion}" not in template:
            raise KtoBuildError(f"the template of judge '{name}' never shows the record: it has no {{completion}}",
                                path, cfg.line_of("template"), hint="add {prompt} and {completion}")
        frac = cfg.get("max_failed_fraction", 0.0)
        if not 0 <= frac <= 1:
            raise KtoBuildError("'max_failed_fraction' must be between 0 and 1", path,
                                cfg.line_of("max_failed_fraction"))
        entries = model_entries(cfg, f"judge '{name}'", project)
        tags = cfg.get("tags", [])
        return cls(name=name, path=path, line=cfg.line, depends_on=[cfg["records"].lower()], config=dict(cfg),
                   description=cfg.get("description", ""), tags=[tags] if isinstance(tags, str) else list(tags),
                   records=cfg["records"].lower(), annotation=ann.name, template=template,
                   models=entries.active, disabled_models=entries.disabled, labels=[str(x) for x in ann.labels],
                   question=ann.title or ann.question, guidelines=ann.guidelines or "",
                   logprobs=max(0, cfg.get("logprobs", DEFAULT_LOGPROBS)),
                   batch_size=max(1, cfg.get("batch_size", 100)),
                   commit_seconds=float(cfg.get("commit_seconds", 5.0)), backoff=float(cfg.get("backoff", 1.0)),
                   max_backoff=float(cfg.get("max_backoff", 30.0)),
                   max_consecutive_failures=max(1, cfg.get("max_consecutive_failures", 20)),
                   max_failed_fraction=float(frac), key_lines=dict(getattr(cfg, "key_lines", {})),
                   ray=ray_settings(cfg, path))

    @property
    def network(self) -> bool:
        """A judge on a local model (llama.cpp) still judges under ``run --offline``."""
        return not all(m.local for m in self.models)

    @property
    def template_fingerprint(self) -> str:
        """What the judge is asked, besides the record: the template, question, labels, guidelines, logprobs."""
        return hash_parts("judge-template", self.template, json.dumps(self.labels), self.question,
                          self.guidelines, str(self.logprobs))

    def definition(self) -> Any:
        return json.dumps({
            "records": self.records, "annotation": self.annotation, "template": self.template_fingerprint,
            "models": [{"name": m.name, "fingerprint": m.fingerprint, "llm": m.llm, "params": m.params,
                        "api_key_env": m.api_key_env} for m in self.models],
        }, sort_keys=True, default=str)

    def summary(self) -> dict:
        d = super().summary()
        d["models"] = [{"name": m.name, "llm": m.llm, "fingerprint": m.fingerprint} for m in self.models]
        d["annotation"], d["labels"] = self.annotation, self.labels
        return d

    # --------------------------------------------------------- staleness
    def stale_reason(self, ctx: NodeContext) -> str | None:
        return stale_calls(ctx.state.extra if ctx.state else None, "judgement")

    def plan_detail(self, ctx: NodeContext) -> str | None:
        """The calls a run would make, counted as for generators (the records chain evaluated in memory)."""
        from ...dry_run import dry_upstream

        try:
            with dry_upstream(ctx.project, self.records) as con:
                work, keys, _ = self._work(con)
        except KtoBuildError as exc:
            n = len(self.models)
            return (f"{n} call{'s' if n != 1 else ''} per record ('{self.records}' cannot be read yet: "
                    f"{exc.one_line()})")
        parts = calls_per_model(work, self.models)
        records = len(keys) // max(1, len(self.models))
        return (f"{len(work)} call{'s' if len(work) != 1 else ''} ({parts}) for the {records} record"
                f"{'s' if records != 1 else ''} in '{self.records}'")

    # ---------------------------------------------------------------- keys
    def _line(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def _read_records(self, con) -> tuple[list[tuple[str, str, str]], list[str]]:
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {quote(self.records)}").fetchall()]
        for col in ("id", "prompt", "completion"):
            if col not in cols:
                raise KtoBuildError(f"'{self.records}' has no column '{col}' (columns: {', '.join(cols)})",
                                    self.path, self._line("records"),
                                    hint="a judge reads the records of its annotation: id, prompt, completion")
        rows = con.execute(f"SELECT CAST(id AS VARCHAR), CAST(prompt AS VARCHAR), CAST(completion AS VARCHAR) "
                           f"FROM {quote(self.records)} ORDER BY 1").fetchall()
        good = [r for r in rows if r[0] is not None and r[2] is not None]
        skipped = len(rows) - len(good)
        warnings = [f"{skipped} record{'s' if skipped != 1 else ''} without id or completion in '{self.records}' "
                    "not judged"] if skipped else []
        return [(rid, prompt or "", completion) for rid, prompt, completion in good], warnings

    def _work(self, con) -> tuple[list[Verdict], list[Verdict], list[str]]:
        """(judgements to make, every row of the table, warnings)."""
        records, warnings = self._read_records(con)
        tfp = self.template_fingerprint
        keys = [Verdict(judgement_id(p, c, tfp, m.fingerprint), rid, p, c, m)
                for m in self.models for rid, p, c in records]
        have = kept(con, [k.judgement_id for k in keys])
        work, seen = [], set()
        for k in keys:
            if k.judgement_id not in have and k.judgement_id not in seen:
                seen.add(k.judgement_id)
                work.append(k)
        return work, keys, warnings

    def _input(self, w: Verdict) -> list[dict]:
        return [{"role": "user", "content": render(self.template, prompt=w.prompt, completion=w.completion,
                                                   labels=self.labels, question=self.question,
                                                   guidelines=self.guidelines)}]

    # ----------------------------------------------------------------- run
    def run(self, ctx: NodeContext) -> NodeResult:
        from ..generation.calls import CallStats

        with ctx.transaction() as tx:
            ensure_cache(tx.con)
            work, keys, warnings = self._work(tx.con)
        started = time.monotonic()
        stats = self._judge(ctx, work) if work else CallStats()
        warnings += stats.warnings
        with ctx.transaction() as tx:
            rows, failed, unparsed, content = self._build_table(tx.con, keys)
            missing = len(keys) - rows
            tx.save(rows=rows, data_version=hash_parts("judgements", content),
                    extra={"failed": failed, "missing": missing, "unparsed": unparsed, "calls": stats.calls,
                           "models": {m.name: m.fingerprint for m in self.models}})
        cached = len(keys) - len(work)
        secs = stats.seconds or (time.monotonic() - started)
        msg = f"{stats.ok} judged, {cached} cached"
        if stats.failed:
            msg += f", {stats.failed} failed"
        if stats.calls:
            msg += f"; {stats.calls} calls in {secs:.1f}s ({stats.calls / max(secs, 1e-9):.1f}/s)"
        if unparsed:
            warnings.append(f"{unparsed} verdict{'s' if unparsed != 1 else ''} name{'s' if unparsed == 1 else ''} "
                            f"none of the labels ({', '.join(self.labels)}): status 'unparsed', label NULL")
        if failed:
            sample = (stats.first_error or "see the error column")[:160]
            warnings.append(f"{failed} judgement{'s' if failed != 1 else ''} failed ({sample}); kept as status "
                            "'failed' and retried on the next run")
        if missing:
            warnings.append(f"{missing} judgement{'s' if missing != 1 else ''} not made (rerun to continue)")
        extra = {"calls": stats.calls, "calls_ok": stats.ok, "calls_failed": stats.failed, "failed": failed,
                 "missing": missing, "unparsed": unparsed, "cached": cached}
        result = NodeResult(rows=rows, message=msg, warnings=[redact(w) for w in warnings], extra=extra)
        self._check_failures(failed + missing, len(keys), result)
        return result

    def _check_failures(self, bad: int, total: int, result: NodeResult) -> None:
        if not bad or bad <= self.max_failed_fraction * total:
            return
        from ..generation.calls import TooManyFailuresError

        result.extra["over_failure_limit"] = True
        raise TooManyFailuresError(
            f"{bad} of {total} judgements failed or missing (max_failed_fraction {self.max_failed_fraction:g}); "
            "the table keeps the others and the next run retries these", self.path,
            self._line("max_failed_fraction"), result=result)

    def _build_table(self, con, keys: list[Verdict]) -> tuple[int, int, int, str]:
        import pyarrow as pa  # lazy

        con.register("_kto_jkeys", pa.table({
            "record_id": [k.record_id for k in keys], "judge_model": [k.model.name for k in keys],
            "judgement_id": [k.judgement_id for k in keys], "ord": list(range(len(keys)))}))
        try:
            cols = ", ".join(f"k.{c}" if c in ("record_id", "judge_model") else f"c.{c}" for c in TABLE_COLUMNS)
            con.execute(f"CREATE OR REPLACE TABLE {quote(self.name)} AS SELECT {cols} FROM _kto_jkeys k "
                        f"JOIN {CACHE} c ON c.judgement_id = k.judgement_id ORDER BY k.ord")
        finally:
            con.unregister("_kto_jkeys")
        return con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'unparsed'),"
            f" md5(coalesce(string_agg(concat_ws(':', record_id, judge_model, status, label, score), ',' "
            f"ORDER BY record_id, judge_model), '')) FROM {quote(self.name)}").fetchone()

    # -------------------------------------------------------------- calls
    def _judge(self, ctx: NodeContext, work: list[Verdict]) -> CallStats:
        from ..generation.calls import CallDriver, CallRequest, CallSetupError
        from ..generation.local import Backoff
        from ..generation.ray_executor import executor_for
        from .cache import JudgementSink

        calling = {w.model.name for w in work}
        active = [m for m in self.models if m.name in calling]
        keys = api_keys(active, self.path)  # the generator's rule: secrets first, a clear error
        extra = {m.name: self._logprob_kwargs(m) for m in active}
        executor = executor_for(self.ray, Backoff(self.backoff, self.max_backoff))
        try:
            try:
                executor.start(active, keys)
            except CallSetupError as exc:
                raise KtoBuildError(str(exc), self.path, exc.model.line(exc.key), hint=exc.hint) from None
            sink = JudgementSink(self.name, self.labels, self.template_fingerprint, work)
            driver = CallDriver(self.name, ctx, executor, sink, batch_size=self.batch_size,
                                commit_seconds=self.commit_seconds,
                                max_consecutive_failures=self.max_consecutive_failures, noun="judgement")
            return driver.run([CallRequest(w.judgement_id, self._input(w), w.model, extra[w.model.name] or None)
                               for w in work])
        finally:
            executor.close()

    def _logprob_kwargs(self, m: ModelEntry) -> dict:
        """Ask for log-probabilities where the LLM can give them (unless the model's settings say otherwise)."""
        if self.logprobs <= 0 or {"logprobs", "top_logprobs"} & set(m.generation):
            return {}
        from ...adapters import distilabel_llm as dl

        try:
            return dl.logprob_kwargs(dl.load_llm_class(m.llm), self.logprobs)
        except LookupError:
            return {}  # the executor says what is wrong with the class, at the model's line


def _annotation(cfg, project):
    """The annotation node the judge answers for (loaded before judges)."""
    name = str(cfg["annotation"]).lower()
    node = project.nodes.get(name)
    if node is None or node.kind != "annotation":
        known = [n.name for n in project.nodes.values() if n.kind == "annotation"]
        what = "is not an annotation" if node is not None else "is not defined"
        raise KtoBuildError(f"annotation '{cfg['annotation']}' {what}", cfg.path, cfg.line_of("annotation"),
                            hint=did_you_mean(name, known) or ("annotations: " + ", ".join(known) if known
                                                               else "define it under 'annotations:'"))
    return node
