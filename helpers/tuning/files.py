"""The tuning files: one JSON file per tuned entry, and the hybrid's pickled rankers.

Conventions
-----------
* ``<tables_dir>/tuning/<name>.json`` holds the entry of one model (``name`` a key of
  :data:`helpers.models.registry.MODELS`: ``{protocol: params}``) or of the hybrid
  (``name = "hybrid"``: ``{protocol: config}``). Each notebook writes only the files
  of the models it tunes, each written atomically (temporary file, then rename), so
  notebooks running at once never share a file: no lock, no merge.
* Tuple values are written as JSON lists and read back as tuples.
* :func:`load_tuning` returns ``{name: entry}`` for every file, keys sorted by name
  (the order does not depend on which notebook ran first).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from helpers.atomic import atomic_path, write_json

__all__ = ["TUNING_DIR", "load_ranker", "load_tuning", "params_key", "save_ranker", "save_tuning", "tuning_path"]

#: Folder of the tuning files inside a tables folder.
TUNING_DIR = "tuning"


def jsonable(params: dict) -> dict:
    """``params`` with tuples as lists (as JSON writes them)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def restore(params: dict) -> dict:
    """``params`` as read from JSON, lists back to tuples."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}


def params_key(params: dict) -> str:
    """A canonical string of a parameter dict (tuples and lists alike), for sharing identical fits."""
    return json.dumps(jsonable(params), sort_keys=True)


def tuning_path(tables_dir, name: str) -> Path:
    """The tuning file of one entry: ``<tables_dir>/tuning/<name>.json``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a tuning entry name: {name!r}")
    return Path(tables_dir) / TUNING_DIR / f"{name}.json"


def save_tuning(best: dict[str, dict], tables_dir) -> list[Path]:
    """Write each ``{name: {protocol: params}}`` entry to its own file (:func:`tuning_path`),
    atomically; other entries' files are left alone. Returns the paths written."""
    paths = []
    for name, by_protocol in best.items():
        entry = {p: jsonable(v) if isinstance(v, dict) else v for p, v in by_protocol.items()}
        paths.append(write_json(tuning_path(tables_dir, name), entry))
    return paths


def load_tuning(tables_dir) -> dict:
    """``{name: {protocol: params}}`` of every tuning file of ``tables_dir``, sorted by name."""
    folder = Path(tables_dir) / TUNING_DIR
    files = sorted(folder.glob("*.json"), key=lambda p: p.stem) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder} holds no tuning file: run the model notebooks (03-06) first")
    out = {}
    for path in files:
        raw = json.loads(path.read_text())
        out[path.stem] = {p: (restore(v) if isinstance(v, dict) else v) for p, v in raw.items()}
    return out


def save_ranker(ranker, path) -> Path:
    """Pickle a fitted ranker (written to a temporary file, then renamed)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(ranker, protocol=pickle.HIGHEST_PROTOCOL))
    return Path(path)


def load_ranker(config: dict, tables_dir):
    """The ranker of a protocol's ``hybrid`` config (None when it has none)."""
    spec = config.get("ranker")
    if not spec:
        return None
    path = Path(tables_dir) / spec["file"]
    if not path.exists():
        raise FileNotFoundError(f"{path}: the hybrid's ranker is missing; rerun the hybrid notebook (06)")
    return pickle.loads(path.read_bytes())
