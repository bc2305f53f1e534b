"""The local annotator page, driven in Debian's headless Chromium through chromedriver."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import duckdb
import pytest

from tests.helpers import chromium

from .conftest import KTO, kto, page_server

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def browser():
    with chromium(window="1100,900") as driver:
        yield driver


@pytest.fixture
def annotate_server(project_factory):
    root = project_factory(n=4)
    kto(root, "run")
    with page_server([KTO, "--project-dir", str(root), "annotate", "--port", "0", "--no-browser"]) as url:
        yield root, url


def wait_text(driver, element_id, pattern, seconds=10):
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element(By.ID, element_id).text
        if re.search(pattern, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"#{element_id} never matched {pattern!r}: {text!r}")


def test_rate_in_the_browser_reload_and_answers_are_in_duckdb(browser, annotate_server, tmp_path):
    from selenium.webdriver.common.by import By

    root, url = annotate_server
    d = browser
    d.get(url)
    wait_text(d, "progress", r"0 of 4 records complete")
    name = d.find_element(By.ID, "name")
    assert name.is_displayed()
    name.send_keys("Ada")
    d.find_element(By.CSS_SELECTOR, "#who button[type=submit]").click()
    wait_text(d, "completion", r"old pond 0")
    assert not d.find_element(By.ID, "who").is_displayed() and not d.find_element(By.ID, "done").is_displayed()
    assert "Do you like this haiku?" in d.find_element(By.ID, "title").text
    assert "A vibes only assessment is fine!" in d.find_element(By.ID, "guidelines").text
    assert [b.get_attribute("data-value") for b in d.find_elements(By.CSS_SELECTOR, "#labels button")] == ["Yes", "No"]
    d.save_screenshot(str(tmp_path / "annotate.png"))
    if os.environ.get("KTO_BUILD_SCREENSHOT"):
        shutil.copy(tmp_path / "annotate.png", os.environ["KTO_BUILD_SCREENSHOT"])

    d.find_element(By.CSS_SELECTOR, "#labels button[data-value='Yes']").click()  # g00000: Yes (click)
    wait_text(d, "completion", r"old pond 1")
    d.find_element(By.TAG_NAME, "body").send_keys("2")  # g00001: No (keyboard)
    wait_text(d, "completion", r"old pond 2")
    d.find_element(By.TAG_NAME, "body").send_keys("s")  # g00002: skip
    wait_text(d, "completion", r"old pond 3")
    wait_text(d, "progress", r"2 rated by you · 1 left for you · 1 skipped · 2 of 4 records complete")

    d.refresh()  # the name is remembered, the answers come from DuckDB
    wait_text(d, "progress", r"2 rated by you · 1 left for you · 1 skipped · 2 of 4 records complete")
    wait_text(d, "completion", r"old pond 3")

    # `kto-build run` works while the page is open (one short write per answer)
    r = kto(root, "run")
    assert "START annotation haiku_ratings (new answers in the log)" in r.stdout
    d.find_element(By.TAG_NAME, "body").send_keys("1")  # g00003: Yes, after the run
    # the skipped record comes back at the end
    wait_text(d, "completion", r"old pond 2")
    wait_text(d, "again", r"You skipped this one before\.")
    assert d.find_element(By.ID, "meta").text == ""  # model_name is not shown to raters
    d.find_element(By.TAG_NAME, "body").send_keys("u")  # back: the last answer, to change it
    wait_text(d, "completion", r"old pond 3")
    wait_text(d, "again", r"Your answer: Yes\. Choose again to change it\.")
    d.find_element(By.TAG_NAME, "body").send_keys("2")  # g00003: changed to No
    wait_text(d, "completion", r"old pond 2")
    d.find_element(By.TAG_NAME, "body").send_keys("1")  # g00002: Yes at last
    wait_text(d, "done", r"(?i)nothing left to rate")

    con = duckdb.connect(str(root / "target/kto_build.duckdb"), read_only=True)
    try:
        rows = con.execute("select record_id, annotator_id, annotator, value, status, backend from haiku_ratings "
                           "order by pulled_at").fetchall()
    finally:
        con.close()
    assert rows == [("g00000", "ada", "Ada", "Yes", "submitted", "local"),
                    ("g00001", "ada", "Ada", "No", "submitted", "local"),
                    ("g00002", "ada", "Ada", None, "discarded", "local"),
                    ("g00003", "ada", "Ada", "Yes", "submitted", "local"),
                    ("g00003", "ada", "Ada", "No", "submitted", "local"),
                    ("g00002", "ada", "Ada", "Yes", "submitted", "local")]
    r = kto(root, "run")
    assert "START model votes" in r.stdout


def test_api_rejects_bad_answers(annotate_server):
    import httpx

    root, url = annotate_server
    r = httpx.post(url + "api/answer", json={"record_id": "g00000", "annotator": "ada", "value": "Maybe"})
    assert r.status_code == 400 and "not a label" in r.json()["error"]
    r = httpx.post(url + "api/answer", json={"record_id": "g00000", "annotator": " ", "value": "Yes"})
    assert r.status_code == 400 and "annotator name" in r.json()["error"]
    r = httpx.get(url + "static/../../project.py")
    assert r.status_code == 404
    r = httpx.post(url + "api/answer", content=b"not json")
    assert r.status_code == 400
    assert Path(root / "target/kto_build.duckdb").exists()
