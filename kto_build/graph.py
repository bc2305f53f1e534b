"""The node DAG: topological order, cycles, and dbt-style selectors.

Selectors: ``name``, ``+name`` (and its ancestors), ``name+`` (and its
descendants), ``+name+``, ``tag:x``, ``kind:generation``; as in dbt, selectors
separated by a space (or given as several ``--select``) are a union, joined by a
comma (``tag:x,kind:model``) an intersection; ``--exclude`` removes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import KtoBuildError, did_you_mean


@dataclass(eq=False)
class Graph:
    """The lineage DAG: nodes in build order, with their parents and children."""

    parents: dict[str, list[str]]
    children: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    tags: dict[str, set[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, nodes: dict) -> Graph:
        parents = {name: list(dict.fromkeys(n.depends_on)) for name, n in nodes.items()}
        g = cls(parents=parents, tags={k: set(n.tags) for k, n in nodes.items()},
                kinds={k: n.kind for k, n in nodes.items()})
        g.children = {name: [] for name in parents}
        for name, ps in parents.items():
            for p in ps:
                if p == name:
                    n = nodes[name]
                    raise KtoBuildError(f"'{name}' reads itself", n.path, n.line)
                if p in g.children:
                    g.children[p].append(name)
        g.order = g._toposort(nodes)
        return g

    def _toposort(self, nodes: dict) -> list[str]:
        # iterative DFS in name order, so the order is stable across runs
        state: dict[str, int] = {}
        order: list[str] = []
        for root in sorted(self.parents):
            if state.get(root):
                continue
            stack = [(root, iter(sorted(self.parents[root])))]
            state[root] = 1
            path = [root]
            while stack:
                name, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    state[name] = 2
                    order.append(name)
                    continue
                if nxt not in self.parents:
                    continue
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt):], nxt]
                    n = nodes[nxt]
                    raise KtoBuildError("dependency cycle: " + " -> ".join(reversed(cycle)), n.path, n.line)
                if not state.get(nxt):
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, iter(sorted(self.parents[nxt]))))
        return order

    def ancestors(self, name: str) -> set[str]:
        return self._walk(name, self.parents)

    def descendants(self, name: str) -> set[str]:
        return self._walk(name, self.children)

    @staticmethod
    def _walk(name: str, edges: dict[str, list[str]]) -> set[str]:
        seen: set[str] = set()
        todo = list(edges.get(name, []))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(edges.get(n, []))
        return seen

    # ---------------------------------------------------------- selection
    def select(self, select: Iterable[str] | None = None, exclude: Iterable[str] | None = None) -> list[str]:
        """Names chosen by the selectors, in build order."""
        chosen = set(self.parents) if not select else set().union(*(self._group(g) for g in _split(select)))
        for g in _split(exclude or []):
            chosen -= self._group(g)
        return [n for n in self.order if n in chosen]

    def _group(self, group: str) -> set[str]:
        """``a,b``: the nodes every comma-separated part selects (dbt's intersection)."""
        parts = [p for p in group.split(",") if p.strip()]
        if not parts:
            raise KtoBuildError(f"empty selector '{group}'")
        return set.intersection(*(self._one(p) for p in parts))

    def _one(self, selector: str) -> set[str]:
        sel = selector.strip()
        up, down = sel.startswith("+"), sel.endswith("+")
        core = sel.strip("+")
        if core.startswith("tag:"):
            tag = core[4:]
            base = {n for n, t in self.tags.items() if tag in t}
            if not base:
                known = set().union(*self.tags.values()) if self.tags else set()
                raise KtoBuildError(f"no node has tag '{tag}'", hint=did_you_mean(tag, known))
        elif core.startswith("kind:"):
            kind = core[5:]
            base = {n for n, k in self.kinds.items() if k == kind}
            if not base:
                raise KtoBuildError(f"no node of kind '{kind}'", hint=did_you_mean(kind, set(self.kinds.values())))
        else:
            name = core.lower()
            if name not in self.parents:
                raise KtoBuildError(f"unknown node '{core}' in selector '{sel}'",
                                    hint=did_you_mean(name, self.parents) or "see 'kto-build ls'")
            base = {name}
        out = set(base)
        for n in base:
            if up:
                out |= self.ancestors(n)
            if down:
                out |= self.descendants(n)
        return out


def _split(selectors: Iterable[str]) -> list[str]:
    """Space-separated groups (a union); each group keeps its commas (an intersection)."""
    out: list[str] = []
    for s in selectors:
        out.extend(part for part in s.replace(" ,", ",").replace(", ", ",").split() if part)
    return out
