"""Pure statistics of the site, the lazy CLI, and ``docs --serve`` on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

import pytest

from kto_build.docs.stats import cohen_kappa, kto_balance, pairwise_kappa, wilson

from .conftest import KTO


@pytest.mark.parametrize(("a", "b", "expected"), [
    (["y", "y", "n", "n"], ["y", "y", "n", "n"], 1.0),
    (["y", "n", "y", "n"], ["n", "y", "n", "y"], -1.0),
    # 20 items: 7 yes/yes, 5 no/no, 3 yes/no, 5 no/yes -> po 0.6, pe 0.5*0.6+0.5*0.4 = 0.5 -> 0.2
    (["y"] * 7 + ["n"] * 5 + ["y"] * 3 + ["n"] * 5, ["y"] * 7 + ["n"] * 5 + ["n"] * 3 + ["y"] * 5, 0.2),
])
def test_cohen_kappa(a, b, expected):
    assert cohen_kappa(a, b) == pytest.approx(expected)


def test_kappa_undefined_and_pairs():
    assert cohen_kappa(["y", "y"], ["y", "y"]) is None  # chance agreement 1
    assert cohen_kappa([], []) is None
    pairs = pairwise_kappa({"a": {"r1": "y", "r2": "n"}, "b": {"r1": "y", "r2": "n", "r3": "y"}})
    assert {(p["a"], p["b"]): (p["kappa"], p["items"]) for p in pairs} == {
        ("a", "b"): (1.0, 2), ("b", "a"): (1.0, 2), ("a", "a"): (1.0, 2), ("b", "b"): (1.0, 3)}


def test_wilson_interval():
    lo, hi = wilson(15, 27)
    assert lo == pytest.approx(0.3731, abs=1e-4) and hi == pytest.approx(0.7241, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_kto_balance_matches_the_export_warning_rule():
    from kto_build.nodes.export.checks import kto_balance_warnings

    for pos, neg in ((4, 8), (10, 5), (6, 5), (3, 0)):
        b = kto_balance(pos, neg)
        warned = kto_balance_warnings(pos, neg)
        if b["in_band"] is False:
            fix = re.search(r"set (\w+)=([\d.]+)", warned[0])
            assert b["suggested"][fix.group(1)] == float(fix.group(2))
            again = kto_balance(pos, neg, b["suggested"]["desirable_weight"], b["suggested"]["undesirable_weight"])
            assert again["in_band"]
        elif b["in_band"]:
            assert warned == []
    assert kto_balance(6, 5)["in_band"] and kto_balance(4, 8)["suggested"]["desirable_weight"] == 2.0


def test_cli_import_stays_light():
    code = ("import sys, kto_build.cli; from kto_build.cli import cli; "
            "print(sorted(m for m in ('altair', 'vl_convert', 'grandalf', 'markdown_it') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    r = subprocess.run([KTO, "docs", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--serve" in r.stdout and "127.0.0.1" in r.stdout


def test_serve_on_localhost(docs_project):
    proc = subprocess.Popen([KTO, "--project-dir", str(docs_project), "docs", "--out", str(docs_project / "site2"),
                             "--serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for _ in range(3):
            m = re.search(r"http://127\.0\.0\.1:\d+/", proc.stdout.readline())
            if m:
                url = m.group(0)
                break
        assert url, proc.stdout.read() if proc.poll() is not None else "no URL printed"
        with urllib.request.urlopen(url + "index.html", timeout=30) as r:
            assert r.status == 200 and b"svg" in r.read()
        with urllib.request.urlopen(url + "nodes/kto.html", timeout=30) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_a_histogram_is_named_by_its_values_not_by_the_order_rows_came_in():
    """A table scanned in parallel returns rows in any order: the chart (and the page that names it) must not
    change with it, or every rebuild rewrites pages whose data did not change."""
    from kto_build.docs import plots

    class Names:
        def lazy(self, stem, parts, build):
            return plots.Plotter.name(stem, parts)

    name = plots.histogram([3.0, 1.0, 2.0, 1.0], "t", "latency_ms", "g-latency", Names())
    assert name == plots.histogram([1.0, 1.0, 2.0, 3.0], "t", "latency_ms", "g-latency", Names())
    assert name != plots.histogram([1.0, 2.0, 3.0], "t", "latency_ms", "g-latency", Names())
