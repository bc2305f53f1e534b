"""Start and stop the annotation services on 127.0.0.1: Debian's redis-server
and argilla-server 2.8 (its own venv, built by scripts/install-test-services.sh
when missing). Used by tests/annotation/conftest.py and bench/bench_annotation.py;
runs under the project's venv (launch.py runs under the server's)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVER_VENV = REPO / ".cache" / "argilla-server-venv"
SERVER_PY = SERVER_VENV / "bin" / "python"
LAUNCH = REPO / "scripts" / "argilla_server" / "launch.py"
INSTALL = REPO / "scripts" / "install-test-services.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, seconds: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:] if log else ''}")
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {seconds}s: {log.read_text()[-3000:] if log else ''}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ensure_installed() -> None:
    if (shutil.which("redis-server") is None or not SERVER_PY.exists()
            or not (SERVER_VENV / ".argilla-server-2.8.0").exists()):
        subprocess.run(["bash", str(INSTALL)], check=True)


def start_redis(log: Path) -> tuple[subprocess.Popen, str]:
    """A redis-server without persistence on a free port; returns (process, url) once it answers PING."""
    ensure_installed()
    port = free_port()
    with open(log, "w") as fh:
        proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"], stdout=fh, stderr=subprocess.STDOUT)

    def ping():
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    try:
        wait_for(ping, 15, "redis-server", proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, f"redis://127.0.0.1:{port}/0"


def start_argilla(home: Path, redis_url: str, owner_key: str, annotators: dict[str, str],
                  workspace: str) -> tuple[subprocess.Popen, str]:
    """argilla-server with an owner and annotators (name -> api key) created by its own CLI;
    returns (process, url) once /api/v1/status answers. The log is home/server.log."""
    ensure_installed()
    home.mkdir(parents=True, exist_ok=True)
    base = [str(SERVER_PY), str(LAUNCH), "--home", str(home), "--redis-url", redis_url]
    setup = [*base, "setup", "--owner-key", owner_key]
    for name, key in annotators.items():
        setup += ["--annotator", f"{name}:{key}:{workspace}"]
    subprocess.run(setup, check=True, capture_output=True, timeout=180)
    port = free_port()
    log = home / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([*base, "serve", "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/api/v1/status", timeout=1).status_code == 200, 90, "argilla-server",
                 proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, url
