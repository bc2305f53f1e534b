"""Small HTML helpers: the page frame, tables, SQL highlighting (pygments) and
markdown (markdown-it-py). Every page references only files in the site folder."""

from __future__ import annotations

from html import escape

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 20px}header a{color:#fff;margin-right:14px;text-decoration:none}
main{padding:16px 24px;max-width:1200px}h1{margin:.2em 0 .4em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#eee}code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto}.muted{color:#777}.dagbox{overflow:auto;
border:1px solid #ddd;background:#fff;max-height:80vh}.dag text.n{font:600 11px system-ui;fill:#fff}
.dag text.s{font:10px system-ui;fill:#fff}.dag a:hover rect{opacity:.8}.legend span{display:inline-block;
padding:2px 8px;margin:2px;border-radius:4px;color:#fff}.fig{display:inline-block;margin:6px 12px 6px 0;
vertical-align:top}.fig img{border:1px solid #eee;background:#fff}.status-failed{color:#c62828}
.status-pass{color:#2e7d32}.status-fail,.status-error{color:#c62828}.status-warn{color:#b26a00}
.card{background:#fff;border:1px solid #ddd;padding:4px 16px}
"""


def page(title: str, body: str, root: str, project_name: str) -> str:
    """A whole page; ``root`` is the relative path back to the site folder ('' or '../')."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)} · {escape(project_name)}</title>"
            f'<link rel="stylesheet" href="{root}site.css"><link rel="stylesheet" href="{root}pygments.css">'
            f'<link rel="icon" href="{root}favicon.svg"></head><body>'
            f'<header><a href="{root}index.html"><b>{escape(project_name)}</b></a>'
            f'<a href="{root}index.html#nodes">nodes</a><a href="{root}index.html#runs">runs</a></header>'
            f"<main><h1>{escape(title)}</h1>\n{body}\n</main></body></html>\n")


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#263238"/><circle cx="5" cy="8" r="2" fill="#59a14f"/><circle cx="11" cy="8" r="2" '
           'fill="#f28e2b"/></svg>')


def table(headers: list[str], rows: list[list], raw: set[int] | None = None) -> str:
    """An HTML table; cells are escaped unless their column index is in ``raw``."""
    if not rows:
        return '<p class="muted">(none)</p>'
    raw = raw or set()

    def cell(i, v):
        if v is None:
            return '<td class="muted">–</td>'
        if isinstance(v, float):
            v = f"{v:.4g}"
        return f"<td>{v if i in raw else escape(str(v))}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(src: str | None, alt: str) -> str:
    if not src:
        return ""
    return f'<div class="fig"><img src="{escape(src)}" alt="{escape(alt)}"></div>'


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def pygments_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="friendly").get_style_defs(".highlight")


_LEXERS: dict = {}


def tokens(code: str, language: str = "sql") -> list[tuple[str, str]]:
    """pygments' tokens of ``code`` as (css class, text): the classes HtmlFormatter would write."""
    from pygments.token import STANDARD_TYPES

    lexer = _LEXERS.get(language)
    if lexer is None:
        from pygments.lexers import get_lexer_by_name

        lexer = _LEXERS[language] = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    out = []
    for ttype, value in lexer.get_tokens(code):
        css = STANDARD_TYPES.get(ttype)
        while css is None:
            ttype = ttype.parent
            css = STANDARD_TYPES.get(ttype)
        out.append((css, value))
    return out


def highlight(code: str, language: str = "sql", toks: list[tuple[str, str]] | None = None) -> str:
    """Highlighted HTML (pygments' lexer and CSS classes, styled by pygments.css). pygments' own HtmlFormatter
    costs ~3x the lexing per snippet; this writes the same spans in one pass."""
    toks = toks if toks is not None else tokens(code, language)
    out = []
    for c, v in toks:
        if "&" in v or "<" in v or ">" in v:  # most tokens have none: html.escape only where it changes something
            v = escape(v, quote=False)
        out.append(f'<span class="{c}">{v}</span>' if c else v)
    body = "".join(out)
    return f'<div class="highlight"><pre>{body}</pre></div>\n'


def markdown(text: str) -> str:
    """Markdown to HTML, raw HTML in the text escaped (a card is data, not markup)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
