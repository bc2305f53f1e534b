"""``kto-build docs``: the static site in headless Chromium from file://, its figures against the tables,
the dataset card's pictures, and reading while a run holds the database."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html.parser import HTMLParser
from itertools import combinations
from pathlib import Path

import duckdb
import pytest

from tests.helpers import chromium

from .conftest import ANNOTATORS, kto


@pytest.fixture(scope="module")
def site(docs_project) -> Path:
    r = kto(docs_project, "docs")
    assert re.search(r"Wrote \d+ pages and \d+ charts", r.stdout), r.stdout
    return docs_project / "target" / "docs"


@pytest.fixture(scope="module")
def browser():
    with chromium(window="1200,900", browser_log=True) as driver:
        yield driver


def q(root: Path, sql: str):
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class Refs(HTMLParser):
    """Every URL an element references (src, href, xlink:href, url(...) in style), and the text."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href", "xlink:href", "srcset", "action", "poster", "data") and v:
                self.refs.append((tag, v))
            if k == "style" and v and "url(" in v:
                self.refs.append((tag, v))


def pages(site: Path) -> list[Path]:
    return [site / "index.html", *sorted((site / "nodes").glob("*.html"))]


# ------------------------------------------------------------------ the browser
@pytest.mark.slow
def test_every_page_loads_offline_without_console_errors_and_plots_render(site, browser, docs_project):
    from selenium.webdriver.common.by import By

    all_pages = pages(site)
    assert len(all_pages) == 1 + len(json.loads(kto(docs_project, "ls", "--json").stdout))
    images = 0
    for p in all_pages:
        browser.get(p.as_uri())
        assert browser.execute_script("return document.readyState") == "complete"
        # the page body is markup, not stray text (e.g. a Python value printed by mistake)
        stray = browser.execute_script("return [...document.querySelector('main').childNodes]"
                                       ".filter(n => n.nodeType === 3 && n.textContent.trim()).length")
        assert stray == 0, p.name
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == [], (p.name, errors)
        for img in browser.find_elements(By.TAG_NAME, "img"):
            ok = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
            assert ok, (p.name, img.get_attribute("src"))
            images += 1
        # every resource the page loaded is a local file
        urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(u.startswith("file://") for u in urls), urls
    assert images >= 8  # latency + tokens x 2 models, progress, annotators, kappa, balance, margins, sources, ...


@pytest.mark.slow
def test_index_shows_every_node_linked_to_its_page(site, browser, docs_project):
    from selenium.webdriver.common.by import By

    names = [n["name"] for n in json.loads(kto(docs_project, "ls", "--json").stdout)]
    browser.get((site / "index.html").as_uri())
    nodes = {a.get_attribute("data-node"): a for a in browser.find_elements(By.CSS_SELECTOR, "svg.dag a.dag-node")}
    assert sorted(nodes) == sorted(names)
    for name in names:
        target = (site / "index.html").parent / nodes[name].get_dom_attribute("href")
        assert target.resolve() == (site / "nodes" / f"{name}.html").resolve()
    # a click on a node in the picture opens its page
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", nodes["kto"])
    assert browser.current_url.endswith("/nodes/kto.html")
    assert "model kto" in browser.title


def test_no_http_url_outside_links_in_text(site):
    for p in [*pages(site), site / "site.css", site / "pygments.css"]:
        text = p.read_text()
        if p.suffix == ".css":
            assert not re.search(r"https?://", text), p
            continue
        parser = Refs()
        parser.feed(text)
        for tag, ref in parser.refs:
            assert not re.match(r"\s*(https?:)?//", ref), (p.name, tag, ref)
            if tag != "a":  # resources: files inside the site folder
                path = (p.parent / ref.split("#")[0]).resolve()
                assert path.is_file() and site.resolve() in path.parents, (p.name, ref)


# ------------------------------------------------------------ figures = tables
def _cells(html: str, heading: str) -> list[list[str]]:
    part = html.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", part, re.S)[1:]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]


def _svg_texts(site: Path, page: Path, heading: str) -> str:
    part = page.read_text().split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    src = re.search(r'<img src="([^"]+)"', part).group(1)
    return (page.parent / src).read_text()


