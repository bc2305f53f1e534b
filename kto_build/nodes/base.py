"""The interface every node kind shares.

A node has a name (its table), the file and line that define it, the nodes it
reads, and:

- ``definition()``: the parts of its definition that decide its content; the
  engine hashes them (plus the project vars the node reads) into the
  fingerprint. Must be cheap and import nothing heavy.
- ``stale_reason(ctx)``: a reason to rebuild that the engine cannot see from
  fingerprints and upstream versions (an input file changed, failed rows to
  retry, a remote server to pull from). None when there is none.
- ``run(ctx)``: bring the table up to date. Every write happens inside
  ``with ctx.transaction() as tx:``; the last one calls ``tx.save(...)`` so the
  table and the node's state row commit together.

The engine gives ``run`` a ``NodeContext`` (below); the node returns a
``NodeResult``. Nodes import nothing from ``kto_build.runner``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..sql import fingerprint as hash_parts
from ..state import NodeState, relations, utcnow, write_state
from ..yamlio import key_line

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from ..graph import Graph
    from ..state import Database
    from ..yamlio import Spec


class ProjectView(Protocol):
    """What a node may read of the loaded project (``kto_build.project.Project`` is one).

    Nodes never import ``kto_build.project``: the engine imports the nodes, not
    the other way round (tests/engine/test_layout.py).
    """

    name: str
    root: Path
    target: str
    target_dir: Path
    config: dict
    vars: dict
    nodes: dict[str, Node]
    graph: Graph

    def database(self) -> Database: ...


@dataclass(eq=False)  # identity: two nodes are never equal by their fields
class Node:
    """A node of the lineage graph: the contract every kind implements (docs/architecture.md)."""

    name: str
    path: str
    line: int
    depends_on: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    description: str = ""
    config: dict = field(default_factory=dict)
    #: the validated YAML mapping that defined the node (a ``yamlio.YMap``), for the line of a key in errors
    cfg: Any = field(default=None, repr=False, compare=False)

    kind: ClassVar[str] = "node"
    #: False for nodes that write files, not a table (exports): no "table missing" staleness
    produces_table: ClassVar[bool] = True
    #: full-refresh rebuilds it (models, exports); never for generations/annotations
    refreshable: ClassVar[bool] = True
    #: short nodes (sources, SQL models) share the run's connection; long ones
    #: (generation, annotation, export) get their own per batch
    short: ClassVar[bool] = False
    #: the yamlio spec its config is validated against
    SPEC: ClassVar[Spec | None] = None

    @classmethod
    def from_config(cls, name: str, cfg: Any, project: ProjectView) -> Node:
        """Build the node from its validated YAML mapping (``for_target`` overrides applied)."""
        raise NotImplementedError(f"{cls.__name__} is not configured from YAML")

    @property
    def materialized(self) -> str:
        return "table"

    @property
    def network(self) -> bool:
        """True if it talks to a server: ``run --offline`` skips it."""
        return False

    @property
    def aliases(self) -> tuple[str, ...]:
        """Relations it creates besides its table, which SQL models may read (they then depend on it)."""
        return ()

    def line_of(self, key: str, *sub: str) -> int:
        """The YAML line of ``key`` (or of ``key: {sub: ...}``) in the mapping that defined the node;
        the node's own line when it has no such mapping."""
        return key_line(self.cfg, key, *sub, default=self.line)

    def definition(self) -> Any:
        return self.config

    def vars_used(self) -> list[str]:
        return []

    def stale_reason(self, ctx: NodeContext) -> str | None:
        return None

    def db_facts(self, con) -> dict:
        """What ``stale_reason`` reads from the database besides the state rows (kept in the run snapshot,
        kto_build/snapshot.py, so a no-op run need not open the file; ``ctx.facts`` then holds them)."""
        return {}

    def plan_detail(self, ctx: NodeContext) -> str | None:
        """Extra words for ``plan`` (e.g. how many calls a generator would make)."""
        return None

    def run(self, ctx: NodeContext) -> NodeResult:
        raise NotImplementedError

    def summary(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "materialized": self.materialized,
            "path": self.path,
            "line": self.line,
            "depends_on": list(self.depends_on),
            "tags": list(self.tags),
            "description": self.description,
        }


@dataclass
class NodeResult:
    """What a node's run returns; the engine adds the timing."""

    rows: int | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    #: set to "failed" by nodes that finished but must fail the run (e.g. an
    #: export whose format check found errors)
    status: str = "built"
    extra: dict = field(default_factory=dict)
    #: a model's data-test results (``TestResult.as_dict()``), when it has tests
    tests: list[dict] | None = None


# ------------------------------------------------------------------ reporting
class Reporter:
    """Where the engine says what it is doing. The default says nothing."""

    def node_start(self, node: Node, reason: str) -> None: ...

    def node_end(self, result: dict) -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Any]:
        yield NullProgress()


class NullProgress:
    def advance(self, n: int = 1) -> None: ...

    def update(self, **kw) -> None: ...


# ------------------------------------------------------------------ contexts
@dataclass(eq=False)
class Tx:
    """A node's write transaction: what it saves commits with its data, or nothing does."""

    con: duckdb.DuckDBPyConnection
    ctx: NodeContext
    saved: NodeState | None = None

    def save(self, rows: int | None = None, version_parts: list | None = None, extra: dict | None = None,
             data_version: str | None = None) -> None:
        """Write the node's state row in this transaction."""
        ctx = self.ctx
        version = data_version or hash_parts(ctx.fingerprint, sorted(ctx.input_versions.items()), version_parts)
        self.saved = NodeState(ctx.node.name, ctx.node.kind, ctx.fingerprint, version, dict(ctx.input_versions),
                               rows, utcnow(), time.monotonic() - ctx.started, extra or {})
        write_state(self.con, self.saved)


@dataclass(eq=False)
class NodeContext:
    """What a node's ``run`` and ``stale_reason`` may use."""

    project: ProjectView
    node: Node
    fingerprint: str
    state: NodeState | None
    input_versions: dict[str, str]
    states: dict[str, NodeState]
    offline: bool = False
    full_refresh: bool = False
    reporter: Reporter = field(default_factory=Reporter)
    started: float = field(default_factory=time.monotonic)
    saved: NodeState | None = None
    #: the run's snapshot of relation name -> 'table' | 'view' (None: ask the database)
    relations: dict | None = None
    db: Database | None = None
    #: this node's ``db_facts`` from a snapshot of the unchanged database file (None: read the database)
    facts: dict | None = None

    def connect(self, read_only: bool = False):
        return self.db.connect(read_only=read_only)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write connection in one transaction; commits on success, rolls back on error."""
        with self.db.connect() as con:
            con.execute("BEGIN TRANSACTION")
            tx = Tx(con, self)
            try:
                yield tx
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                raise
        if tx.saved is not None:
            self.saved = tx.saved

    def relation_kind(self, con, name: str) -> str | None:
        """'table' or 'view' if ``name`` exists in schema main."""
        if self.relations is not None:
            return self.relations.get(name.lower())
        return relations(con).get(name.lower())
