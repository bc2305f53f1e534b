"""Plan (what is stale and why) and execute, one node at a time.

A node is rebuilt iff it is new, its fingerprint changed, an upstream data
version changed, its table went missing, ``--full-refresh`` asks (models and
exports only), or the node itself says so (``stale_reason``). Each node runs
in its own connection; its table and state row commit in one transaction, so a
failing node leaves the previous table in place and later independent nodes
still run.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import duckdb

from . import __version__, snapshot
from .errors import KtoBuildError
from .nodes.base import Node, NodeContext, Reporter
from .redact import redact
from .state import SCHEMA, append_history, read_states, relations, utcnow

if TYPE_CHECKING:
    from .project import Project



@dataclass
class PlanItem:
    """One node's line in a plan: build or skip, and why."""

    name: str
    kind: str
    action: str  # build | skip
    reason: str
    detail: str | None = None


@dataclass
class Plan:
    """What a run would build, in build order."""

    items: list[PlanItem]
    target: str

    def to_build(self) -> list[PlanItem]:
        return [i for i in self.items if i.action == "build"]

    def as_dicts(self) -> list[dict]:
        return [asdict(i) for i in self.items]


@dataclass
class RunResults:
    """What a run did: per node status, rows, seconds and messages (run_results.json)."""

    run_id: str
    target: str
    started_at: str
    seconds: float
    nodes: list[dict]

    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and not any(n["status"] == "failed" for n in self.nodes)

    def calls(self) -> tuple[int, int]:
        """LLM calls of this run: (ok, failed), summed over the nodes that made any."""
        ex = [n.get("extra") or {} for n in self.nodes]
        return sum(e.get("calls_ok", 0) for e in ex), sum(e.get("calls_failed", 0) for e in ex)

    def count(self, status: str) -> int:
        return sum(1 for n in self.nodes if n["status"] == status)

    def node(self, name: str) -> dict:
        return next(n for n in self.nodes if n["name"] == name)

    def to_json(self) -> dict:
        return {"metadata": {"kto_build_version": __version__, "run_id": self.run_id, "target": self.target,
                             "generated_at": self.started_at},
                "elapsed_seconds": round(self.seconds, 4), "success": self.ok, "interrupted": self.interrupted,
                "calls": dict(zip(("ok", "failed"), self.calls(), strict=True)), "nodes": self.nodes}


