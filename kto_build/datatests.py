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
tables (``run_tests``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import KtoBuildError, did_you_mean
from .sql import quote
from .state import relations

if TYPE_CHECKING:
    from .nodes.model import ModelNode
    from .project import Project

SEVERITIES = ("error", "warn")
#: test name -> (allowed args, required args, needs a column)
TESTS: dict[str, tuple[set[str], set[str], bool]] = {
    "not_null": (set(), set(), True),
    "unique": ({"columns", "combination_of_columns"}, set(), True),
    "accepted_values": ({"values", "quote"}, {"values"}, True),
    "relationships": ({"to", "field"}, {"to", "field"}, True),
    "expression": ({"expression"}, {"expression"}, False),
    "row_count": ({"min", "max"}, set(), False),
}
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
    if name not in TESTS:
        hint = did_you_mean(name, TESTS) or "known tests: " + ", ".join(TESTS)
        raise KtoBuildError(f"unknown test '{name}' in {where}", path, line, hint=hint)
    args = dict(args)
    config = args.pop("config", None) or {}
    if not isinstance(config, dict):
        raise KtoBuildError(f"'config' of test '{name}' must be a mapping", path, line)
    for key in ("severity", "where"):
        if key in config:
            args.setdefault(key, config[key])
    allowed, required, _ = TESTS[name]
    for key in args:
        if key not in allowed | COMMON_ARGS:
            hint = did_you_mean(str(key), allowed | COMMON_ARGS) or \
                "options: " + ", ".join(sorted(allowed | {"severity", "where"}))
            raise KtoBuildError(f"unknown option '{key}' for test '{name}' in {where}", path,
                                _key_line(entry, name, key, line), hint=hint)
    for key in sorted(required):
        if key not in args:
            raise KtoBuildError(f"test '{name}' in {where} needs '{key}'", path, line,
                                hint=_EXAMPLES.get(name))
    severity = str(args.get("severity", "error")).lower()
    if severity not in SEVERITIES:
        raise KtoBuildError(f"severity of test '{name}' in {where} must be 'error' or 'warn', got {severity!r}",
                            path, _key_line(entry, name, "severity", line),
                            hint=did_you_mean(severity, SEVERITIES))
    args["severity"] = severity
    return name, args, line


_EXAMPLES = {
    "accepted_values": 'e.g. accepted_values: {values: ["Yes", "No"]}',
    "relationships": "e.g. relationships: {to: stg_prompts, field: prompt_id}",
    "expression": 'e.g. expression: {expression: "length(prompt) > 0"}',
}


def _key_line(entry, name, key, default) -> int:
    inner = entry.get(name) if isinstance(entry, dict) else None
    if hasattr(inner, "line_of"):
        return inner.line_of(key)
    return default


def compile_tests(node: ModelNode, project: Project | None = None, parse_sql: bool = True) -> list[DataTest]:
    """Validate and compile a model's data tests; file:line errors for bad ones.

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
            out.append(_compile_one(node, project, entry, line, path, column=cname, parse_sql=parse_sql))
    model_tests = cfg.get("data_tests") or cfg.get("tests") or node.tests or []
    for entry, line in _items(model_tests, _line(cfg, 1)):
        out.append(_compile_one(node, project, entry, line, path, column=None, parse_sql=parse_sql))
    return out


def _yml_path(node: ModelNode) -> str:
    """The models/*.yml file documenting ``node`` (its YAML lists remember it)."""
    cfg = node.config or {}
    for value in (cfg.get("columns"), cfg.get("tests"), cfg.get("data_tests")):
        if getattr(value, "path", None):
            return value.path
    return node.path


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _parse_expression(expr: str, path: str, line: int) -> str:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    try:
        sqlglot.parse_one(f"select 1 where {expr}", read="duckdb")
    except (ParseError, TokenError):
        raise KtoBuildError(f"expression {expr!r} is not valid SQL", path, line,
                            hint='write a boolean SQL expression, e.g. "length(prompt) > 0"') from None
    return expr


def _compile_one(node: ModelNode, project, entry, line: int, path: str, column: str | None,
                 parse_sql: bool = True) -> DataTest:
    where_text = f"model '{node.name}'" + (f" column '{column}'" if column else "")
    name, args, line = _parse_entry(entry, line, path, where_text)
    m = quote(node.name)
    severity = args["severity"]
    filt = f" where {args['where']}" if args.get("where") else ""
    rel = f"(select * from {m}{filt})" if filt else m
    alias_rel = f"{rel} as t" if filt else m
    col = column or args.get("column_name")
    columns = [col] if col else []
    if name == "unique" and (args.get("columns") or args.get("combination_of_columns")):
        columns = list(args.get("columns") or args.get("combination_of_columns"))
    if TESTS[name][2] and not columns:
        raise KtoBuildError(f"test '{name}' on {where_text} needs a column (put it under a column, or give "
                            f"{'columns' if name == 'unique' else 'column_name'})", path, line)
    qcols = [quote(c) for c in columns]
    label = f"{name}({node.name}" + (f".{', '.join(columns)}" if columns else "") + ")"
    detail = ""
    if name == "not_null":
        sql = f"select * from {alias_rel} where {qcols[0]} is null"
    elif name == "unique":
        keys = ", ".join(qcols)
        nonnull = " and ".join(f"{c} is not null" for c in qcols)
        sql = (f"select * from (select *, count(*) over (partition by {keys}) as n_records from {alias_rel} "
               f"where {nonnull}) as d where n_records > 1")
    elif name == "accepted_values":
        values = args["values"]
        if not isinstance(values, list) or not values:
            raise KtoBuildError(f"'values' of accepted_values on {where_text} must be a non-empty list", path, line,
                                hint=_EXAMPLES["accepted_values"])
        quote_values = args.get("quote", True)
        listed = ", ".join(_lit(v) if quote_values else str(v) for v in values)
        sql = f"select * from {alias_rel} where {qcols[0]} is not null and {qcols[0]} not in ({listed})"
        label = f"accepted_values({node.name}.{columns[0]} in {', '.join(map(str, values))})"
    elif name == "relationships":
        to = str(args["to"]).lower()
        if project is not None and to not in project.nodes:
            raise KtoBuildError(f"relationships on {where_text} points to unknown node '{args['to']}'", path,
                                _key_line(entry, name, "to", line),
                                hint=did_you_mean(to, project.nodes) or "see 'kto-build ls'")
        fld = quote(str(args["field"]))
        sql = (f"select * from {alias_rel} where {qcols[0]} is not null and {qcols[0]} not in "
               f"(select {fld} from {quote(to)} where {fld} is not null)")
        label = f"relationships({node.name}.{columns[0]} -> {to}.{args['field']})"
    elif name == "expression":
        expr = str(args["expression"])
        if parse_sql:
            _parse_expression(expr, path, _key_line(entry, name, "expression", line))
        sql = f"select * from {alias_rel} where not coalesce(({expr}), false)"
        label = f"expression({node.name}: {expr})"
    else:  # row_count
        lo, hi = args.get("min"), args.get("max")
        for key, v in (("min", lo), ("max", hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise KtoBuildError(f"'{key}' of row_count on {where_text} must be a whole number, got {v!r}",
                                    path, _key_line(entry, name, key, line))
        if lo is None and hi is None:
            raise KtoBuildError(f"row_count on {where_text} needs 'min' or 'max'", path, line,
                                hint="e.g. row_count: {min: 1}")
        conds = []
        if lo is not None:
            conds.append(f"count(*) >= {int(lo)}")
        if hi is not None:
            conds.append(f"count(*) <= {int(hi)}")
        sql = f"select count(*) as row_count from {alias_rel} having not ({' and '.join(conds)})"
        want = " and ".join(f"{k} {v}" for k, v in (("at least", lo), ("at most", hi)) if v is not None)
        detail = f"expected {want} rows"
        label = f"row_count({node.name})"
    return DataTest(label, name, node.name, severity, sql, path, line, columns, detail)


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


def _columns(con, name: str) -> list[str]:
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


def run_model_tests(con, node: ModelNode, project: Project) -> ModelTests:
    """Run ``node``'s data tests on ``con`` (the model's own transaction, after its table was written).

    An error-severity failure (or a test that cannot compile) is ``error``: the
    model node fails (its downstream is skipped, as dbt ``build`` does) and
    flags its state so the next run rebuilds and retests it; warn-severity
    failures become warnings.
    """
    try:
        tests = compile_tests(node, project)
    except KtoBuildError as exc:
        return ModelTests(error=exc.one_line())
    if not tests:
        return ModelTests()
    results = execute(con, tests, {node.name: _columns(con, node.name)})
    error, warns = summarize(results)
    return ModelTests([r.as_dict() for r in results], error, warns)


def run_tests(project: Project, select=None, exclude=None) -> list[TestResult]:
    """``kto-build test``: run the data tests of the selected models on the stored tables."""
    from .nodes.model import ModelNode

    names = [n for n in project.graph.select(select, exclude) if isinstance(project.nodes[n], ModelNode)]
    compiled = {n: compile_tests(project.nodes[n], project) for n in names}  # all bad specs fail first
    db = project.database()
    results: list[TestResult] = []
    if not any(compiled.values()):
        return results
    if not db.exists():
        raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
    with db.connect(read_only=True) as con:
        rels = relations(con)
        for name in names:
            tests = compiled[name]
            if not tests:
                continue
            if name not in rels:
                for t in tests:
                    results.append(TestResult(t.name, name, t.severity, "error", 0, "",
                                              f"'{name}' has not been built yet (run 'kto-build run')",
                                              t.path, t.line))
                continue
            results.extend(execute(con, tests, {name: _columns(con, name)}))
    return results


# ------------------------------------------------------- export format checks
STANDARD = "VARCHAR"
MESSAGE_ROLES = ("system", "user", "assistant", "tool")


@dataclass
class FormatReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _is_messages(dtype: str) -> bool:
    d = dtype.upper().replace(" ", "").replace('"', '')
    return d.startswith("STRUCT(") and d.endswith(")[]") and "ROLEVARCHAR" in d and "CONTENTVARCHAR" in d


FORMAT_COLUMNS = {"kto": ("prompt", "completion", "label"), "dpo": ("prompt", "chosen", "rejected")}


def check_format(con, table: str, fmt: str, style: str = "standard", weights: dict | None = None) -> FormatReport:
    """TRL's contract for KTO / DPO data, checked in DuckDB on ``table``.

    Errors: a missing column, a wrong type, NULL or empty text or messages, a
    non-BOOLEAN or NULL KTO label, DPO rows with chosen = rejected, a mix of
    plain strings and message lists. Warnings: no rows, a missing KTO label
    class, a desirable:undesirable ratio outside TRL's recommended 1:1 .. 4:3.
    """
    rep = FormatReport()
    if fmt not in FORMAT_COLUMNS:
        return rep
    q = quote(table)
    types = {r[0]: r[1] for r in con.execute(f"describe {q}").fetchall()}
    text_cols = [c for c in FORMAT_COLUMNS[fmt] if c != "label"]
    for c in FORMAT_COLUMNS[fmt]:
        if c not in types:
            hint = did_you_mean(c, types) or "columns: " + ", ".join(types)
            rep.errors.append(f"model '{table}' has no column '{c}' ({hint})")
    if rep.errors:
        return rep
    shapes = {c: ("messages" if _is_messages(types[c]) else "text" if types[c] == STANDARD else types[c])
              for c in text_cols}
    bad_types = {c: t for c, t in shapes.items() if t not in ("messages", "text")}
    for c, t in bad_types.items():
        rep.errors.append(f"{table}.{c} is {t}; {fmt.upper()} needs text (VARCHAR) or a list of "
                          "{role, content} messages")
    if style == "standard" and any(s == "messages" for s in shapes.values()):
        cols = ", ".join(c for c, s in shapes.items() if s == "messages")
        rep.errors.append(f"{table}.{cols} holds message lists but the export's style is standard: never mix "
                          "formats (set style: conversational, or select plain text)")
    if fmt == "kto" and types["label"] != "BOOLEAN":
        rep.errors.append(f"{table}.label is {types['label']}, TRL's KTOTrainer needs BOOLEAN "
                          "(e.g. select value = 'Yes' as label)")
    if rep.errors:
        return rep

    def count(where: str) -> int:
        return con.execute(f"select count(*) from {q} where {where}").fetchone()[0]

    def sample(where: str) -> str:
        return f"select * from {q} where {where} limit {SAMPLE_ROWS}"

    for c in text_cols:
        qc = quote(c)
        if shapes[c] == "text":
            where = f"{qc} is null or regexp_full_match({qc}, '\\s*')"
            what = "NULL or empty"
        else:
            roles = ", ".join(_lit(r) for r in MESSAGE_ROLES)
            where = (f"{qc} is null or len({qc}) = 0 or len(list_filter({qc}, lambda m: m.content is null "
                     f"or regexp_full_match(m.content, '\\s*') or m.role is null or m.role not in ({roles}))) > 0")
            what = "NULL, an empty message list, or a message without role/content"
        n = count(where)
        if n:
            rep.errors.append(f"{n} rows have a {what} {c} (sample: {sample(where)})")
    if fmt == "kto":
        n = count("label is null")
        if n:
            rep.errors.append(f"{n} rows have a NULL label (sample: {sample('label is null')})")
    if fmt == "dpo":
        where = "chosen = rejected"
        n = count(where)
        if n:
            rep.errors.append(f"{n} rows have chosen = rejected: TRL accepts them silently and learns nothing "
                              f"(sample: {sample(where)})")
    total = con.execute(f"select count(*) from {q}").fetchone()[0]
    rep.stats["rows"] = total
    if style == "standard" and not rep.errors:
        rep.warnings.extend(_seam_warnings(con, q, fmt, text_cols))
    if total == 0:
        rep.warnings.append(f"'{table}' has no rows: the exported dataset is empty")
    if fmt == "kto" and not rep.errors:
        pos, neg = con.execute(f"select count(*) filter (where label), count(*) filter (where not label) "
                               f"from {q}").fetchone()
        rep.stats.update(desirable=pos, undesirable=neg)
        w = weights or {}
        rep.warnings.extend(kto_balance_warnings(pos, neg, float(w.get("desirable_weight", 1.0)),
                                                 float(w.get("undesirable_weight", 1.0))))
    return rep


def _seam_warnings(con, q: str, fmt: str, text_cols: list[str]) -> list[str]:
    """TRL joins prompt + completion (chosen, rejected) as plain text: with no whitespace at the seam the
    last word of the prompt and the first of the answer merge into one token run."""
    out = []
    for c in text_cols[1:]:
        where = f"not regexp_matches(prompt, '\\s$') and not regexp_matches({quote(c)}, '^\\s')"
        n = con.execute(f"select count(*) from {q} where {where}").fetchone()[0]
        if n:
            ex = con.execute(f"select right(prompt, 12) || {quote(c)}[:12] from {q} where {where} "
                             "limit 1").fetchone()[0]
            out.append(f"{n} rows join prompt and {c} with no whitespace between them (TRL concatenates the two: "
                       f"{ex!r}); use style: conversational, or end the prompts with a newline")
    return out


def kto_balance_warnings(pos: int, neg: int, dw: float = 1.0, uw: float = 1.0) -> list[str]:
    """TRL: (desirable_weight x #desirable) : (undesirable_weight x #undesirable) within 1:1 .. 4:3."""
    if pos + neg == 0:
        return []
    if pos == 0 or neg == 0:
        which = "undesirable (label false)" if neg == 0 else "desirable (label true)"
        return [f"all {pos + neg} labels are {'true' if neg == 0 else 'false'}: no {which} examples; KTO trains "
                "but with a weight warning (collect more answers or relax min_agreement)"]
    ratio = (dw * pos) / (uw * neg)
    if 1.0 <= ratio <= 4 / 3 + 1e-9:
        return []
    if ratio < 1.0:  # too few desirable: raise desirable_weight to reach 1:1
        fix = f"desirable_weight={math.ceil(uw * neg / pos * 100) / 100:.2f}"
    else:  # too many desirable: raise undesirable_weight to reach 4:3
        fix = f"undesirable_weight={math.ceil(dw * pos * 3 / (4 * neg) * 100) / 100:.2f}"
    return [f"label balance {pos} desirable : {neg} undesirable gives (desirable_weight x {pos}) : "
            f"(undesirable_weight x {neg}) = {ratio:.2f}:1 with weights {dw:g}/{uw:g}, outside TRL's "
            f"recommended 1:1 to 4:3; set {fix} in KTOConfig (and in the export's 'weights' to silence this)"]
