"""One error type that the CLI prints as a single line: ``file:line:col: message``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class KtoBuildError(Exception):
    """A user-facing error: where it is, what is wrong, what was meant."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.col = col
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.line:
                where += f":{self.line}"
                if self.col:
                    where += f":{self.col}"
            where += ": "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class LockError(KtoBuildError):
    """Another process is writing to the same database."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 1) -> str | None:
    """``did you mean 'x'?`` for the nearest candidates, or None."""
    import difflib  # lazy: only an error imports it (with heapq, ~1.5 ms of every start)

    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=n, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"
