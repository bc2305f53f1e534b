#!/usr/bin/env bash
# Peers for bench/bench_engine.py, in their own venv (.venv-bench, gitignored by `.venv-*/`):
# dbt-core 1.10 + dbt-duckdb 1.9 on the SAME duckdb version as the main venv, so the
# comparison measures the tools, not two DuckDB releases. Never installs into .venv.
# SQLMesh is left out on purpose (see docs/bench-engine.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MAIN_DUCKDB=$(.venv/bin/python -c 'import duckdb; print(duckdb.__version__)')
if [ ! -x .venv-bench/bin/python ]; then
  "$PY" -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install -q "dbt-core==1.10.*" "dbt-duckdb==1.9.*" "duckdb==${MAIN_DUCKDB}" 2>&1 | { grep -v "^WARNING: Location" || true; }
.venv-bench/bin/python - <<PY
import duckdb, importlib.metadata as md
print("peers ready: dbt-core", md.version("dbt-core"), "dbt-duckdb", md.version("dbt-duckdb"),
      "duckdb", duckdb.__version__)
assert duckdb.__version__ == "${MAIN_DUCKDB}", "duckdb differs from the main venv"
PY
