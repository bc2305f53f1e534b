"""Prototype, not part of kto-build: what a parse cache keyed by file text would save on ``plan``.

Run it in a project folder (e.g. bench/work/engine/wide_kto after a bench run) a few
times: the first run parses and fills target/.parse_cache.json, the next ones read
references, vars and normalized SQL from it instead of calling sqlglot. It patches
kto_build.sql in this process only; delete target/.parse_cache.json afterwards.

    cd bench/work/engine/wide_kto
    for i in 1 2 3; do ../../../../.venv/bin/python ../../../engine/proto_parse_cache.py; done
"""

import time

T_START = time.perf_counter()

import hashlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import kto_build.project as projmod  # noqa: E402
import kto_build.sql as sqlmod  # noqa: E402

CACHE_FILE = Path("target/.parse_cache.json")
cache = json.loads(CACHE_FILE.read_text()) if CACHE_FILE.exists() else {}
new: dict = {}
orig_parse, orig_refs, orig_norm, orig_vars = sqlmod.parse, sqlmod.references, sqlmod.normalized, sqlmod.vars_used


class Cached:
    def __init__(self, key: str):
        self.key = key


def parse(text: str, path: str) -> Cached:
    key = hashlib.sha1(text.encode()).hexdigest()
    if key not in cache:
        tree = orig_parse(text, path)
        new[key] = {"refs": [[r.name, r.line, r.col] for r in orig_refs(tree)], "norm": orig_norm(tree),
                    "vars": orig_vars(tree)}
    return Cached(key)


def entry(c: Cached) -> dict:
    return cache.get(c.key) or new[c.key]


sqlmod.parse = parse
sqlmod.references = lambda c: [sqlmod.Reference(*r) for r in entry(c)["refs"]]
sqlmod.normalized = lambda c: entry(c)["norm"]
sqlmod.vars_used = lambda c: entry(c)["vars"]

t0 = time.perf_counter()
project = projmod.Project.load(".")
t1 = time.perf_counter()
project.plan()
t2 = time.perf_counter()
if new:
    cache.update(new)
    CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
    CACHE_FILE.write_text(json.dumps(cache))
print(f"{'cold cache' if new else 'warm cache'}: imports {t0 - T_START:.3f}s  Project.load {t1 - t0:.3f}s  "
      f"plan {t2 - t1:.3f}s")
