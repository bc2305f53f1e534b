"""Keep secrets out of anything kto-build stores or prints.

A server may echo the request back in an error body (``Authorization: Bearer
sk-...``); that text would land in the generation cache's ``error`` column, in
``run_results.json`` and on stdout. ``redact(text)`` replaces every configured
secret value (registered with ``register`` when a node reads it from the
environment) and any ``Bearer <token>`` with ``***``.
"""

from __future__ import annotations

import re

_SECRETS: set[str] = set()
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{4,}")
_KEYLIKE = re.compile(r"\b(?:sk|hf)[-_][A-Za-z0-9_\-]{16,}")
_SECRET_NAMES = ("KEY", "TOKEN", "SECRET", "PASSWORD")
MASK = "***"


def register(value: str | None) -> None:
    """Remember a secret value (API key, token) read from the environment."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def register_env(names=()) -> None:
    """Register the values of ``names`` and of every variable whose name says it holds a secret."""
    import os

    for name, value in os.environ.items():
        if name in names or name.upper().endswith(_SECRET_NAMES):
            register(value)


def redact(text):
    """``text`` with every registered secret and bearer token masked (non-strings pass through)."""
    if not isinstance(text, str) or not text:
        return text
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _KEYLIKE.sub(MASK, text)
