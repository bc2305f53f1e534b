"""Load and validate a project: project.yml, sources.yml, models/*.sql, models/*.yml.

``Project`` is also the Python API: every CLI command is one method call here,
returning data, not printed text (a notebook can do what the CLI does).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sql as sqlmod
from .errors import KtoBuildError, did_you_mean
from .graph import Graph
from .nodes import KINDS, node_class
from .nodes.base import Node
from .nodes.model import ModelNode
from .parse_cache import ParseCache
from .state import Database
from .yaml_cache import YamlCache
from .yamlio import ANY, BOOL, SCALAR, STR, Dict, List, Map, OneOf, Scalar, YMap, load_yaml, tag_list, validate

DEFAULT_DATABASE = "target/kto_build.duckdb"
MATERIALIZATIONS = ("table", "view")

TAGS = OneOf(STR, List(STR), what="a tag or a list of tags")
TARGET_SPEC = Map({"database": STR, "vars": Dict(ANY), "description": STR})
PROJECT_SPEC = Map(
    {"name": STR, "version": SCALAR, "description": STR, "license": STR, "database": STR, "target": STR,
     "targets": Dict(TARGET_SPEC), "vars": Dict(ANY),
     "models": Map({"materialized": Scalar(str, choices=MATERIALIZATIONS), "tags": TAGS}), "exports": Dict(ANY)},
    required=("name",),
)
SOURCES_SPEC = Map({"version": SCALAR, "prompts": Dict(ANY), "generators": Dict(ANY), "annotations": Dict(ANY),
                    "judges": Dict(ANY)})
TEST_SPEC = OneOf(STR, Dict(ANY), what="a test name or a mapping {test: {options}}")
COLUMN_SPEC = Map({"name": STR, "description": STR, "tests": List(TEST_SPEC), "data_tests": List(TEST_SPEC),
                   "data_type": STR, "meta": ANY}, required=("name",))
MODEL_DOC_SPEC = Map(
    {"name": STR, "description": STR, "materialized": Scalar(str, choices=MATERIALIZATIONS), "tags": TAGS,
     "columns": List(COLUMN_SPEC), "tests": List(TEST_SPEC), "data_tests": List(TEST_SPEC), "meta": ANY,
     "enabled": BOOL},
    required=("name",),
)
MODELS_YML_SPEC = Map({"version": SCALAR, "models": List(MODEL_DOC_SPEC)})


def _overlay(cfg: YMap, target: str) -> YMap:
    """Apply a node's ``for_target: {<target>: {...}}`` overrides for the current target."""
    if not isinstance(cfg, dict) or "for_target" not in cfg:
        return cfg
    over = cfg["for_target"]
    if not isinstance(over, dict):
        raise KtoBuildError("'for_target' must map target names to overrides", cfg.path, cfg.line_of("for_target"))
    out = copy.copy(cfg)
    out.key_lines = dict(cfg.key_lines)
    del out["for_target"]
    for key, value in (over.get(target) or {}).items():
        out[key] = value
        if isinstance(over[target], YMap):
            out.key_lines[key] = over[target].line_of(key)
    return out


def _wire_judges(nodes: dict) -> None:
    """Each annotation node lists the judges that answer its question (``suggestions_from``) and reads
    them (depends_on), so its push runs after them."""
    for judge in [n for n in nodes.values() if n.kind == "judge"]:
        ann = nodes[judge.annotation]
        ann.suggestions_from = (*getattr(ann, "suggestions_from", ()), judge.name)
        if judge.name not in ann.depends_on:
            ann.depends_on.append(judge.name)


def _value_col(path: Path, line: int | None, key: str) -> int | None:
    """The 1-based column where ``key: value`` has its value on ``line``."""
    if not line:
        return None
    text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    at = text.find(key + ":")
    if at < 0:
        return None
    rest = text[at + len(key) + 1:]
    return at + len(key) + 2 + (len(rest) - len(rest.lstrip()))


