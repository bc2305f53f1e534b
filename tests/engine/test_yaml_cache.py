"""target/yaml_cache.json: a cached load is the parse (data, types and every line); a no-op run imports no yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kto_build.yaml_cache import YamlCache
from kto_build.yamlio import YList, YMap, load_yaml

REPO = Path(__file__).resolve().parents[2]

TRICKY = """
base: &base {a: 1, b: [x, {y: 2}]}
other:
  <<: *base
  c: null
1: one
false: yes
f: 1.5
big: 123456789012345678901
e: ""
nested:
  - - deep
    - {k: v}
  -
  - 0x1F
"""


def same(a, b) -> None:
    """Equal data, equal Python types, equal lines, all the way down."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, YMap):
        assert (a.path, a.line, a.key_lines) == (b.path, b.line, b.key_lines)
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, YList):
        assert (a.path, a.line, a.item_lines) == (b.path, b.line, b.item_lines)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    else:
        assert a == b


def test_cached_load_is_the_parse(tmp_path):
    files = [REPO / "project.yml", REPO / "sources.yml", *sorted((REPO / "models").glob("*.yml"))]
    (tmp_path / "tricky.yml").write_text(TRICKY, encoding="utf-8")
    files.append(tmp_path / "tricky.yml")
    cache = YamlCache(tmp_path / "target" / "yaml_cache.json")
    parsed = {f: load_yaml(f, f.name, cache) for f in files}
    cache.save()
    again = YamlCache(tmp_path / "target" / "yaml_cache.json")
    for f in files:
        text = f.read_text(encoding="utf-8")
        hit = again.lookup(f.name, text)
        assert hit is not None, f
        same(parsed[f], hit)
    assert again.lookup("tricky.yml", TRICKY + "\nz: 1\n") is None  # an edit is a miss


def test_dates_are_not_cached(tmp_path):
    f = tmp_path / "d.yml"
    f.write_text("when: 2024-01-02\n", encoding="utf-8")
    cache = YamlCache(tmp_path / "c.json")
    load_yaml(f, "d.yml", cache)
    assert cache.lookup("d.yml", f.read_text()) is None


def test_error_from_cached_project_yml_is_the_same(proj):
    proj.run()
    assert (proj.root / "target" / "yaml_cache.json").exists()
    proj.write("project.yml", "name: demo\ntarget: dev\ntargets:\n  dev: {}\n  prod: {}\n"
                              "vars: {min_len: 3, suffix: '!'}\n")
    first = proj.cli("run", "-t", "prd")  # parses project.yml (a miss), the load then stores it
    proj.cli("run")
    again = proj.cli("run", "-t", "prd")  # project.yml from the cache
    assert first.exit_code == again.exit_code == 2
    assert "project.yml:3: unknown target 'prd'" in first.output
    assert first.output == again.output


PROBE = """
import sys
from kto_build.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("YAML=" + str("yaml" in sys.modules))
"""


def test_noop_run_does_not_import_yaml(proj):
    proj.run()
    res = subprocess.run([sys.executable, "-c", PROBE, "--project-dir", str(proj.root), "run"],
                         capture_output=True, text=True)
    assert "YAML=False" in res.stdout, res.stdout + res.stderr
    proj.write("models/schema.yml", "models:\n  - name: shouty\n    materialized: view\n")  # a miss: parsed
    res = subprocess.run([sys.executable, "-c", PROBE, "--project-dir", str(proj.root), "run"],
                         capture_output=True, text=True)
    assert "YAML=True" in res.stdout, res.stdout + res.stderr


def test_data_test_check_is_redone_when_a_node_goes(proj):
    """The load's data-test check is skipped only for the same definitions and node names: removing the
    node a relationships test points to (its YAML file unchanged, so a cache hit) still fails the load."""
    proj.write("models/extra.sql", "select prompt_id from stg_prompts\n")
    proj.write("models/schema.yml", """
        models:
          - name: shouty
            materialized: view
            columns:
              - name: prompt_id
                tests:
                  - relationships: {to: extra, field: prompt_id}
    """)
    assert proj.run()["exit_code"] == 0
    assert proj.run()["exit_code"] == 0  # the check's pass is now cached
    cache = json.loads((proj.root / "target" / "yaml_cache.json").read_text())
    assert "datatests" in cache["checks"]
    (proj.root / "models" / "extra.sql").unlink()
    out = proj.cli("run")
    assert out.exit_code == 2
    assert "models/schema.yml:7: relationships on model 'shouty' column 'prompt_id' points to unknown node " \
           "'extra'" in out.output, out.output
