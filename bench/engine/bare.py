"""The bare DuckDB peer as a script: execute the statements in a JSON list, in order, on a fresh file.

    python bench/engine/bare.py statements.json out.duckdb
"""

import json
import sys
from pathlib import Path

import duckdb

statements = json.loads(Path(sys.argv[1]).read_text())
db = Path(sys.argv[2])
db.unlink(missing_ok=True)
con = duckdb.connect(str(db))
for s in statements:
    con.execute(s)
con.close()
