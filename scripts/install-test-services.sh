#!/usr/bin/env bash
# Install what the annotation tests and benchmarks start on 127.0.0.1:
#   - Debian's redis-server, chromium and chromium-driver (apt, as root), if missing;
#   - argilla-server 2.8.0 in its own venv at .cache/argilla-server-venv (it pins
#     pydantic/httpx/typer versions that must not mix with the project's .venv).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-services: need root to apt-get install ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi

VENV=.cache/argilla-server-venv
STAMP="$VENV/.argilla-server-2.8.0"
if [ ! -f "$STAMP" ]; then
    PY="${ARGILLA_SERVER_PYTHON:-python3}"
    rm -rf "$VENV"
    mkdir -p .cache
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # typer 0.9.4 (pinned by argilla-server) breaks with click >= 8.2
    "$VENV/bin/python" -m pip install -q "argilla-server==2.8.0" "click<8.2"
    touch "$STAMP"
fi
echo "install-test-services: redis-server, chromium, chromedriver and $VENV are ready"