def test_label_balance_on_the_page_equals_the_table(site, docs_project):
    pos, neg = q(docs_project, "select count(*) filter (where label), count(*) filter (where not label) from kto")[0]
    assert pos and neg
    page = site / "nodes" / "haiku_kto.html"
    row = _cells(page.read_text(), "Label balance")[0]
    assert (int(row[0]), int(row[1])) == (pos, neg)
    ratio = pos / neg
    assert row[2] == f"{ratio:.3f}:1"
    assert row[3] == ("yes" if 1 <= ratio <= 4 / 3 + 1e-9 else "no")
    svg = _svg_texts(site, page, "Label balance")
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert str(pos) in labels and str(neg) in labels


def test_kappa_on_the_page_equals_an_independent_computation(site, docs_project):
    latest: dict[str, dict[str, str]] = {}
    for line in (docs_project / "answers.jsonl").read_text().splitlines():
        a = json.loads(line)
        latest.setdefault(a["annotator"], {})[a["record_id"]] = a["value"]
    expected = {}
    for x, y in combinations(sorted(ANNOTATORS), 2):
        common = sorted(set(latest[x]) & set(latest[y]))
        # confusion-matrix form of Cohen's kappa over the labels Yes/No
        n = len(common)
        m = {(u, v): sum(1 for r in common if latest[x][r] == u and latest[y][r] == v)
             for u in ("Yes", "No") for v in ("Yes", "No")}
        po = (m["Yes", "Yes"] + m["No", "No"]) / n
        pe = ((m["Yes", "Yes"] + m["Yes", "No"]) * (m["Yes", "Yes"] + m["No", "Yes"])
              + (m["No", "No"] + m["No", "Yes"]) * (m["No", "No"] + m["Yes", "No"])) / n / n
        expected[(x, y)] = ((po - pe) / (1 - pe), n)
    page = site / "nodes" / "haiku_ratings.html"
    got = {(r[0], r[1]): (float(r[3]), int(r[2])) for r in _cells(page.read_text(), "Agreement between annotators")}
    assert set(got) == set(expected)
    for k, (kappa, n) in expected.items():
        assert got[k][1] == n
        assert got[k][0] == pytest.approx(kappa, abs=5e-4)
    svg = _svg_texts(site, page, "Agreement between annotators")
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for kappa, _ in expected.values():
        assert f"{kappa:.2f}" in labels


def test_card_embeds_pictures_written_beside_it(docs_project, site):
    card_dir = docs_project / "target" / "exports" / "default" / "haiku_kto"  # no targets: the "default" folder
    card = (card_dir / "README.md").read_text()
    pics = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert any(p.startswith("label_balance") for p in pics) and any(p.startswith("agreement_") for p in pics)
    for p in pics:
        assert (card_dir / p).is_file() and (card_dir / p).read_text().lstrip().startswith("<svg")
    # the site shows the card with those pictures copied into the site
    html = (site / "nodes" / "haiku_kto.html").read_text()
    for p in pics:
        assert f'src="../img/cards/haiku_kto/{p}"' in html


# ----------------------------------------------------------- generator pages
def test_generator_page_counts_equal_the_table(site, docs_project):
    rows = q(docs_project, "select model_name, count(*) filter (where status = 'ok'), "
                           "count(*) filter (where status <> 'ok') from haiku_generations group by 1 order by 1")
    assert [r[2] for r in rows] == [1, 1]  # the FAILME prompt, once per model
    got = _cells((site / "nodes" / "haiku_generations.html").read_text(), "Per model")
    assert [(r[0], int(r[1]), int(r[2])) for r in got] == rows
    reasons = _cells((site / "nodes" / "haiku_generations.html").read_text(), "Failure reasons")
    assert {r[0] for r in reasons} == {"alpha", "beta"} and all("500" in r[1] or "error" in r[1] for r in reasons)


# ------------------------------------------------------------ held database
def test_docs_while_a_writer_holds_the_file_says_so_in_one_line(docs_project, tmp_path):
    db = docs_project / "target" / "kto_build.duckdb"
    before = q(docs_project, "select count(*) from haiku_ratings")
    holder = subprocess.Popen(
        [os.environ.get("PYTHON", str(Path(__import__("sys").executable))), "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
         str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = kto(docs_project, "docs", "--out", str(tmp_path / "site"), check=False)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        # issue 9: after a second it says it waits, then one line that the run holds the file
        assert len(lines) <= 2 and "held by a running kto-build run" in lines[-1], r.stderr
        assert all(line.startswith("waiting for the run to release the database") for line in lines[:-1]), r.stderr
        assert "Traceback" not in r.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert q(docs_project, "select count(*) from haiku_ratings") == before
