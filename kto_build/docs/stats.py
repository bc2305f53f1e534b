"""Pure statistics behind the site's figures: Cohen's kappa, Wilson intervals,
TRL's KTO label-balance band and suggested weights, histogram bins.

No I/O and no heavy import: unit-testable on plain lists.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

#: TRL's KTOTrainer recommends (desirable_weight x #desirable) : (undesirable_weight x #undesirable) in [1, 4/3]
TRL_BAND = (1.0, 4 / 3)


def cohen_kappa(a: list, b: list) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (None when undefined)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def pairwise_kappa(answers: dict[str, dict[str, str]]) -> list[dict]:
    """answers: annotator -> {record_id: value}. One row per ordered pair (both directions, and the diagonal)."""
    names = sorted(answers)
    out = []
    for x, y in combinations(names, 2):
        common = sorted(set(answers[x]) & set(answers[y]))
        k = cohen_kappa([answers[x][r] for r in common], [answers[y][r] for r in common])
        for a, b in ((x, y), (y, x)):
            out.append({"a": a, "b": b, "kappa": k, "items": len(common)})
    for x in names:
        out.append({"a": x, "b": x, "kappa": 1.0, "items": len(answers[x])})
    return out


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def kto_balance(pos: int, neg: int, dw: float = 1.0, uw: float = 1.0) -> dict:
    """The weighted ratio, whether it is in TRL's band, and weights that bring it in.

    Same rule as ``checks.kto_balance_warnings``: too few desirable -> raise
    desirable_weight to reach 1:1; too many -> raise undesirable_weight to reach 4:3.
    """
    out: dict = {"desirable": pos, "undesirable": neg, "desirable_weight": dw, "undesirable_weight": uw,
                 "ratio": None, "in_band": None, "suggested": {"desirable_weight": dw, "undesirable_weight": uw}}
    if not pos or not neg:
        return out
    ratio = (dw * pos) / (uw * neg)
    out["ratio"] = ratio
    out["in_band"] = TRL_BAND[0] <= ratio <= TRL_BAND[1] + 1e-9
    if ratio < TRL_BAND[0]:
        out["suggested"] = {"desirable_weight": math.ceil(uw * neg / pos * 100) / 100, "undesirable_weight": uw}
    elif not out["in_band"]:
        out["suggested"] = {"desirable_weight": dw, "undesirable_weight": math.ceil(dw * pos * 3 / (4 * neg) * 100)
                            / 100}
    return out


def band_counts(pos: int, neg: int, dw: float = 1.0, uw: float = 1.0) -> tuple[float, float]:
    """The range of weighted desirable counts TRL's band allows for this many undesirable rows."""
    base = uw * neg / max(dw, 1e-12)
    return (base * TRL_BAND[0], base * TRL_BAND[1])
