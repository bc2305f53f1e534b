"""Files an export writes: the empty Arrow shard datasets 5 leaves out, and content hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path


def write_empty_shard(ds, folder: Path) -> None:
    """datasets 5 saves a 0-row dataset with no data file and ``load_from_disk`` then raises IndexError:
    write the one (empty) Arrow shard it expects, with the dataset's schema, and list it in state.json."""
    import json

    import pyarrow as pa

    state_file = folder / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    if state.get("_data_files"):
        return
    name = "data-00000-of-00001.arrow"
    schema = ds.features.arrow_schema.with_metadata(ds.data.table.schema.metadata)
    with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(schema.empty_table())
    state["_data_files"] = [{"filename": name}]
    state_file.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")


def files(path: Path) -> list[Path]:
    return sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
