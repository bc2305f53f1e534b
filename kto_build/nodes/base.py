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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..runner import NodeContext
    from ..yamlio import Spec


@dataclass
class Node:
    name: str
    path: str
    line: int
    depends_on: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    description: str = ""
    config: dict = field(default_factory=dict)

    kind: ClassVar[str] = "node"
    #: nodes that talk to a server are skipped by ``run --offline``
    network: ClassVar[bool] = False
    #: full-refresh rebuilds it (models, exports); never for generations/annotations
    refreshable: ClassVar[bool] = True
    #: short nodes (sources, SQL models) share the run's connection; long ones
    #: (generation, annotation, export) get their own per batch
    short: ClassVar[bool] = False
    #: the yamlio spec its config is validated against
    SPEC: ClassVar[Spec | None] = None

    @property
    def materialized(self) -> str:
        return "table"

    def definition(self) -> Any:
        return self.config

    def vars_used(self) -> list[str]:
        return []

    def stale_reason(self, ctx: NodeContext) -> str | None:
        return None

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