@dataclass(eq=False)
class Project:
    """A loaded project: its config, its nodes and their graph, for one target and its vars."""
    root: Path
    name: str
    target: str
    database_path: Path
    vars: dict[str, Any]
    config: dict
    nodes: dict[str, Node] = field(default_factory=dict)
    graph: Graph | None = None
    #: parsed YAML files kept in target/yaml_cache.json (kto_build/yaml_cache.py), None: parse each time
    yaml_cache: Any = field(default=None, repr=False, compare=False)
    alias_owners: dict[str, Node] = field(default_factory=dict, repr=False, compare=False)  #: alias -> its node

    # --------------------------------------------------------------- loading
    @classmethod
    def load(cls, root: str | Path = ".", target: str | None = None, vars: dict | None = None) -> Project:  # noqa: A002
        root = Path(root).resolve()
        pfile = root / "project.yml"
        if not pfile.exists():
            raise KtoBuildError(f"no project.yml in {root} (run 'kto-build init' to create a project)")
        ycache = YamlCache(root / "target" / "yaml_cache.json")
        cfg = load_yaml(pfile, "project.yml", ycache)
        validate(cfg, PROJECT_SPEC, "project.yml", "project.yml", 1)

        targets = cfg.get("targets") or {}
        chosen = target or cfg.get("target") or ("dev" if "dev" in targets else None) or "default"
        if targets and chosen not in targets:
            hint = did_you_mean(chosen, targets) or "targets: " + ", ".join(targets)
            raise KtoBuildError(f"unknown target '{chosen}'", "project.yml", cfg.line_of("targets"), hint=hint)
        tcfg = targets.get(chosen) or {}
        project_vars = dict(cfg.get("vars") or {})
        project_vars.update(tcfg.get("vars") or {})
        project_vars.update(vars or {})
        db = tcfg.get("database") or cfg.get("database") or DEFAULT_DATABASE
        project = cls(root=root, name=cfg["name"], target=chosen, database_path=(root / db),
                      vars=project_vars, config=cfg, yaml_cache=ycache)
        project._load_nodes()
        project._check_positive_label(tcfg, vars or {})
        if ycache.path.parent.is_dir():  # target/ (made by the first run); no folder is made just for it
            ycache.save()
        return project

    def _check_positive_label(self, tcfg: dict, cli_vars: dict) -> None:
        """``positive_label`` must be one of every annotation's labels (else every vote counts as down)."""
        if "positive_label" not in self.vars:
            return
        value = self.vars["positive_label"]
        for node in self.nodes.values():
            labels = getattr(node, "labels", None)
            if node.kind != "annotation" or not labels or value in labels:
                continue
            if "positive_label" in cli_vars:
                path, line, col = "--vars", None, None
            else:
                where = tcfg.get("vars") if "positive_label" in (tcfg.get("vars") or {}) else self.config.get("vars")
                path, line = "project.yml", where.line_of("positive_label") if isinstance(where, YMap) else None
                col = _value_col(self.root / "project.yml", line, "positive_label")
            near = [m for m in labels if str(m).lower() == str(value).lower()]
            hint = f"did you mean '{near[0]}'?" if near else did_you_mean(str(value), map(str, labels))
            raise KtoBuildError(f"positive_label {value!r} is not one of the labels of annotation '{node.name}': "
                                f"{', '.join(map(str, labels))}", path, line, col, hint=hint)

    def _add(self, node: Node, where: tuple[str, int]) -> None:
        _refuse_reserved(node, self.nodes, self.alias_owners, where)
        if node.name in self.nodes:
            other = self.nodes[node.name]
            raise KtoBuildError(f"'{node.name}' is defined twice (also a {other.kind} at {other.path}:{other.line})",
                                *where)
        self.nodes[node.name] = node
        self.alias_owners.update((a.lower(), node) for a in node.aliases)

    def _load_nodes(self) -> None:
        sources_file = self.root / "sources.yml"
        if sources_file.exists():
            sources = load_yaml(sources_file, "sources.yml", self.yaml_cache)
            validate(sources, SOURCES_SPEC, "sources.yml", "sources.yml", 1)
            for section in ("prompts", "generators", "annotations", "judges"):
                for name, cfg in (sources.get(section) or {}).items():
                    self._add_configured(section, name, cfg, "sources.yml", sources[section].line_of(name))
            _wire_judges(self.nodes)
        for name, cfg in (self.config.get("exports") or {}).items():
            self._add_configured("exports", name, cfg, "project.yml", self.config["exports"].line_of(name))
        self._load_models()
        self.graph = Graph.build(self.nodes)

    def _add_configured(self, section: str, name: str, cfg, path: str, line: int) -> None:
        if not isinstance(cfg, dict):
            raise KtoBuildError(f"'{name}' in {section} must be a mapping", path, line)
        cfg = _overlay(cfg, self.target)
        cls = node_class(section)
        if cls.SPEC is not None:
            validate(cfg, cls.SPEC, f"{section} '{name}'", path, line)
        node = cls.from_config(str(name), cfg, self)
        node.path, node.line = path, line
        self._add(node, (path, line))

    def _load_models(self) -> None:
        models_dir = self.root / "models"
        if not models_dir.is_dir():
            return
        defaults = self.config.get("models") or {}
        docs: dict[str, tuple[dict, str]] = {}
        for yml in sorted([*models_dir.glob("**/*.yml"), *models_dir.glob("**/*.yaml")]):
            rel = str(yml.relative_to(self.root))
            data = load_yaml(yml, rel, self.yaml_cache)
            validate(data, MODELS_YML_SPEC, rel, rel, 1)
            for entry in data.get("models") or []:
                if entry["name"] in docs:
                    raise KtoBuildError(f"model '{entry['name']}' is documented twice (also in "
                                        f"{docs[entry['name']][1]})", rel, entry.line)
                docs[entry["name"]] = (entry, rel)
        sql_files = sorted(models_dir.glob("**/*.sql"))
        names = {f.stem.lower() for f in sql_files}
        for name, (entry, rel) in docs.items():
            if name.lower() not in names:
                raise KtoBuildError(f"'{name}' is documented but there is no models/{name}.sql", rel, entry.line,
                                    hint=did_you_mean(name, names))
        # extra relations a node creates beside its table (an annotation's <node>_latest view)
        aliases = {a: n.name for n in self.nodes.values() for a in n.aliases}
        cache = ParseCache(self.target_dir / "parse_cache.json")
        for f in sql_files:
            rel = str(f.relative_to(self.root))
            name = f.stem.lower()
            text = f.read_text(encoding="utf-8")
            parsed = cache.lookup(rel, text)
            if parsed is None:
                tree = sqlmod.parse(text, rel)
                parsed = {"refs": [[r.name, r.line, r.col] for r in sqlmod.references(tree)],
                          "vars": sqlmod.vars_used(tree), "normalized": sqlmod.normalized(tree)}
                cache.store(rel, text, parsed)
            doc, _ = docs.get(f.stem, docs.get(name, ({}, None)))
            if doc.get("enabled") is False:
                continue
            refs = [sqlmod.Reference(*r) for r in parsed["refs"]]
            node = ModelNode(
                name=name, path=rel, line=1,
                depends_on=list(dict.fromkeys(aliases.get(r.name, r.name) for r in refs)),
                tags=tag_list(defaults.get("tags")) + tag_list(doc.get("tags")),
                description=doc.get("description", ""), config=dict(doc),
                sql=text, normalized_sql=parsed["normalized"], used_vars=parsed["vars"],
                materialization=doc.get("materialized") or defaults.get("materialized") or "table",
                tests=list(doc.get("data_tests") or doc.get("tests") or []),
                columns=list(doc.get("columns") or []), references=refs,
            )
            self._add(node, (rel, 1))
        cache.save({str(f.relative_to(self.root)) for f in sql_files})
        self._check_references()

    def _sources_hint(self) -> str | None:
        """Why no source, generator or annotation is defined, when sources.yml is missing or empty."""
        f = self.root / "sources.yml"
        if not f.exists():
            return "there is no sources.yml defining prompts, generators or annotations"
        text = f.read_text(encoding="utf-8", errors="replace")
        if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
            return "sources.yml is empty: define 'prompts:', 'generators:' or 'annotations:' there"
        return None

    def _check_references(self) -> None:
        known = set(self.nodes)
        aliases = {a for n in self.nodes.values() for a in n.aliases}
        for node in self.nodes.values():
            if not isinstance(node, ModelNode):
                continue
            for ref in node.references:
                if ref.name not in known and ref.name not in aliases:
                    hint = did_you_mean(ref.name, known) or "known: " + ", ".join(sorted(known))
                    if not any(n.kind != "model" for n in self.nodes.values()):
                        hint = self._sources_hint() or hint
                    raise KtoBuildError(f"unknown table '{ref.name}'", node.path, ref.line, ref.col, hint=hint)
        self._check_data_tests()
        for node in self.nodes.values():
            for dep in node.depends_on:
                if dep not in known:
                    hint = did_you_mean(dep, known) or "known: " + ", ".join(sorted(known))
                    raise KtoBuildError(f"{node.kind} '{node.name}' reads unknown node '{dep}'", node.path,
                                        node.line, hint=hint)

    def _check_data_tests(self) -> None:
        """Data test definitions are checked when the project loads, unless the check passed for the same
        definitions and node names (yaml_cache.passed: then datatests is not even imported)."""
        tested = [n for n in self.nodes.values() if isinstance(n, ModelNode) and (n.tests or n.columns)]
        inputs = [sorted(self.nodes), [[n.name, n.path, n.config, n.tests, n.columns] for n in tested]]
        if tested and not (self.yaml_cache and self.yaml_cache.passed("datatests", inputs)):
            from .datatests import compile_tests

            for node in tested:
                compile_tests(node, self.nodes, parse_sql=False)
            if self.yaml_cache is not None:
                self.yaml_cache.mark_passed("datatests", inputs)

    # -------------------------------------------------------------- helpers
    def database(self) -> Database:
        try:
            shown = str(self.database_path.relative_to(self.root))
        except ValueError:
            shown = str(self.database_path)
        return Database(self.database_path, self.vars, display=shown)

    @property
    def target_dir(self) -> Path:
        return self.database_path.parent

    def node(self, name: str) -> Node:
        key = name.lower()
        if key not in self.nodes:
            raise KtoBuildError(f"unknown node '{name}'", hint=did_you_mean(key, self.nodes)
                                or "see 'kto-build ls'")
        return self.nodes[key]

    def fingerprint(self, node: Node) -> str:
        used = {v: self.vars.get(v) for v in node.vars_used()}
        missing = [v for v in used if v not in self.vars]
        if missing:
            raise KtoBuildError(f"getvariable('{missing[0]}') reads a var that project.yml does not define",
                                node.path, node.line, hint=did_you_mean(missing[0], self.vars)
                                or "add it under 'vars:' in project.yml")
        return sqlmod.fingerprint(node.kind, node.definition(), sorted(used.items()))

    # ------------------------------------------------------- the Python API
    def plan(self, select=None, exclude=None, full_refresh=False, offline=False):
        from .runner import Runner

        return Runner(self).plan(select, exclude, full_refresh=full_refresh, offline=offline)

    def run(self, select=None, exclude=None, full_refresh=False, offline=False, reporter=None):
        from .runner import Runner

        return Runner(self, reporter=reporter).run(select, exclude, full_refresh=full_refresh, offline=offline)

    def ls(self, select=None, exclude=None) -> list[dict]:
        from .runner import Runner

        return Runner(self).ls(select, exclude)

    def compile(self, name: str) -> str:
        node = self.node(name)
        if not isinstance(node, ModelNode):
            raise KtoBuildError(f"'{node.name}' is a {node.kind}, not a SQL model")
        return sqlmod.runnable(node.create_statement(self.vars), node.used_vars, self.vars)

    def show(self, name: str, limit: int = 10) -> tuple[list[str], list[tuple]]:
        from .state import relations

        aliases = {a: n.name for n in self.nodes.values() for a in n.aliases}
        relation = name.lower() if name.lower() in aliases else self.node(name).name
        owner = aliases.get(relation, relation)
        db = self.database()
        if not db.exists():
            raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
        with db.connect(read_only=True) as con:
            if relation not in relations(con):
                raise KtoBuildError(f"'{relation}' has not been built yet (run 'kto-build run --select {owner}')")
            cur = con.execute(f"SELECT * FROM {sqlmod.quote(relation)} LIMIT {int(limit)}")
            return [d[0] for d in cur.description], cur.fetchall()

    def lineage(self, name: str, column: str | None = None) -> dict:
        node = self.node(name)
        upstream = sorted(self.graph.ancestors(node.name), key=self.graph.order.index)
        out: dict[str, Any] = {"node": node.name, "upstream": upstream,
                               "downstream": sorted(self.graph.descendants(node.name), key=self.graph.order.index)}
        if column is not None and not isinstance(node, ModelNode):
            raise KtoBuildError(f"column lineage needs a SQL model; '{node.name}' is a {node.kind}")
        if column is not None:
            sources = {n: self.nodes[n].sql for n in upstream if isinstance(self.nodes[n], ModelNode)}
            schema = self._physical_schema([n for n in upstream if not isinstance(self.nodes[n], ModelNode)])
            out["column"] = column
            out["columns"] = sqlmod.column_lineage(column, node.sql, sources, schema)
        return out

    def _physical_schema(self, names: list[str]) -> dict:
        db = self.database()
        if not names or not db.exists():
            return {}
        schema: dict[str, dict] = {}
        with db.connect(read_only=True) as con:
            rows = con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                               "WHERE schema_name = 'main'").fetchall()
            for table, col, dtype in rows:
                if table.lower() in names:
                    schema.setdefault(table, {})[col] = dtype
        return schema


__all__ = ["KINDS", "Project"]


def _refuse_reserved(node: Node, nodes: dict, alias_owners: dict, where: tuple[str, int]) -> None:
    """Names kto-build creates itself (its ``_kto_build`` schema, an annotation's ``<name>_latest`` view)."""
    name = node.name.lower()
    if name.startswith("_kto_"):
        raise KtoBuildError(f"'{node.name}' is a name kto-build reserves for its own tables", *where,
                            hint="names starting with '_kto_' are kto-build's; rename it")
    other = alias_owners.get(name)
    if other is not None:
        raise KtoBuildError(f"'{node.name}' is the view kto-build creates for {other.kind} '{other.name}' "
                            f"({other.path}:{other.line})", *where, hint="rename it")
    for alias in node.aliases:
        if alias.lower() in nodes:
            other = nodes[alias.lower()]
            raise KtoBuildError(f"{node.kind} '{node.name}' creates the view '{alias}', which {other.kind} "
                                f"'{other.name}' ({other.path}:{other.line}) already names", *where,
                                hint=f"rename {other.path}")
