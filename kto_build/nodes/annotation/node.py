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

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import KtoBuildError
from ...sql import quote
from ...state import SCHEMA, utcnow
from ...yamlio import ANY, BOOL, INT, SCALAR, STR, List, Map, OneOf, Scalar
from ..base import Node, NodeResult
from . import suggestions

if TYPE_CHECKING:
    from ..base import NodeContext

BACKENDS = ("argilla", "local")
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
PUSH_LOG_DDL = f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.annotation_records (
    node VARCHAR NOT NULL,
    record_id VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL,
    pushed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (node, record_id)
)"""
FIELDS = ("prompt", "completion")

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


@dataclass
class AnnotationNode(Node):
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
    #: judge nodes whose verdicts people see as suggestions (project wiring fills it; see suggestions.py)
    suggestions_from: tuple[str, ...] = ()
    #: the validated YAML mapping, for the line of a key in later errors
    _cfg: Any = field(default=None, repr=False, compare=False)

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
        tags = cfg.get("tags", [])
        node = cls(name=name, path=cfg.path, line=cfg.line, depends_on=[cfg["records"]],
                   tags=[tags] if isinstance(tags, str) else list(tags), description=cfg.get("description", ""),
                   config=dict(cfg), records=cfg["records"], backend=backend, question=q["name"],
                   title=q.get("title", ""), labels=labels, guidelines=cfg.get("guidelines", ""),
                   min_submitted=min_submitted, metadata=list(cfg["metadata"]) if "metadata" in cfg else None,
                   metadata_visible=bool(cfg.get("metadata_visible", False)), argilla=argilla, _cfg=cfg)
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

    def line_of(self, key: str, sub: str | None = None) -> int:
        cfg = self._cfg
        if cfg is None:
            return self.line
        if sub and key in cfg and hasattr(cfg[key], "line_of"):
            return cfg[key].line_of(sub)
        return cfg.line_of(key)

    @property
    def latest_view(self) -> str:
        return f"{self.name}_latest"

    @property
    def aliases(self) -> tuple[str, ...]:
        """Relations besides the table: SQL models may read ``<node>_latest`` (they then depend on the node)."""
        return (self.latest_view,)

    # ----------------------------------------------------------- the log
    def ensure_tables(self, con) -> None:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        con.execute(LOG_DDL.format(table=quote(self.name)))
        con.execute(LATEST_DDL.format(view=quote(self.latest_view), table=quote(self.name)))
        con.execute(PUSH_LOG_DDL)
        # the push log is per server dataset: a deleted, renamed or new dataset gets every record again
        con.execute(f"ALTER TABLE {SCHEMA}.annotation_records ADD COLUMN IF NOT EXISTS dataset_id VARCHAR")

    def log_version(self, con) -> tuple[int, str | None]:
        n, newest = con.execute(f"SELECT count(*), max(pulled_at) FROM {quote(self.name)}").fetchone()
        return int(n), newest.isoformat() if newest else None

    def latest_rows(self, con) -> dict[tuple, tuple]:
        """(record_id, annotator_id, question) -> (value, status, response_updated_at)."""
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
        try:
            with ctx.connect(read_only=True) as con:
                version = self.log_version(con)
        except Exception:
            return None
        if list(version) != list(ctx.state.extra.get("log_version") or []):
            return "new answers in the log"
        return None

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
            # 1. what to push: records whose (id, hash) is not in the push log
            with ctx.transaction() as tx:
                self.ensure_tables(tx.con)
                cols = self.record_columns(tx.con)
                meta = self.metadata_columns(cols)
            spec = self._dataset_spec(meta)
            ds, created = backend.ensure_dataset(spec)
            dataset_id = str(ds.id)
            with ctx.transaction() as tx:
                before = (ctx.state.extra.get("dataset_id") if ctx.state else None)
                if before:  # rows logged before the log named datasets belong to the one the state names
                    tx.con.execute(f"UPDATE {SCHEMA}.annotation_records SET dataset_id = ? WHERE node = ? "
                                   "AND dataset_id IS NULL", [before, self.name])
                todo = self.unpushed(tx.con, meta, dataset_id)
                pushed_records = len(todo)
                todo, resent = suggestions.plan_push(tx.con, self, meta, dataset_id, todo)
                elsewhere = tx.con.execute(f"SELECT count(*) FROM {SCHEMA}.annotation_records WHERE node = ? "
                                           "AND dataset_id IS DISTINCT FROM ?", [self.name, dataset_id]).fetchone()[0]
            # 2. push in batches; each batch's push-log rows commit on their own
            batch_size = max(1, min(int(self.argilla.get("batch_size", 256)), 500))

            def logged(batch: list[dict]) -> None:
                now = utcnow()
                with ctx.transaction() as tx:
                    tx.con.execute(
                        f"INSERT OR REPLACE INTO {SCHEMA}.annotation_records "
                        "(node, record_id, record_hash, pushed_at, dataset_id) "
                        "SELECT * FROM (SELECT ? AS node, unnest(?::VARCHAR[]) AS record_id, "
                        "unnest(?::VARCHAR[]) AS record_hash, ?::TIMESTAMP AS pushed_at, ? AS dataset_id)",
                        [self.name, [r["id"] for r in batch], [r["_hash"] for r in batch], now, dataset_id])
                    done = [r["_suggestion"] for r in batch if r.get("_suggestion") is not None]
                    suggestions.log_sent(tx.con, dataset_id, self.question, done)  # the same transaction
                sent_sugg.extend(done)
                bar.advance(len(batch))

            t_push = time.monotonic()
            sent_sugg: list = []
            with ctx.reporter.progress(f"push {self.name}", len(todo)) as bar:
                backend.push(ds, spec, todo, batch_size, logged)
            pushed = pushed_records
            push_s = time.monotonic() - t_push
            # 3. pull every response, append what differs from the log's latest rows
            ctx.reporter.info(f"pulling answers for {self.name} from {backend.api_url}")
            t_pull = time.monotonic()
            with ctx.reporter.progress(f"pull {self.name}", None) as bar:
                fetched = list(backend.responses(dataset_id, int(self.argilla.get("page_size", 200)), bar))
            fetch_s = time.monotonic() - t_pull
            with ctx.transaction() as tx:
                new_rows = self.diff(tx.con, fetched, "argilla")
                self.append(tx.con, new_rows)
                version = self.log_version(tx.con)
                pushed_total = tx.con.execute(f"SELECT count(*) FROM {SCHEMA}.annotation_records WHERE node = ? "
                                              "AND dataset_id = ?", [self.name, dataset_id]).fetchone()[0]
                tx.save(rows=version[0], version_parts=list(version),
                        extra={"log_version": list(version), "backend": "argilla", "dataset_id": dataset_id,
                               "last_pull_at": utcnow().isoformat(), "responses_seen": len(fetched),
                               "pushed": pushed_total})
        finally:
            backend.close()
        again = (f"; the log named another dataset for {elsewhere} of them, so they were pushed again"
                 if elsewhere and pushed else "")
        sugg = f", sent {len(sent_sugg)} suggestions ({resent} to records pushed before)" if self.suggestions_from \
            else ""
        msg = (f"pushed {pushed} records{' (created the dataset)' if created else ''}{again}{sugg} in {push_s:.2f}s, "
               f"pulled {len(fetched)} answers in {fetch_s:.2f}s: {len(new_rows)} new log rows "
               f"({time.monotonic() - t0:.2f}s)")
        return NodeResult(rows=version[0], message=msg,
                          extra={"pushed": pushed, "suggestions": len(sent_sugg), "resent": resent,
                                 "fetched": len(fetched), "appended": len(new_rows),
                                 "push_seconds": round(push_s, 4), "fetch_seconds": round(fetch_s, 4),
                                 "seconds": round(time.monotonic() - t0, 4)})

    def record_hash_sql(self, meta: list[str]) -> str:
        parts = ", ".join(f"{quote(c)} := CAST({quote(c)} AS VARCHAR)" for c in (*FIELDS, *meta))
        return f"md5(to_json(struct_pack({parts})))"

    def unpushed(self, con, meta: list[str], dataset_id: str | None = None) -> list[dict]:
        cols = ["id", *FIELDS, *meta]
        select = ", ".join(f"CAST({quote(c)} AS VARCHAR) AS {quote(c)}" for c in cols)
        rows = con.execute(
            f"SELECT {select}, {self.record_hash_sql(meta)} AS _hash FROM {quote(self.records)} r "
            f"WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.annotation_records p WHERE p.node = ? "
            f"AND p.record_id = CAST(r.id AS VARCHAR) AND p.record_hash = {self.record_hash_sql(meta)} "
            "AND p.dataset_id IS NOT DISTINCT FROM ?) ORDER BY 1", [self.name, dataset_id]).fetchall()
        names = [*cols, "_hash"]
        return [dict(zip(names, r, strict=True)) for r in rows]

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

    # ------------------------------------------------- local annotation
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


# ------------------------------------------------------------------ helpers
def annotation_nodes(project, names: list[str] | None = None) -> list[AnnotationNode]:
    nodes = [n for n in project.nodes.values() if isinstance(n, AnnotationNode)]
    if names:
        wanted = [project.node(n) for n in names]
        for n in wanted:
            if not isinstance(n, AnnotationNode):
                raise KtoBuildError(f"'{n.name}' is a {n.kind}, not an annotation node")
        return wanted
    return nodes


def pick_local_node(project, name: str | None) -> AnnotationNode:
    nodes = annotation_nodes(project, [name] if name else None)
    if not nodes:
        raise KtoBuildError("this project declares no annotation nodes", "sources.yml",
                            hint="add one under 'annotations:'")
    if name is None and len(nodes) > 1:
        raise KtoBuildError("more than one annotation node: name one (" + ", ".join(n.name for n in nodes) + ")")
    node = nodes[0]
    if node.backend != "local":
        raise KtoBuildError(f"'{node.name}' uses the {node.backend} backend (target {project.target}): answer in "
                            "Argilla, then 'kto-build run' pulls the answers", node.path, node.line_of("backend"))
    return node


def status(project, names: list[str] | None = None) -> list[dict]:
    """Per annotation node: records, pushed, completed (>= min_submitted submitted), answers per annotator,
    last pull. Reads the DuckDB file only; talks to no server."""
    db = project.database()
    states = db.read_states() if db.exists() else {}
    out = []
    for node in annotation_nodes(project, names):
        st = states.get(node.name)
        d: dict[str, Any] = {"node": node.name, "backend": node.backend, "records": None, "pushed": None,
                             "completed": None, "min_submitted": node.min_submitted, "answers": 0,
                             "log_rows": 0, "annotators": {}, "last_pull_at": None, "last_answer_at": None,
                             "built": st is not None}
        if st is not None and db.exists():
            with db.connect(read_only=True) as con:
                d.update(_status_counts(node, con))
            d["last_pull_at"] = st.extra.get("last_pull_at")
        out.append(d)
    return out


def _pushed(con, node: AnnotationNode) -> int:
    """Records pushed to the dataset the last run used (the push log is per server dataset)."""
    from ...state import read_states

    st = read_states(con).get(node.name)
    cols = {r[0] for r in con.execute(f"DESCRIBE {SCHEMA}.annotation_records").fetchall()}
    if st is None or "dataset_id" not in cols or not st.extra.get("dataset_id"):
        return con.execute(f"SELECT count(*) FROM {SCHEMA}.annotation_records WHERE node = ?",
                           [node.name]).fetchone()[0]
    return con.execute(f"SELECT count(*) FROM {SCHEMA}.annotation_records WHERE node = ? AND "
                       "coalesce(dataset_id, ?) = ?", [node.name, st.extra["dataset_id"], st.extra["dataset_id"]]
                       ).fetchone()[0]


def _status_counts(node: AnnotationNode, con) -> dict:
    from ...state import relations

    rels = relations(con)
    d: dict[str, Any] = {}
    if node.records.lower() in rels:
        d["records"] = con.execute(f"SELECT count(*) FROM {quote(node.records)}").fetchone()[0]
    d["pushed"] = _pushed(con, node) if node.backend == "argilla" else None
    if node.name not in rels:
        return d
    latest = quote(node.latest_view)
    d["log_rows"], last = con.execute(f"SELECT count(*), max(pulled_at) FROM {quote(node.name)}").fetchone()
    d["last_answer_at"] = last.isoformat() if last else None
    d["completed"] = con.execute(
        f"SELECT count(*) FROM (SELECT record_id FROM {latest} WHERE status = 'submitted' AND question = ? "
        "GROUP BY record_id HAVING count(*) >= ?)", [node.question, node.min_submitted]).fetchone()[0]
    per = con.execute(
        f"SELECT any_value(annotator ORDER BY pulled_at DESC), status, count(*) FROM {latest} WHERE question = ? "
        "GROUP BY annotator_id, status ORDER BY 1, 2", [node.question]).fetchall()
    annotators: dict[str, dict] = {}
    for who, st, n in per:
        annotators.setdefault(who, {})[st] = n
    d["annotators"] = annotators
    d["answers"] = sum(v.get("submitted", 0) for v in annotators.values())
    return d


def read_answers_file(node: AnnotationNode, path: Path) -> list[tuple[int, dict]]:
    """Parse an answers jsonl (record_id, annotator, value[, status]); errors name file:line."""
    shown = str(path)
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KtoBuildError(f"cannot read answers file: {exc.strerror}", shown) from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KtoBuildError(f"not JSON: {exc.msg}", shown, i, exc.colno) from None
        if not isinstance(obj, dict):
            raise KtoBuildError("each line must be a JSON object", shown, i)
        for key in ("record_id", "annotator"):
            if obj.get(key) in (None, ""):
                raise KtoBuildError(f"missing '{key}'", shown, i)
        obj.setdefault("status", "submitted")
        obj["record_id"] = str(obj["record_id"])
        out.append((i, obj))
    return out


def import_answers(project, node: AnnotationNode, path: Path) -> dict:
    """Append the answers in a jsonl file to the local log in one transaction (all or nothing)."""
    entries = read_answers_file(node, path)
    db = project.database()
    if not db.exists():
        raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
    with db.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            node.ensure_tables(con)
            node.record_columns(con)
            known = node.record_ids(con)
            latest = {(k[0], k[1]): v for k, v in node.latest_rows(con).items() if k[2] == node.question}
            rows = []
            base = utcnow()
            for n, (i, obj) in enumerate(entries):
                value = obj.get("value")
                value = None if value is None else str(value)
                annotator = str(obj["annotator"]).strip()
                node.check_answer(obj["record_id"], annotator, value, obj["status"], known, (str(path), i))
                key = (obj["record_id"], annotator.lower())
                prev = latest.get(key)
                if prev is not None and (prev[0], prev[1]) == (value, obj["status"]):
                    continue
                now = base + timedelta(microseconds=n)  # distinct times keep the file's order in the log
                created = prev[3] if prev is not None else now
                rows.append({"record_id": obj["record_id"], "question": node.question, "annotator_id": key[1],
                             "annotator": annotator, "value": value, "status": obj["status"],
                             "response_created_at": created, "response_updated_at": now, "pulled_at": now,
                             "backend": "local"})
                latest[key] = (value, obj["status"], now, created)
            node.append(con, rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return {"lines": len(entries), "appended": len(rows), "unchanged": len(entries) - len(rows)}


def export_pending(project, node: AnnotationNode, path: Path) -> int:
    """Write the records still needing answers as jsonl (record_id, prompt, completion, metadata)."""
    db = project.database()
    if not db.exists():
        raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
    with db.connect(read_only=True) as con:
        cols = node.record_columns(con)
        if node.name in _relations(con):
            ids = node.pending(con)
        else:
            ids = sorted(node.record_ids(con))
        meta = node.metadata_columns(cols)
        select = ", ".join(quote(c) for c in ("id", *FIELDS, *meta))
        rows = con.execute(f"SELECT {select} FROM {quote(node.records)} WHERE CAST(id AS VARCHAR) IN "
                           "(SELECT unnest(?::VARCHAR[])) ORDER BY CAST(id AS VARCHAR)", [ids]).fetchall()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            obj = {"record_id": str(r[0]), "prompt": r[1], "completion": r[2],
                   **{m: r[3 + i] for i, m in enumerate(meta)}, "annotator": None, "value": None}
            fh.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    return len(rows)


def _relations(con) -> dict:
    from ...state import relations

    return relations(con)
