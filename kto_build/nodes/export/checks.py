"""TRL's contract for KTO / DPO data, checked in DuckDB on the model an export reads.

Errors stop the export before any file is written; warnings (no rows, a
missing KTO label class, a label balance outside TRL's recommendation, prompt
and completion joined with no whitespace) are reported with the export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...errors import did_you_mean
from ...sql import literal, quote

STANDARD = "VARCHAR"
MESSAGE_ROLES = ("system", "user", "assistant", "tool")
#: the columns TRL's trainers read, per export format (the one definition of the KTO / DPO column lists)
COLUMNS = {"kto": ("prompt", "completion", "label"), "dpo": ("prompt", "chosen", "rejected")}


@dataclass
class FormatReport:
    """The TRL format check of an export: errors that stop it, warnings that do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _is_messages(dtype: str) -> bool:
    d = dtype.upper().replace(" ", "").replace('"', '')
    return d.startswith("STRUCT(") and d.endswith(")[]") and "ROLEVARCHAR" in d and "CONTENTVARCHAR" in d




def check_format(con, table: str, fmt: str, style: str = "standard", weights: dict | None = None) -> FormatReport:
    """TRL's contract for KTO / DPO data, checked in DuckDB on ``table``.

    Errors: a missing column, a wrong type, NULL or empty text or messages, a
    non-BOOLEAN or NULL KTO label, DPO rows with chosen = rejected, a mix of
    plain strings and message lists. Warnings: no rows, a missing KTO label
    class, a desirable:undesirable ratio outside TRL's recommended 1:1 .. 4:3.
    """
    rep = FormatReport()
    if fmt not in COLUMNS:
        return rep
    q = quote(table)
    types = {r[0]: r[1] for r in con.execute(f"describe {q}").fetchall()}
    text_cols = [c for c in COLUMNS[fmt] if c != "label"]
    shapes = _schema_errors(rep, table, types, fmt, style, text_cols)
    if rep.errors:
        return rep
    _row_errors(rep, con, q, fmt, shapes)
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


def _schema_errors(rep: FormatReport, table: str, types: dict[str, str], fmt: str, style: str,
                   text_cols: list[str]) -> dict[str, str]:
    """Column presence and types; returns each text column's shape ('text', 'messages' or its type)."""
    for c in COLUMNS[fmt]:
        if c not in types:
            hint = did_you_mean(c, types) or "columns: " + ", ".join(types)
            rep.errors.append(f"model '{table}' has no column '{c}' ({hint})")
    if rep.errors:
        return {}
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
    return shapes


def _row_errors(rep: FormatReport, con, q: str, fmt: str, shapes: dict[str, str]) -> None:
    """Rows TRL cannot train on: empty text or messages, NULL labels, chosen = rejected."""

    def count(where: str) -> int:
        return con.execute(f"select count(*) from {q} where {where}").fetchone()[0]

    def sample(where: str) -> str:
        from ...datatests import SAMPLE_ROWS  # lazy: loading a project with an export does not import it

        return f"select * from {q} where {where} limit {SAMPLE_ROWS}"

    for c, shape in shapes.items():
        qc = quote(c)
        if shape == "text":
            where = f"{qc} is null or regexp_full_match({qc}, '\\s*')"
            what = "NULL or empty"
        else:
            roles = ", ".join(literal(r) for r in MESSAGE_ROLES)
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
