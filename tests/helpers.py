"""Small helpers shared by the test directories."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent


def query(root: Path, sql: str, database: str = "target/kto_build.duckdb", params=None) -> list[tuple]:
    """Rows of ``sql`` on a project's database, through a read-only connection closed at once."""
    con = duckdb.connect(str(Path(root) / database), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


class ProjectDir:
    """A project folder in a test: write its files (dedented, folders made), query its database.

    The one project-writing helper; the engine tests' ``Proj`` and the generation tests' ``GenProject`` add
    their own ways to run it.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    def query(self, sql: str, params=None) -> list[tuple]:
        return query(self.root, sql, params=params)

    def scalar(self, sql: str, params=None):
        return self.query(sql, params)[0][0]


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(window: str = "1200,900", browser_log: bool = False) -> Iterator:
    """Debian's headless Chromium through chromedriver (installed by scripts/install-test-services.sh if missing),
    with a fresh profile and no background networking; ``browser_log`` keeps the console log readable."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        subprocess.run(["bash", str(REPO / "scripts" / "install-test-services.sh")], check=True)
    os.environ["SE_OFFLINE"] = "true"  # selenium manager must never download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kto-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={window}"):
        opts.add_argument(arg)
    if browser_log:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