# --------------------------------------------------------------------- runner
class Runner:
    def __init__(self, project: Project, reporter: Reporter | None = None):
        self.project = project
        self.reporter = reporter or Reporter()
        self.db = project.database()
        self._fps: dict[str, str] = {}
        self._rels: dict | None = None
        #: node -> its db_facts, from a snapshot of the unchanged database file (empty: read the database)
        self._facts: dict[str, dict] = {}

    def fp(self, node: Node) -> str:
        if node.name not in self._fps:
            self._fps[node.name] = self.project.fingerprint(node)
        return self._fps[node.name]

    def _context(self, node: Node, states: dict, offline=False, full_refresh=False) -> NodeContext:
        return NodeContext(self.project, node, self.fp(node), states.get(node.name),
                           {p: states[p].data_version for p in node.depends_on if p in states}, states,
                           offline=offline, full_refresh=full_refresh, reporter=self.reporter,
                           relations=self._rels, db=self.db, facts=self._facts.get(node.name))

    def reason(self, node: Node, states: dict, rels: dict, rebuilding: set[str], full_refresh: bool,
               offline: bool) -> tuple[str | None, NodeContext]:
        """Why ``node`` must rebuild, or None."""
        ctx = self._context(node, states, offline, full_refresh)
        st = ctx.state
        if st is None:
            return "new", ctx
        if st.fingerprint != ctx.fingerprint:
            return "definition changed", ctx
        for p in node.depends_on:
            if p in rebuilding:
                return f"upstream '{p}' will rebuild", ctx
            if p in states and states[p].data_version != st.inputs.get(p):
                return f"upstream '{p}' changed", ctx
        if node.produces_table and node.name not in rels:
            return "table missing", ctx
        if full_refresh and node.refreshable:
            return "full refresh", ctx
        return node.stale_reason(ctx), ctx

    def _snapshot(self, write: bool) -> tuple[dict, dict]:
        if write:
            with self.db.connect() as con:
                self.db.ensure_schema(con)
                return read_states(con), relations(con)
        if not self.db.exists():
            return {}, {}
        snap = snapshot.load(self.db.path)
        if snap is not None:  # the file is the one the last run described: no need to open it
            states, rels, self._facts = snap
            return states, rels
        with self.db.connect(read_only=True) as con:
            return read_states(con), relations(con)

    # ------------------------------------------------------------------ plan
    def plan(self, select=None, exclude=None, full_refresh=False, offline=False) -> Plan:
        names = self.project.graph.select(select, exclude)
        states, rels = self._snapshot(write=False)
        items: list[PlanItem] = []
        rebuilding: set[str] = set()
        for name in names:
            node = self.project.nodes[name]
            if offline and node.network:
                items.append(PlanItem(name, node.kind, "skip", "offline"))
                continue
            why, ctx = self.reason(node, states, rels, rebuilding, full_refresh, offline)
            if why:
                rebuilding.add(name)
                items.append(PlanItem(name, node.kind, "build", why, node.plan_detail(ctx)))
            else:
                items.append(PlanItem(name, node.kind, "skip", "up to date"))
        self.write_manifest()
        return Plan(items, self.project.target)

    def ls(self, select=None, exclude=None) -> list[dict]:
        plan = {i.name: i for i in self.plan(select, exclude).items}
        out = []
        for name in self.project.graph.select(select, exclude):
            node = self.project.nodes[name]
            item = plan[name]
            d = node.summary()
            d["status"] = "up to date" if item.action == "skip" else f"stale: {item.reason}"
            out.append(d)
        return out

    # ------------------------------------------------------------------- run
    def run(self, select=None, exclude=None, full_refresh=False, offline=False) -> RunResults:
        run_id = uuid.uuid4().hex[:12]
        started_wall = utcnow()
        t0 = time.monotonic()
        names = self.project.graph.select(select, exclude)
        with self.db.writer_lock():
            skipped = self._noop(names, full_refresh, offline) if names else None
            if skipped is not None:  # nothing to do, decided from the snapshot: the file was not opened
                rr = RunResults(run_id, self.project.target, started_wall.isoformat(), time.monotonic() - t0,
                                skipped)
            else:
                rr = self._build(names, run_id, started_wall, t0, full_refresh, offline)
                snapshot.save(self.db, self.project.nodes)
        self.write_artifacts(rr)
        return rr

    def _noop(self, names: list[str], full_refresh: bool, offline: bool) -> list[dict] | None:
        """The results of a run that builds nothing, if the snapshot shows that it would; else None."""
        snap = snapshot.load(self.db.path)
        if snap is None:
            return None
        states, self._rels, self._facts = snap
        out = []
        for name in names:
            node = self.project.nodes[name]
            base = {"name": name, "kind": node.kind, "seconds": 0.0, "rows": None, "message": "", "reason": ""}
            if offline and node.network:
                out.append({**base, "status": "skipped", "message": "offline: kept the stored table"})
                continue
            try:
                missing = any(p not in states for p in node.depends_on)
                if missing or self.reason(node, states, self._rels, set(), full_refresh, offline)[0]:
                    break
            except KtoBuildError:
                break
            out.append({**base, "status": "skipped", "message": "up to date",
                        "rows": states[name].rows if name in states else None})
        else:
            return out
        self._rels, self._facts = None, {}
        return None

    def _build(self, names, run_id: str, started_wall, t0: float, full_refresh: bool, offline: bool) -> RunResults:
        results: list[dict] = []
        rr = None
        self.db.hold()  # one connection for the snapshot and the staleness checks; released before long nodes
        states, rels = self._snapshot(write=True)
        self._rels = rels
        bad: dict[str, str] = {}  # failed or blocked node -> root failure
        try:
            for name in names:
                node = self.project.nodes[name]
                if node.short:
                    self.db.let_readers_in()  # a waiting reader gets in between two nodes
                    self.db.hold()
                try:
                    res = self._run_one(node, states, rels, bad, full_refresh, offline)
                except KeyboardInterrupt:  # what ran is committed; say so in run_results.json too
                    results.append({"name": name, "kind": node.kind, "status": "interrupted", "rows": None,
                                    "seconds": 0.0, "message": "interrupted (Ctrl+C)", "reason": ""})
                    rr = RunResults(run_id, self.project.target, started_wall.isoformat(),
                                    time.monotonic() - t0, results, interrupted=True)
                    raise
                results.append(res)
                if res["status"] == "failed" or res.get("blocked_by"):
                    bad[name] = res.get("blocked_by") or name
                if res["status"] == "built":
                    rels[name] = node.materialized
            seconds = time.monotonic() - t0
            rr = RunResults(run_id, self.project.target, started_wall.isoformat(), seconds, results)
            if any(r["status"] != "skipped" for r in results) or not names:
                self._log_run(rr, started_wall)
        finally:
            self.db.release()
            if rr is not None and rr.interrupted:
                self.write_artifacts(rr)
        return rr

    def _run_one(self, node: Node, states, rels, bad: dict, full_refresh: bool, offline: bool) -> dict:
        base = {"name": node.name, "kind": node.kind, "seconds": 0.0, "rows": None, "message": "", "reason": ""}
        failed_parents = [p for p in node.depends_on if p in bad]
        if failed_parents:
            skipped = {**base, "status": "skipped", "blocked_by": bad[failed_parents[0]],
                       "message": f"upstream '{failed_parents[0]}' failed"}
            self.reporter.node_end(skipped)  # a SKIP line, as dbt prints one
            return skipped
        if offline and node.network:
            return {**base, "status": "skipped", "message": "offline: kept the stored table"}
        missing = [p for p in node.depends_on if p not in states]
        if missing:
            return {**base, "status": "failed",
                    "message": f"upstream '{missing[0]}' has never been built "
                               f"(select it too: --select +{node.name})"}
        t = time.monotonic()
        try:
            why, ctx = self.reason(node, states, rels, set(), full_refresh, offline)
        except KtoBuildError as exc:
            return {**base, "status": "failed", "message": exc.one_line()}
        if not why:
            return {**base, "status": "skipped", "message": "up to date",
                    "rows": states[node.name].rows if node.name in states else None}
        if not node.short:
            self.db.release()  # a long node opens its own connections, so readers get in between its batches
        self.reporter.node_start(node, why)
        out = {**base, "reason": why}
        try:
            result = node.run(ctx)
            if ctx.saved is None:
                raise KtoBuildError(f"{node.kind} '{node.name}' finished without saving its state (a kto-build bug)")
            states[node.name] = ctx.saved
            out.update(status=result.status, rows=result.rows, message=result.message)
            if result.warnings:
                out["warnings"] = list(result.warnings)
            if result.extra:
                out["extra"] = result.extra
            if result.tests is not None:
                out["tests"] = list(result.tests)
        except KtoBuildError as exc:
            out.update(status="failed", message=exc.one_line())
            partial = getattr(exc, "result", None)  # committed, but failed by policy (e.g. failed LLM calls)
            if partial is not None and ctx.saved is not None:
                states[node.name] = ctx.saved
                out.update(rows=partial.rows, warnings=list(partial.warnings), extra=partial.extra)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # an unexpected error: one line here, the traceback in the log file
            self._log_traceback(node)
            first = (str(exc).strip().splitlines() or [""])[0]
            out.update(status="failed", message=f"{node.path}:{node.line}: {type(exc).__name__}: {first} "
                                                f"(traceback in {self._log_file_display()})")
        out["seconds"] = round(time.monotonic() - t, 4)
        out["message"] = redact(out.get("message"))
        if out.get("warnings"):
            out["warnings"] = [redact(w) for w in out["warnings"]]
        if out["status"] == "failed" and ctx.saved is None:
            self._history_failed(node, out)
        self.reporter.node_end(out)
        return out

    def _history_failed(self, node: Node, out: dict) -> None:
        """A build that failed and stored nothing still gets its line in the build history (status 'failed',
        the one-line reason), in its own transaction; if even that cannot be written the run goes on."""
        try:
            with self.db.connect() as con:
                append_history(con, node.name, utcnow(), "failed", None, out["seconds"], self.fp(node),
                               out["message"])
        except (KtoBuildError, duckdb.Error):
            pass

    # ------------------------------------------------------------ artifacts
    def _log_file_display(self) -> str:
        return str((self.project.target_dir / "kto_build.log").relative_to(self.project.root)) \
            if self.project.target_dir.is_relative_to(self.project.root) else str(self.project.target_dir)

    def _log_traceback(self, node: Node) -> None:
        import traceback  # lazy: only a crashed node needs it

        self.project.target_dir.mkdir(parents=True, exist_ok=True)
        with open(self.project.target_dir / "kto_build.log", "a", encoding="utf-8") as fh:
            fh.write(f"--- {utcnow().isoformat()} {node.kind} {node.name}\n{traceback.format_exc()}\n")

    def _log_run(self, rr: RunResults, started) -> None:
        with self.db.connect() as con:
            con.execute(f"INSERT INTO {SCHEMA}.runs VALUES (?, 'run', ?, ?, ?, ?, ?, ?)",
                        [rr.run_id, rr.target, started, utcnow(), rr.count("built"), rr.count("skipped"),
                         rr.count("failed")])

    def manifest(self) -> dict:
        p = self.project
        nodes = {}
        for name in p.graph.order:
            n = p.nodes[name]
            d = n.summary()
            d["fingerprint"] = self.fp(n)
            d["vars"] = n.vars_used()
            nodes[name] = d
        edges = [[parent, name] for name in p.graph.order for parent in p.graph.parents[name]]
        return {"metadata": {"kto_build_version": __version__, "project": p.name, "target": p.target,
                             "database": str(p.database_path)},
                "nodes": nodes, "edges": edges}

    def write_manifest(self) -> None:
        """manifest.json, compact as dbt writes it (json's C encoder; indent=2 takes the slow Python one),
        and only when it changed: it describes the project, so a no-op run leaves the same file."""
        text = json.dumps(self.manifest(), default=str)
        path = self.project.target_dir / "manifest.json"
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        self._write_json("manifest.json", text)

    def write_artifacts(self, rr: RunResults) -> None:
        self.write_manifest()
        self._write_json("run_results.json", rr.to_json())

    def _write_json(self, name: str, data: dict | str) -> None:
        d = self.project.target_dir
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{name}.tmp"
        tmp.write_text(data if isinstance(data, str) else json.dumps(data, indent=2, default=str), encoding="utf-8")
        tmp.replace(d / name)
