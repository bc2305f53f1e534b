"""Data tests (dbt conventions) and the KTO / DPO format checks of exports.

Data tests are declared in ``models/*.yml``, per column (``columns: [{name,
tests}]``) or per model (``tests:``)::

    columns:
      - name: label
        tests: [not_null]
      - name: value
        tests:
          - accepted_values: {values: ["Yes", "No"], severity: warn}
    tests:
      - unique: {columns: [prompt, completion]}
      - row_count: {min: 1}

Each test compiles to one SELECT returning the offending rows; a test fails
when that query returns rows. ``run`` runs a model's tests right after it
builds (see ``run_model_tests``); ``kto-build test`` runs them on the stored
tables (``kto_build/services/tests.py``).

Each test kind is one ``Kind`` in ``KINDS``: its options, whether it needs a
column, an example, and the function compiling it to SQL. Adding a kind is
adding one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KtoBuildError, did_you_mean
from .sql import literal, quote

if TYPE_CHECKING:
    from .nodes.model import ModelNode

SEVERITIES = ("error", "warn")
COMMON_ARGS = {"severity", "where", "config", "column_name", "name"}
SAMPLE_ROWS = 5


@dataclass
class DataTest:
    """One compiled data test."""

    name: str  # e.g. unique(kto.prompt, completion)
    test: str  # e.g. unique
    model: str
    severity: str
    sql: str  # SELECT returning the offending rows
    path: str
    line: int
    columns: list[str] = field(default_factory=list)
    detail: str = ""

    def sample_query(self) -> str:
        return f"{self.sql} limit {SAMPLE_ROWS}"


@dataclass
class TestResult:
    name: str
    model: str
    severity: str
    status: str  # pass | fail | warn | error
    failures: int
    sample: str
    message: str = ""
    path: str = ""
    line: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.status == "error":
            return f"{self.name}: {self.message}"
        if self.name.startswith("row_count("):
            return f"{self.name} {self.message}; query: {self.sample}"
        noun = "row" if self.failures == 1 else "rows"
        return f"{self.name} {self.failures} {noun}; sample: {self.sample}"


# ------------------------------------------------------------------ compile
def _line(obj: Any, default: int) -> int:
    return getattr(obj, "line", 0) or default


def _items(tests: Any, default_line: int) -> list[tuple[Any, int]]:
    """(test entry, its line) for a yml list of tests."""
    if not tests:
        return []
    lines = getattr(tests, "item_lines", None) or [default_line] * len(tests)
    return list(zip(tests, lines, strict=False))


def _parse_entry(entry: Any, line: int, path: str, where: str) -> tuple[str, dict, int]:
    if isinstance(entry, str):
        name, args = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, args = next(iter(entry.items()))
        line = entry.line_of(name) if hasattr(entry, "line_of") else line
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise KtoBuildError(f"options of test '{name}' in {where} must be a mapping, got {args!r}", path, line,
                                hint=f"write {{{name}: {{...}}}}")
    else:
        raise KtoBuildError(f"a test in {where} must be a name or a mapping with one test name", path, line)
    name = str(name)
    if name not in KINDS:
        hint = did_you_mean(name, KINDS) or "known tests: " + ", ".join(KINDS)
        raise KtoBuildError(f"unknown test '{name}' in {where}", path, line, hint=hint)
    args = dict(args)
    config = args.pop("config", None) or {}
    if not isinstance(config, dict):
        raise KtoBuildError(f"'config' of test '{name}' must be a mapping", path, line)
    for key in ("severity", "where"):
        if key in config:
            args.setdefault(key, config[key])
    allowed, required = KINDS[name].allowed, KINDS[name].required
    for key in args:
        if key not in allowed | COMMON_ARGS:
            hint = did_you_mean(str(key), allowed | COMMON_ARGS) or \
                "options: " + ", ".join(sorted(allowed | {"severity", "where"}))
            raise KtoBuildError(f"unknown option '{key}' for test '{name}' in {where}", path,
                                _key_line(entry, name, key, line), hint=hint)
    for key in sorted(required):
        if key not in args:
            raise KtoBuildError(f"test '{name}' in {where} needs '{key}'", path, line,
                                hint=KINDS[name].example)
    severity = str(args.get("severity", "error")).lower()
    if severity not in SEVERITIES:
        raise KtoBuildError(f"severity of test '{name}' in {where} must be 'error' or 'warn', got {severity!r}",
                            path, _key_line(entry, name, "severity", line),
                            hint=did_you_mean(severity, SEVERITIES))
    args["severity"] = severity
    return name, args, line


def _key_line(entry, name, key, default) -> int:
    inner = entry.get(name) if isinstance(entry, dict) else None
    if hasattr(inner, "line_of"):
        return inner.line_of(key)
    return default


def compile_tests(node: ModelNode, known: Collection[str] | None = None, parse_sql: bool = True) -> list[DataTest]:
    """Validate and compile a model's data tests; file:line errors for bad ones.

    ``known``: the project's node names (a ``relationships`` test must point at
    one); None skips that check.

    ``parse_sql=False`` (as the project loader calls it) checks names and
    arguments only; ``expression`` SQL is parsed when the tests run, so that
    loading a project does not import sqlglot.
    """
    out: list[DataTest] = []
    path = _yml_path(node)
    cfg = node.config or {}
    for col in cfg.get("columns") or node.columns or []:
        cname = col.get("name")
        col_line = _line(col, 1)
        tests = col.get("data_tests") or col.get("tests") or []
        for entry, line in _items(tests, col_line):
            out.append(_compile_one(node, known, entry, line, path, column=cname, parse_sql=parse_sql))
    model_tests = cfg.get("data_tests") or cfg.get("tests") or node.tests or []
    for entry, line in _items(model_tests, _line(cfg, 1)):
        out.append(_compile_one(node, known, entry, line, path, column=None, parse_sql=parse_sql))
    return out


def _yml_path(node: ModelNode) -> str:
    """The models/*.yml file documenting ``node`` (its YAML lists remember it)."""
    cfg = node.config or {}
    for value in (cfg.get("columns"), cfg.get("tests"), cfg.get("data_tests")):
        if getattr(value, "path", None):
            return value.path
    return node.path


def _parse_expression(expr: str, path: str, line: int) -> str:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    try:
        sqlglot.parse_one(f"select 1 where {expr}", read="duckdb")
    except (ParseError, TokenError):
        raise KtoBuildError(f"expression {expr!r} is not valid SQL", path, line,
                            hint='write a boolean SQL expression, e.g. "length(prompt) > 0"') from None
    return expr


@dataclass
class Spec:
    """One test entry being compiled: what every kind's compile function reads."""

    model: str
    name: str
    args: dict
    columns: list[str]
    rel: str  # the model, or a sub-select with the test's ``where``
    where_text: str  # e.g. model 'kto' column 'label'
    path: str
    line: int
    entry: Any
    known: Collection[str] | None
    parse_sql: bool

    @property
    def qcols(self) -> list[str]:
        return [quote(c) for c in self.columns]

    def key_line(self, key: str) -> int:
        return _key_line(self.entry, self.name, key, self.line)

    def label(self, detail: str = "") -> str:
        return f"{self.name}({self.model}" + (detail or (f".{', '.join(self.columns)}" if self.columns else "")) + ")"


#: what a kind's compile function returns: (SELECT of the offending rows, label, detail)
Compiled = tuple[str, str, str]


@dataclass(frozen=True)
class Kind:
    compile: Callable[[Spec], Compiled]
    allowed: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    needs_column: bool = False
    example: str | None = None


def _not_null(t: Spec) -> Compiled:
    return f"select * from {t.rel} where {t.qcols[0]} is null", t.label(), ""


def _unique(t: Spec) -> Compiled:
    keys = ", ".join(t.qcols)
    nonnull = " and ".join(f"{c} is not null" for c in t.qcols)
    sql = (f"select * from (select *, count(*) over (partition by {keys}) as n_records from {t.rel} "
           f"where {nonnull}) as d where n_records > 1")
    return sql, t.label(), ""


def _accepted_values(t: Spec) -> Compiled:
    values = t.args["values"]
    if not isinstance(values, list) or not values:
        raise KtoBuildError(f"'values' of accepted_values on {t.where_text} must be a non-empty list", t.path,
                            t.line, hint=KINDS["accepted_values"].example)
    listed = ", ".join(literal(v) if t.args.get("quote", True) else str(v) for v in values)
    col = t.qcols[0]
    sql = f"select * from {t.rel} where {col} is not null and {col} not in ({listed})"
    return sql, t.label(f".{t.columns[0]} in {', '.join(map(str, values))}"), ""


def _relationships(t: Spec) -> Compiled:
    to = str(t.args["to"]).lower()
    if t.known is not None and to not in t.known:
        raise KtoBuildError(f"relationships on {t.where_text} points to unknown node '{t.args['to']}'", t.path,
                            t.key_line("to"), hint=did_you_mean(to, t.known) or "see 'kto-build ls'")
    fld, col = quote(str(t.args["field"])), t.qcols[0]
    sql = (f"select * from {t.rel} where {col} is not null and {col} not in "
           f"(select {fld} from {quote(to)} where {fld} is not null)")
    return sql, t.label(f".{t.columns[0]} -> {to}.{t.args['field']}"), ""


def _expression(t: Spec) -> Compiled:
    expr = str(t.args["expression"])
    if t.parse_sql:
        _parse_expression(expr, t.path, t.key_line("expression"))
    return f"select * from {t.rel} where not coalesce(({expr}), false)", t.label(f": {expr}"), ""


def _row_count(t: Spec) -> Compiled:
    lo, hi = t.args.get("min"), t.args.get("max")
    for key, v in (("min", lo), ("max", hi)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise KtoBuildError(f"'{key}' of row_count on {t.where_text} must be a whole number, got {v!r}",
                                t.path, t.key_line(key))
    if lo is None and hi is None:
        raise KtoBuildError(f"row_count on {t.where_text} needs 'min' or 'max'", t.path, t.line,
                            hint="e.g. row_count: {min: 1}")
    conds = [f"count(*) {op} {int(v)}" for op, v in ((">=", lo), ("<=", hi)) if v is not None]
    sql = f"select count(*) as row_count from {t.rel} having not ({' and '.join(conds)})"
    want = " and ".join(f"{k} {v}" for k, v in (("at least", lo), ("at most", hi)) if v is not None)
    return sql, f"row_count({t.model})", f"expected {want} rows"


#: every data-test kind, defined once
KINDS: dict[str, Kind] = {
    "not_null": Kind(_not_null, needs_column=True),
    "unique": Kind(_unique, frozenset({"columns", "combination_of_columns"}), needs_column=True),
    "accepted_values": Kind(_accepted_values, frozenset({"values", "quote"}), frozenset({"values"}), True,
                            'e.g. accepted_values: {values: ["Yes", "No"]}'),
    "relationships": Kind(_relationships, frozenset({"to", "field"}), frozenset({"to", "field"}), True,
                          "e.g. relationships: {to: stg_prompts, field: prompt_id}"),
    "expression": Kind(_expression, frozenset({"expression"}), frozenset({"expression"}), False,
                       'e.g. expression: {expression: "length(prompt) > 0"}'),
    "row_count": Kind(_row_count, frozenset({"min", "max"})),
}


def _compile_one(node: ModelNode, known, entry, line: int, path: str, column: str | None,
                 parse_sql: bool = True) -> DataTest:
    where_text = f"model '{node.name}'" + (f" column '{column}'" if column else "")
    name, args, line = _parse_entry(entry, line, path, where_text)
    m = quote(node.name)
    rel = f"(select * from {m} where {args['where']}) as t" if args.get("where") else m
    col = column or args.get("column_name")
    columns = [col] if col else []
    if name == "unique" and (args.get("columns") or args.get("combination_of_columns")):
        columns = list(args.get("columns") or args.get("combination_of_columns"))
    if KINDS[name].needs_column and not columns:
        raise KtoBuildError(f"test '{name}' on {where_text} needs a column (put it under a column, or give "
                            f"{'columns' if name == 'unique' else 'column_name'})", path, line)
    spec = Spec(node.name, name, args, columns, rel, where_text, path, line, entry, known, parse_sql)
    sql, label, detail = KINDS[name].compile(spec)
    return DataTest(label, name, node.name, args["severity"], sql, path, line, columns, detail)

# ---------------------------------------------------------------------- run
def execute(con, tests: list[DataTest], table_columns: dict[str, list[str]] | None = None) -> list[TestResult]:
    """Run compiled tests on an open connection."""
    results = []
    for t in tests:
        cols = (table_columns or {}).get(t.model)
        missing = [c for c in t.columns if cols is not None and c not in cols]
        if missing:
            hint = did_you_mean(missing[0], cols) or "columns: " + ", ".join(cols)
            results.append(TestResult(t.name, t.model, t.severity, "error", 0, "", path=t.path, line=t.line,
                                      message=f"{t.path}:{t.line}: column '{missing[0]}' is not in "
                                              f"{t.model} ({hint})"))
            continue
        try:
            if t.test == "row_count":
                got = con.execute(f"select count(*) from {quote(t.model)}").fetchone()[0]
                failed = con.execute(f"select count(*) from ({t.sql}) as f").fetchone()[0]
                n = got if failed else 0
                status = ("fail" if t.severity == "error" else "warn") if failed else "pass"
                msg = f"{t.detail}, got {got}" if failed else ""
                results.append(TestResult(t.name, t.model, t.severity, status, n, t.sql, msg, t.path, t.line))
                continue
            n = con.execute(f"select count(*) from ({t.sql}) as f").fetchone()[0]
        except Exception as exc:  # duckdb.Error: a wrong column or expression
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            results.append(TestResult(t.name, t.model, t.severity, "error", 0, t.sample_query(),
                                      f"{t.path}:{t.line}: {first}", t.path, t.line))
            continue
        status = "pass" if n == 0 else ("fail" if t.severity == "error" else "warn")
        results.append(TestResult(t.name, t.model, t.severity, status, n, t.sample_query(), "", t.path, t.line))
    return results


def columns_of(con, name: str) -> list[str]:
    return [r[0] for r in con.execute(f"describe {quote(name)}").fetchall()]


def summarize(results: list[TestResult]) -> tuple[str | None, list[str]]:
    """(error message or None, warnings) for a node's test results."""
    bad = [r for r in results if r.status in ("fail", "error")]
    warns = [f"test {r.describe()}" for r in results if r.status == "warn"]
    if not bad:
        return None, warns
    noun = "test" if len(results) == 1 else "tests"
    return f"{len(bad)} of {len(results)} {noun} failed: " + "; ".join(r.describe() for r in bad), warns


@dataclass
class ModelTests:
    """A model's data tests, run right after its build."""

    results: list[dict] | None = None  # TestResult.as_dict() of each; None when the model has no tests
    error: str | None = None  # an error-severity failure or a bad test spec: the model fails
    warnings: list[str] = field(default_factory=list)


def run_model_tests(con, node: ModelNode, known: Collection[str] | None = None) -> ModelTests:
    """Run ``node``'s data tests on ``con`` (the model's own transaction, after its table was written).

    An error-severity failure (or a test that cannot compile) is ``error``: the
    model node fails (its downstream is skipped, as dbt ``build`` does) and
    flags its state so the next run rebuilds and retests it; warn-severity
    failures become warnings.
    """
    try:
        tests = compile_tests(node, known)
    except KtoBuildError as exc:
        return ModelTests(error=exc.one_line())
    if not tests:
        return ModelTests()
    results = execute(con, tests, {node.name: columns_of(con, node.name)})
    error, warns = summarize(results)
    return ModelTests([r.as_dict() for r in results], error, warns)
