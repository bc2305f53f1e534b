"""Annotation nodes: human answers in an append-only response log.

A node reads a records model (``id``, ``prompt``, ``completion`` and metadata
columns) and keeps every answer people gave in its table, one row per
(record, annotator, question) *change*: a changed or discarded answer adds a
row and the earlier row stays. The view ``<node>_latest`` holds the latest row
per (record_id, annotator_id, question). Nothing here ever deletes from the log.

Two backends:

- ``argilla``: each run pushes the records not pushed yet (by stable id and
  record hash, logged in ``_kto_build.annotation_records``) through the argilla
  SDK, then pulls every response over Argilla's REST API and appends the ones
  that differ from the log's latest row. ``network = True``: it pulls every run
  unless ``run --offline``.
- ``local``: ``kto-build annotate`` serves a page on 127.0.0.1 (or imports a
  jsonl of answers) and writes each answer straight into the log, in its own
  short transaction. A run only notices the log changed (row count and newest
  ``pulled_at``) and passes that on as the node's data version.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import KtoBuildError
from ...sql import quote
from ...state import utcnow
from ...yamlio import ANY, BOOL, INT, SCALAR, STR, List, Map, OneOf, Scalar, tag_list
from ..base import Node, NodeResult
from . import push, suggestions
from .log import ResponseLog
from .push import FIELDS

if TYPE_CHECKING:
    from ..base import NodeContext

BACKENDS = ("argilla", "local")

TAGS = OneOf(STR, List(STR), what="a tag or a list of tags")
ARGILLA_SPEC = Map({
    "api_url_env": STR,
    "api_key_env": STR,
    "workspace": STR,
    "dataset": STR,
    "batch_size": INT,
    "page_size": INT,
    "retries": INT,
})
QUESTION_SPEC = Map({"name": STR, "title": STR, "labels": List(SCALAR)}, required=("name", "labels"))


@dataclass(eq=False)  # identity: two nodes are never equal by their fields
class AnnotationNode(ResponseLog, Node):
    """An annotation: records pushed to people (Argilla or the local page) and their answers logged."""

    records: str = ""
    backend: str = "local"
    question: str = "label"
    title: str = ""
    labels: list[str] = field(default_factory=list)
    guidelines: str = ""
    min_submitted: int = 1
    metadata: list[str] | None = None
    metadata_visible: bool = False  # raters see metadata (e.g. model_name) only when the project asks
    argilla: dict = field(default_factory=dict)
    #: judge nodes whose ``annotation`` is this node (project wiring fills it; they are also in depends_on)
    suggestions_from: tuple[str, ...] = ()

    kind: ClassVar[str] = "annotation"
    refreshable: ClassVar[bool] = False
    SPEC: ClassVar = Map(
        {
            "records": STR,
            "backend": Scalar(str, choices=BACKENDS),
            "argilla": ARGILLA_SPEC,
            "question": QUESTION_SPEC,
            "guidelines": STR,
            "min_submitted": INT,
            "metadata": List(STR),
            "metadata_visible": BOOL,
            "description": STR,
            "tags": TAGS,
            "for_target": ANY,
        },
        required=("records", "question"),
    )

    # ------------------------------------------------------------- loading
    @classmethod
    def from_config(cls, name: str, cfg, project) -> AnnotationNode:
        q = cfg["question"]
        labels = []
        for i, label in enumerate(q["labels"]):
            if not isinstance(label, str):
                line = q["labels"].item_lines[i] if hasattr(q["labels"], "item_lines") else q.line
                raise KtoBuildError(f"label {label!r} in '{name}' must be a string", cfg.path, line,
                                    hint='quote it: YAML reads unquoted Yes/No as true/false, e.g. "Yes"')
            labels.append(label)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise KtoBuildError(f"'{name}' needs at least two different labels", cfg.path, q.line_of("labels"))
        min_submitted = cfg.get("min_submitted", 1)
        if min_submitted < 1:
            raise KtoBuildError("'min_submitted' must be 1 or more", cfg.path, cfg.line_of("min_submitted"))
        backend = cfg.get("backend", "local")
        argilla = dict(cfg.get("argilla") or {})
        if backend == "argilla":
            for key in ("workspace", "dataset"):
                if not argilla.get(key):
                    where = cfg["argilla"].line if "argilla" in cfg else cfg.line_of("backend")
                    raise KtoBuildError(f"'{name}' uses the argilla backend but sets no 'argilla: {{{key}: ...}}'",
                                        cfg.path, where)
        node = cls(name=name, path=cfg.path, line=cfg.line, depends_on=[cfg["records"]],
                   tags=tag_list(cfg.get("tags")), description=cfg.get("description", ""),
                   config=dict(cfg), records=cfg["records"], backend=backend, question=q["name"],
                   title=q.get("title", ""), labels=labels, guidelines=cfg.get("guidelines", ""),
                   min_submitted=min_submitted, metadata=list(cfg["metadata"]) if "metadata" in cfg else None,
                   metadata_visible=bool(cfg.get("metadata_visible", False)), argilla=argilla, cfg=cfg)
        return node

    @property
    def network(self) -> bool:
        return self.backend == "argilla"

    def definition(self) -> Any:
        a = self.argilla
        return {"records": self.records, "backend": self.backend, "question": self.question, "title": self.title,
                "labels": self.labels, "guidelines": self.guidelines, "min_submitted": self.min_submitted,
                "metadata": self.metadata,
                **({"metadata_visible": True} if self.metadata_visible else {}),
                "argilla": {k: a.get(k) for k in ("api_url_env", "workspace", "dataset")}
                if self.backend == "argilla" else None,
                **({"suggestions_from": sorted(self.suggestions_from)} if self.suggestions_from else {})}

    def summary(self) -> dict:
        d = super().summary()
        d["backend"] = self.backend
        return d

    @property
    def aliases(self) -> tuple[str, ...]:
        """Relations besides the table: SQL models may read ``<node>_latest`` (they then depend on the node)."""
        return (self.latest_view,)

    def record_columns(self, con) -> list[str]:
        """Columns of the records model; checks id/prompt/completion are there."""
        try:
            cols = [r[0] for r in con.execute(f"DESCRIBE {quote(self.records)}").fetchall()]
        except Exception:
            raise KtoBuildError(f"records model '{self.records}' has not been built yet", self.path,
                                self.line_of("records"), hint=f"run 'kto-build run --select +{self.records}'") \
                from None
        missing = [c for c in ("id", *FIELDS) if c not in cols]
        if missing:
            raise KtoBuildError(f"records model '{self.records}' has no column '{missing[0]}' "
                                f"(it needs id, prompt, completion; has {', '.join(cols)})", self.path,
                                self.line_of("records"))
        return cols

    def metadata_columns(self, cols: list[str]) -> list[str]:
        if self.metadata is None:
            return [c for c in cols if c not in ("id", *FIELDS)]
        for m in self.metadata:
            if m not in cols:
                raise KtoBuildError(f"metadata column '{m}' is not in records model '{self.records}'", self.path,
                                    self.line_of("metadata"), hint="columns: " + ", ".join(cols))
        return list(self.metadata)

    # ---------------------------------------------------------- staleness
    def stale_reason(self, ctx: NodeContext) -> str | None:
        if self.backend == "argilla":
            return "pull answers from Argilla"
        if ctx.state is None:
            return None
        version = ctx.facts.get("log_version") if ctx.facts is not None else self._log_version(ctx)
        if version is None:
            return None
        if list(version) != list(ctx.state.extra.get("log_version") or []):
            return "new answers in the log"
        return None

    def _log_version(self, ctx: NodeContext) -> tuple | None:
        try:
            with ctx.connect(read_only=True) as con:
                return self.log_version(con)
        except Exception:
            return None

    def db_facts(self, con) -> dict:
        try:
            return {"log_version": list(self.log_version(con))}
        except Exception:  # no log table yet: stale_reason then finds no new answers, as without a snapshot
            return {"log_version": None}

    def plan_detail(self, ctx: NodeContext) -> str | None:
        if self.backend == "argilla":
            a = self.argilla
            return f"push new records, pull answers: {a.get('workspace')}/{a.get('dataset')}"
        return None

    # ---------------------------------------------------------------- run
    def run(self, ctx: NodeContext) -> NodeResult:
        if self.backend == "argilla":
            return self._run_argilla(ctx)
        with ctx.transaction() as tx:
            self.ensure_tables(tx.con)
            cols = self.record_columns(tx.con)
            self.metadata_columns(cols)
            version = self.log_version(tx.con)
            pending = len(self.pending(tx.con))
            tx.save(rows=version[0], version_parts=list(version),
                    extra={"log_version": list(version), "backend": "local"})
        return NodeResult(rows=version[0], message=f"{pending} records wait for answers "
                                                   f"(kto-build annotate {self.name})")

    def _env(self, key: str, default: str) -> tuple[str, str]:
        var = self.argilla.get(key, default)
        value = os.environ.get(var, "")
        if not value:
            raise KtoBuildError(f"environment variable {var} is not set (the Argilla "
                                f"{'API key' if 'key' in key else 'URL'} for '{self.name}')", self.path,
                                self.line_of("argilla", key), hint=f"export {var}=...")
        return var, value

    def _dataset_spec(self, meta: list[str]):
        from ...adapters.argilla_backend import DatasetSpec

        return DatasetSpec(workspace=self.argilla["workspace"], name=self.argilla["dataset"], question=self.question,
                           labels=self.labels, title=self.title, guidelines=self.guidelines,
                           min_submitted=self.min_submitted, metadata=meta, fields=FIELDS,
                           metadata_visible=self.metadata_visible)

    def backend_client(self):
        _, url = self._env("api_url_env", "ARGILLA_API_URL")
        _, key = self._env("api_key_env", "ARGILLA_API_KEY")
        from ...adapters.argilla_backend import ArgillaBackend, Where  # lazy: argilla takes ~1.5 s to import

        return ArgillaBackend(url, key, Where(self.path, self.line), retries=self.argilla.get("retries", 2))

    def _run_argilla(self, ctx: NodeContext) -> NodeResult:
        t0 = time.monotonic()
        backend = self.backend_client()
        try:
            plan = self._push_plan(ctx, backend)
            t_push = time.monotonic()
            pushed, suggested = self._push(ctx, backend, plan)
            push_s = time.monotonic() - t_push
            t_pull = time.monotonic()
            fetched, new_rows, version = self._pull(ctx, backend, plan.dataset_id)
            fetch_s = time.monotonic() - t_pull
        finally:
            backend.close()
        again = (f"; the log named another dataset for {plan.elsewhere} of them, so they were pushed again"
                 if plan.elsewhere and pushed else "")
        sugg = (f", sent {suggested} suggestions ({plan.resent} to records pushed before)"
                if self.suggestions_from else "")
        sugg += f", withdrew {len(plan.withdraw)} suggestions" if plan.withdraw else ""
        msg = (f"pushed {pushed} records{' (created the dataset)' if plan.created else ''}{again}{sugg} "
               f"in {push_s:.2f}s, "
               f"pulled {len(fetched)} answers in {fetch_s:.2f}s: {len(new_rows)} new log rows "
               f"({time.monotonic() - t0:.2f}s)")
        return NodeResult(rows=version[0], message=msg,
                          extra={"pushed": pushed, "suggestions": suggested, "resent": plan.resent,
                                 "fetched": len(fetched), "appended": len(new_rows),
                                 "push_seconds": round(push_s, 4), "fetch_seconds": round(fetch_s, 4),
                                 "seconds": round(time.monotonic() - t0, 4)})

    def _push_plan(self, ctx: NodeContext, backend) -> _PushPlan:
        """1. what to push: records whose (id, hash) is not in the push log for the server's dataset."""
        with ctx.transaction() as tx:
            self.ensure_tables(tx.con)
            meta = self.metadata_columns(self.record_columns(tx.con))
        spec = self._dataset_spec(meta)
        ds, created = backend.ensure_dataset(spec)
        dataset_id = str(ds.id)
        with ctx.transaction() as tx:
            before = ctx.state.extra.get("dataset_id") if ctx.state else None
            if before:
                push.adopt_unnamed(tx.con, self.name, before)
            todo = push.unpushed(tx.con, self.name, self.records, meta, dataset_id)
            # judges' verdicts ride along; records pushed before whose suggestion changed are re-sent
            todo, resent = suggestions.plan_push(tx.con, self, meta, dataset_id, todo)
            withdraw = suggestions.stale(tx.con, self, dataset_id)
            elsewhere = push.logged_elsewhere(tx.con, self.name, dataset_id)
        return _PushPlan(spec, ds, created, dataset_id, todo, elsewhere, resent, withdraw)

    def _push(self, ctx: NodeContext, backend, plan: _PushPlan) -> tuple[int, int]:
        """2. push in batches; each batch's push-log and suggestion-log rows commit on their own.
        Returns (new or changed records pushed, suggestions sent)."""
        batch_size = max(1, min(int(self.argilla.get("batch_size", 256)), 500))
        sent: list = []

        def logged(batch: list[dict]) -> None:
            done = [r["_suggestion"] for r in batch if r.get("_suggestion") is not None]
            with ctx.transaction() as tx:
                push.log_pushed(tx.con, self.name, batch, plan.dataset_id)
                suggestions.log_sent(tx.con, plan.dataset_id, self.question, done)
            sent.extend(done)
            bar.advance(len(batch))

        with ctx.reporter.progress(f"push {self.name}", len(plan.todo)) as bar:
            backend.push(plan.ds, plan.spec, plan.todo, batch_size, logged)
        if plan.withdraw:  # suggestions no verdict backs any more
            backend.delete_suggestions(plan.dataset_id, self.question, set(plan.withdraw))
            with ctx.transaction() as tx:
                suggestions.forget(tx.con, plan.dataset_id, self.question, plan.withdraw)
        return len(plan.todo) - plan.resent, len(sent)

    def _pull(self, ctx: NodeContext, backend, dataset_id: str) -> tuple[list[dict], list[dict], tuple]:
        """3. pull every response, append what differs from the log's latest rows, save the state."""
        ctx.reporter.info(f"pulling answers for {self.name} from {backend.api_url}")
        with ctx.reporter.progress(f"pull {self.name}", None) as bar:
            fetched = list(backend.responses(dataset_id, int(self.argilla.get("page_size", 200)), bar))
        with ctx.transaction() as tx:
            new_rows = self.diff(tx.con, fetched, "argilla")
            self.append(tx.con, new_rows)
            version = self.log_version(tx.con)
            tx.save(rows=version[0], version_parts=list(version),
                    extra={"log_version": list(version), "backend": "argilla", "dataset_id": dataset_id,
                           "last_pull_at": utcnow().isoformat(), "responses_seen": len(fetched),
                           "pushed": push.pushed_to(tx.con, self.name, dataset_id)})
        return fetched, new_rows, version


@dataclass(eq=False)
class _PushPlan:
    """What one Argilla push sends."""

    spec: Any
    ds: Any
    created: bool
    dataset_id: str
    todo: list[dict]
    elsewhere: int
    resent: int = 0  # records in todo pushed before, re-sent only for a changed suggestion
    withdraw: list[str] = field(default_factory=list)  # records whose suggestion no verdict backs any more
