"""The local page shows a judge's verdict as a pre-selected "model suggestion"; only people's answers are logged.

Headless Chromium against the real page server (a subprocess). The judge table is written by the test with
the judge node's columns, and the annotation node's ``suggestions_from`` is set on the loaded project, as the
project wiring does for a judge node whose ``annotation`` is this node.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

import duckdb
import pytest

from tests.helpers import chromium

from .conftest import kto, page_server

pytestmark = pytest.mark.slow

DB = "target/kto_build.duckdb"
SERVE = """import sys
from kto_build.annotate_server import serve
from kto_build.project import Project
project = Project.load(sys.argv[1])
node = project.node("haiku_ratings")
node.suggestions_from = ("fake_judge",)
serve(project, node, port=0, open_browser=False, ready=lambda url: print(url, flush=True))
"""


def q(root, sql, params=None, read_only=True):
    con = duckdb.connect(str(root / DB), read_only=read_only)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def page(project_factory):
    root = project_factory(n=3)
    kto(root, "run")
    q(root, "CREATE TABLE fake_judge (record_id VARCHAR, judge_model VARCHAR, label VARCHAR, score DOUBLE, "
            "rationale VARCHAR, raw VARCHAR, status VARCHAR, error VARCHAR, created_at TIMESTAMP, worker VARCHAR)",
      read_only=False)
    for r in [("g00000", "judge-big", "Yes", 0.91, "ok"), ("g00000", "judge-small", "No", 0.4, "ok"),
              ("g00001", "judge-small", "No", None, "ok"), ("g00002", "judge-small", None, None, "unparsed")]:
        q(root, "INSERT INTO fake_judge VALUES (?, ?, ?, ?, 'r', 'raw', ?, NULL, ?, 'host:1')",
          [*r, datetime(2026, 1, 1)], read_only=False)
    with page_server([sys.executable, "-c", SERVE, str(root)]) as url:
        yield root, url


def shows(d, completion, note, suggested, focused) -> None:
    """Wait until the page shows this record, a suggestion note starting with ``note`` (None: no note), these
    suggested (and tagged) buttons and this focused one: the render is asynchronous, so wait on what it
    shows, never on time."""
    want = {"completion": completion, "note": note, "suggested": suggested, "tags": suggested, "focused": focused}
    last: dict = {}

    def check() -> bool:
        st = state(d)
        if st["note"] and note:
            st["note"] = st["note"][:len(note)]
        last.update(st)
        return st == want

    try:
        wait_for(check, "")
    except AssertionError:
        raise AssertionError(f"the page never showed {want}; last: {last}") from None


def wait_for(check, what, seconds=10):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"never: {what} (last: {last!r})")


def state(d):
    """What the page shows: record, suggestion note, suggested buttons, the focused button, tags shown."""
    from selenium.webdriver.common.by import By

    buttons = d.find_elements(By.CSS_SELECTOR, "#labels button")
    note = d.find_element(By.ID, "suggestion")
    active = d.switch_to.active_element
    return {"completion": (d.find_element(By.ID, "completion").text.splitlines() or [""])[0],
            "note": note.text if note.is_displayed() else None,
            "suggested": [b.get_attribute("data-value") for b in buttons if "suggested" in b.get_attribute("class")],
            "focused": active.get_attribute("data-value") if active.tag_name == "button" else None,
            "tags": [b.get_attribute("data-value") for b in buttons
                     if b.find_element(By.CSS_SELECTOR, ".tag").is_displayed()]}


def test_suggestion_is_preselected_and_marked_and_only_the_persons_choice_is_logged(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root, url = page
    with chromium(window="1100,900") as d:
        d.get(url)
        wait_for(lambda: d.find_element(By.ID, "name").is_displayed(), "the name form")
        d.find_element(By.ID, "name").send_keys("Ada")
        d.find_element(By.CSS_SELECTOR, "#who button[type=submit]").click()
        # g00000: two judge models; the higher score is shown, with the model's name and score
        shows(d, "old pond 0", "Model suggestion: Yes (judge-big, score 0.91).", ["Yes"], "Yes")
        assert d.find_element(By.CSS_SELECTOR, "#labels button.suggested .tag").text.lower() == "model suggestion"
        d.save_screenshot(str(tmp_path / "suggestion.png"))
        # a suggestion on screen is not an answer: nothing is logged, the record still waits
        assert q(root, "SELECT count(*) FROM haiku_ratings")[0][0] == 0
        assert "0 of 3 records complete" in d.find_element(By.ID, "progress").text

        d.switch_to.active_element.send_keys(Keys.ENTER)  # Ada accepts the suggestion
        shows(d, "old pond 1", "Model suggestion: No (judge-small).", ["No"], "No")  # no score: none shown
        d.find_element(By.CSS_SELECTOR, "#labels button[data-value='Yes']").click()  # Ada disagrees
        # g00002: the verdict was unparsed: no suggestion, nothing pre-selected
        shows(d, "old pond 2", None, [], None)
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)  # Enter with nothing suggested answers nothing
        d.find_element(By.TAG_NAME, "body").send_keys("2")
        wait_for(lambda: d.find_element(By.ID, "done").is_displayed(), "done")
    assert q(root, "SELECT record_id, annotator, value, status FROM haiku_ratings ORDER BY pulled_at") == [
        ("g00000", "Ada", "Yes", "submitted"), ("g00001", "Ada", "Yes", "submitted"),
        ("g00002", "Ada", "No", "submitted")]
