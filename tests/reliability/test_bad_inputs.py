"""Bad input, table-driven: each case answers with exactly one line (its first line is fixed here), a non-zero
exit, no traceback, and leaves every stored table and the database file as they were (issue 9, items 7, 8)."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from tests.annotation.conftest import make_project

KTO = str(Path(sys.executable).with_name("kto-build"))
DB = "target/kto_build.duckdb"


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text, encoding="utf-8")


def _damage(root: Path, how: str) -> None:
    p = root / DB
    data = p.read_bytes()
    p.write_bytes(data[:20000] if how == "truncate" else b"\x00garbage" * 600)


def _html_server():
    class Html(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _page(self):
            body = b"<!DOCTYPE HTML>\n<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _page

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# (id, change to the built project, command, exit code, exact first line of stderr)
CASES = [
    ("reserved-_kto_", lambda r: _write(r, "models/_kto_build_stats.sql", "select 1 as a\n"), ["ls"], 2,
     "error: models/_kto_build_stats.sql:1: '_kto_build_stats' is a name kto-build reserves for its own tables "
     "(names starting with '_kto_' are kto-build's; rename it)"),
    ("reserved-latest-view", lambda r: _write(r, "models/haiku_ratings_latest.sql", "select 1 as a\n"), ["run"], 2,
     "error: models/haiku_ratings_latest.sql:1: 'haiku_ratings_latest' is the view kto-build creates for "
     "annotation 'haiku_ratings' (sources.yml:5) (rename it)"),
    ("empty-prompt-file", lambda r: _write(r, "data/to_annotate.jsonl", ""), ["run"], 1,
     "error: to_annotate: sources.yml:3: data/to_annotate.jsonl is empty (no prompts to load) (add rows to the "
     "file or point 'path' at another one)"),
    ("empty-sources-yml", lambda r: _write(r, "sources.yml", "# nothing yet\n"), ["run"], 2,
     "error: models/votes.sql:2:6: unknown table 'haiku_ratings' (sources.yml is empty: define 'prompts:', "
     "'generators:' or 'annotations:' there)"),
    ("bad-vars-yaml", None, ["--vars", "{a: [1", "run"], 2,
     "error: --vars '{a: [1' is not valid YAML at column 7: expected ',' or ']', but got '<stream end>' "
     "(write a mapping such as --vars '{min_agreement: 0.6}')"),
    ("vars-not-a-mapping", None, ["run", "--vars", "3"], 2,
     "error: --vars '3' is not a mapping (write --vars '{min_annotators: 3}')"),
    ("corrupt-database", lambda r: _damage(r, "garbage"), ["run"], 2,
     f"error: {DB} is damaged or not a DuckDB database: The file \"{{root}}/{DB}\" exists, but it is not a "
     "valid DuckDB database file!; kto-build did not modify it (restore it from a backup, or move it away and "
     "run again to rebuild, losing the generations and annotations it held)"),
    ("truncated-database", lambda r: _damage(r, "truncate"), ["ls"], 2,
     f"error: {DB} is damaged or not a DuckDB database: Could not read enough bytes from file "),
    ("argilla-url-answers-html", "html", ["run", "-t", "prod"], 1,
     "error: haiku_ratings: sources.yml:5: Argilla failed while connecting: Argilla SDK error: ArgillaAPIError: "
     "Server error. Details: an HTML page titled '502 Bad Gateway' instead of the Argilla API"),
]


def _snapshot(root: Path) -> dict:
    p = root / DB
    if not p.exists():
        return {}
    try:
        con = duckdb.connect(str(p), read_only=True)
    except duckdb.Error:  # a damaged file: it must stay byte for byte as it was
        return {"file": hashlib.md5(p.read_bytes()).hexdigest()}
    try:  # every table's row count (the run log and the build history gain a row for a failed run and a failed
        # build: that is a record of what happened, not data)
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                             "WHERE NOT (schema_name = '_kto_build' AND table_name = 'runs')").fetchall()
        where = {("_kto_build", "node_history"): " WHERE status <> 'failed'"}
        counts = {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"{where.get((s, t), "")}').fetchone()[0]
                  for s, t in tables}
    finally:
        con.close()
    return counts


@pytest.mark.parametrize(("case", "change", "args", "code", "first"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, case, change, args, code, first, monkeypatch):
    root = make_project(tmp_path / "proj", backend="local")
    built = subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    env = None
    srv = None
    if change == "html":
        srv = _html_server()
        env = {"PATH": "/usr/bin:/bin", "ARGILLA_API_URL": f"http://127.0.0.1:{srv.server_address[1]}",
               "ARGILLA_API_KEY": "owner.key.bad-input-test", "HOME": str(tmp_path)}
        (root / "target" / "prod.duckdb").unlink(missing_ok=True)
    elif change is not None:
        change(root)
    before = _snapshot(root)
    try:
        res = subprocess.run([KTO, "--project-dir", str(root), *args], capture_output=True, text=True, env=env,
                             timeout=120)
    finally:
        if srv is not None:
            srv.shutdown()
    assert res.returncode == code, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(first.replace("{root}", str(root))), lines[0]
    assert "<!DOCTYPE" not in res.stderr + res.stdout and "<html" not in res.stderr + res.stdout
    assert _snapshot(root) == before  # nothing stored changed, nothing lost
