"""One tokenization per model's SQL, shared by the page's highlighting and the column lineage's parse.

sqlglot's DuckDB tokenizer (compiled) is ~4x faster than pygments' regex SQL lexer and knows DuckDB's
keywords; its tokens carry their offsets, so the text between them (whitespace, comments) is kept
exactly. The spans use pygments' CSS classes, so pygments.css styles them. When the tokenizer
refuses the text, pygments' lexer highlights it instead.
"""

from __future__ import annotations

import re
from functools import lru_cache

_GAP = re.compile(r"(--[^\n]*|/\*.*?(?:\*/|$))", re.S)
_PUNCT = {"COMMA", "L_PAREN", "R_PAREN", "L_BRACKET", "R_BRACKET", "L_BRACE", "R_BRACE", "DOT", "SEMICOLON",
          "COLON"}
_STRINGS = {"STRING", "NATIONAL_STRING", "RAW_STRING", "BYTE_STRING", "HEX_STRING", "BIT_STRING",
            "HEREDOC_STRING", "UNICODE_STRING"}


def _dialect():
    from sqlglot.dialects.dialect import Dialect

    from ..sql import DIALECT

    return Dialect.get_or_raise(DIALECT)


@lru_cache(maxsize=4096)
def raw_tokens(sql: str) -> tuple | None:
    """sqlglot's tokens of ``sql``, or None when the tokenizer refuses it."""
    from sqlglot.errors import SqlglotError

    try:
        return tuple(_dialect().tokenize(sql))
    except (SqlglotError, ValueError):
        return None


def parse(sql: str):
    """sqlglot's tree of ``sql`` from the shared tokens (raises sqlglot's errors as parse_one does)."""
    import sqlglot

    from ..sql import DIALECT

    toks = raw_tokens(sql)
    if toks is None:
        return sqlglot.parse_one(sql, read=DIALECT)
    trees = _dialect().parser().parse(list(toks), sql)
    if len(trees) != 1 or trees[0] is None:
        return sqlglot.parse_one(sql, read=DIALECT)  # its own error message for several or no statements
    return trees[0]


def highlight_tokens(sql: str) -> list[tuple[str, str]] | None:
    """(pygments css class, text) pieces that concatenate to exactly ``sql``; None to let pygments lex it."""
    toks = raw_tokens(sql)
    if toks is None:
        return None
    keywords = _dialect().tokenizer_class.KEYWORDS
    out: list[tuple[str, str]] = []
    pos = 0
    for i, t in enumerate(toks):
        if t.start < pos or t.end < t.start:
            return None
        _gap(sql[pos:t.start], out)
        text = sql[t.start:t.end + 1]
        out.append((_css(t, text, toks[i + 1] if i + 1 < len(toks) else None, keywords), text))
        pos = t.end + 1
    _gap(sql[pos:], out)
    return out if "".join(v for _, v in out) == sql else None


def _gap(text: str, out: list) -> None:
    for piece in _GAP.split(text):
        if piece:
            out.append(("c1" if piece.startswith("--") else "cm" if piece.startswith("/*") else "w", piece))


def _css(tok, text: str, nxt, keywords) -> str:
    name = tok.token_type.name
    if name in _STRINGS:
        return "s1"
    if name == "NUMBER":
        return "mi" if text.isdigit() else "mf"
    if name == "IDENTIFIER":
        return "s2"  # a double-quoted name, as pygments' SQL lexer shows it
    if name == "VAR":
        return "nf" if nxt is not None and nxt.token_type.name == "L_PAREN" else "n"
    if name in _PUNCT:
        return "p"
    if text.upper() in keywords or text.isalpha():
        return "k"
    return "o"
