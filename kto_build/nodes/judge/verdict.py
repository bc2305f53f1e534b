"""Reading a judge's verdict: pure functions, no I/O.

- ``parse_verdict(text, labels)``: the model's raw text -> one of the labels, or
  ``None`` (the row is then ``unparsed``). It never guesses: the answer must name
  exactly one label (a ``Label: X`` / ``Answer: X`` line wins; else the first
  line that names a label and no other; else the whole text when it names one
  label and no other).
- ``label_from_logprobs(logprobs, labels)``: where the backend gave log-probabilities
  of the first answer token (OpenAI-compatible ``top_logprobs``, llama.cpp), the
  probability mass of each label's leading tokens, renormalised over the labels:
  ``(label, probability)`` of the most likely label, or ``None`` when no
  alternative at that position starts a label.

Log-probabilities come in distilabel's shape, one list per answer token of
``{"token": str, "logprob": float}`` alternatives (most likely first).
"""

from __future__ import annotations

import math
import re
import unicodedata

_KEYED = re.compile(r"^\s*(?:[*_#>\-\s]*)(?:final\s+)?(?:label|answer|verdict|rating)\s*[:=\-]\s*(.+)$",
                    re.IGNORECASE)


def _norm(text: str) -> str:
    """Lower case, accents kept, punctuation and markup to spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w]+", " ", text)
    return " ".join(text.split())


def _named(text: str, labels: list[str]) -> list[str]:
    """Labels named in ``text`` as whole words (longest names first, so 'Not good' is not also 'good')."""
    hay = f" {_norm(text)} "
    found = []
    for label in sorted(labels, key=lambda s: -len(_norm(s))):
        needle = f" {_norm(label)} "
        if needle.strip() and needle in hay:
            found.append(label)
            hay = hay.replace(needle, " \x00 ")
    return found


def parse_verdict(text: str | None, labels: list[str]) -> str | None:
    """The one label ``text`` names, else None (never a guess)."""
    if not text or not labels:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:  # "Label: Yes" anywhere decides
        m = _KEYED.match(ln)
        if m:
            named = _named(m.group(1), labels)
            return named[0] if len(named) == 1 else None
    for ln in lines[:1]:  # the first line, when it names exactly one label
        named = _named(ln, labels)
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            return None
    named = _named(text, labels)
    return named[0] if len(named) == 1 else None


def rationale_of(text: str | None, label: str | None) -> str | None:
    """What the judge wrote besides its label line (None when nothing)."""
    if not text:
        return None
    kept = [ln for ln in text.strip().splitlines() if not _KEYED.match(ln)]
    if label is not None and kept and _norm(kept[0]) == _norm(label):
        kept = kept[1:]
    out = "\n".join(kept).strip()
    return out or None


def _token_label(token: str, labels: list[str]) -> str | None:
    """The one label this token starts (case-insensitive, surrounding space ignored), else None."""
    t = _norm(token)
    if not t:
        return None
    hits = [lb for lb in labels if _norm(lb).startswith(t) and (len(t) >= 1)]
    return hits[0] if len(hits) == 1 else None


def answer_position(logprobs: list) -> list | None:
    """The alternatives at the first answer token whose most likely choice is not blank."""
    positions = [p for p in (logprobs or []) if p]
    for alts in positions:
        best = max(alts, key=lambda a: a.get("logprob", -math.inf))
        if str(best.get("token", "")).strip():
            return alts
    return positions[0] if positions else None


def label_probabilities(logprobs: list, labels: list[str]) -> dict[str, float]:
    """Probability mass per label at the answer position (not normalised; labels without mass left out)."""
    alts = answer_position(logprobs)
    mass: dict[str, float] = {}
    seen: set[str] = set()
    for a in alts or []:
        token = str(a.get("token", ""))
        if token in seen:  # OpenAI lists the chosen token among its alternatives too
            continue
        seen.add(token)
        label = _token_label(token, labels)
        lp = a.get("logprob")
        if label is None or lp is None or lp == -math.inf:
            continue
        mass[label] = mass.get(label, 0.0) + math.exp(lp)
    return mass


def label_from_logprobs(logprobs: list | None, labels: list[str]) -> tuple[str, float] | None:
    """(most likely label, its probability among the labels), or None without label tokens."""
    if not logprobs or not labels:
        return None
    mass = label_probabilities(logprobs, labels)
    total = sum(mass.values())
    if total <= 0:
        return None
    order = {lb: i for i, lb in enumerate(labels)}
    label = max(mass, key=lambda lb: (mass[lb], -order[lb]))
    return label, mass[label] / total


def read_verdict(text: str | None, logprobs: list | None, labels: list[str]
                 ) -> tuple[str | None, float | None, str]:
    """(label, score, status): log-probabilities decide where there are any, else the text parser."""
    from_lp = label_from_logprobs(logprobs, labels)
    if from_lp is not None:
        return from_lp[0], from_lp[1], "ok"
    label = parse_verdict(text, labels)
    return label, None, "ok" if label is not None else "unparsed"
