"""Fitted models kept on disk between notebooks of one dataset.

The model notebooks (03-05) fit each model's chosen parameters on the validation
stage (while tuning) and on the test stage (the refit); the hybrid notebook (06)
needs exactly those fits again. :func:`fit_model` stores a fitted model and loads
it back instead of refitting when the same model, parameters and stage come again.

Conventions
-----------
* Only stages that carry a cache location are cached:
  ``FitData.extras["model_cache"] = (folder, stage_label)``, set by
  :func:`enable` (``helpers.tuning.windows.prepare_stages`` does it for the star schema
  of a processed folder). Other fit data (tests, the API) always fit.
* The folder is ``<processed_dir>/models/<data fingerprint>-<code hash>``: new data
  or any change of the ``helpers`` code gives a new folder, and writing into it
  removes the folders of older data or code. ``python -m helpers.pipeline run
  --no-cache`` empties ``<processed_dir>/models`` before the first notebook.
* A model is pickled without its :class:`FitData` (the stage's own object is put
  back when loading), so a loaded model scores exactly as the model that was
  stored (tested). Files are written atomically (:mod:`helpers.atomic`).
* Results computed from a cached model can be kept the same way, under a name and
  parameters of their own (the export's similar products,
  :func:`helpers.tuning.production.similar_products`).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

from helpers.atomic import atomic_path
from helpers.config import code_hash
from helpers.models.base import FitData, Recommender

SUBDIR = "models"
_FIT = "fit-data"


def folder(processed_dir, fingerprint: str) -> Path:
    """The cache folder of ``processed_dir`` for its data ``fingerprint`` and this code."""
    return Path(processed_dir) / SUBDIR / f"{fingerprint}-{code_hash()[:12]}"


def enable(fit: FitData, processed_dir, fingerprint: str, stage: str) -> None:
    """Give ``fit`` a cache location under ``processed_dir`` (see module conventions)."""
    fit.extras["model_cache"] = (folder(processed_dir, fingerprint), f"{stage}-{fit.as_of.date()}")


def kept(where: Path, name: str, compute: Callable[[], object]):
    """``compute()``, kept as ``<where>/<name>.pkl`` for the other notebooks of the run: loaded
    when it is there (a truncated or unreadable file is recomputed), else computed and written
    atomically (``where`` is a :func:`folder`, so new data or code never reads it)."""
    path = Path(where) / f"{name}.pkl"
    if path.exists():
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except Exception:  # a truncated or incompatible file is a miss, never an error
            pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    return value


def clear(processed_dir) -> None:
    """Remove every cached model of a processed folder."""
    shutil.rmtree(Path(processed_dir) / SUBDIR, ignore_errors=True)


def _canonical(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)  # 7 and 7.0 (a parameter read back from a tuning file) are one key
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return repr(value)


def stage_label(fit: FitData) -> str | None:
    """The cache stage label of ``fit`` (``None``: not cached)."""
    where = fit.extras.get("model_cache")
    return None if where is None else where[1]


def model_path(fit: FitData, name: str, params: dict) -> Path | None:
    """Where ``name`` with ``params`` fitted on ``fit`` is stored (``None``: not cached)."""
    where = fit.extras.get("model_cache")
    if where is None:
        return None
    folder, stage = where
    key = json.dumps({k: _canonical(v) for k, v in sorted(params.items())}, sort_keys=True)
    digest = hashlib.sha256(f"{name}|{key}".encode()).hexdigest()[:16]
    return Path(folder) / f"{stage}-{name}-{digest}.pkl"


class _Pickler(pickle.Pickler):
    def __init__(self, file, fit: FitData):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._fit = fit

    def persistent_id(self, obj):
        return _FIT if obj is self._fit else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, fit: FitData):
        super().__init__(file)
        self._fit = fit

    def persistent_load(self, pid):
        if pid == _FIT:
            return self._fit
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


def store(model: Recommender, fit: FitData, name: str, params: dict) -> Path | None:
    """Write a model fitted on ``fit`` (no-op when ``fit`` is not cached)."""
    path = model_path(fit, name, params)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    for other in path.parent.parent.iterdir():  # older data or code: never read again
        if other.is_dir() and other != path.parent:
            shutil.rmtree(other, ignore_errors=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        _Pickler(f, fit).dump(model)
    return path


def load(fit: FitData, name: str, params: dict) -> Recommender | None:
    """The stored model for ``(name, params)`` on ``fit``, or ``None``."""
    path = model_path(fit, name, params)
    if path is None or not path.exists():
        return None
    try:
        with path.open("rb") as f:
            return _Unpickler(f, fit).load()
    except Exception:  # a truncated or incompatible file is a miss, never an error
        return None


def fit_model(name: str, params: dict, fit: FitData, factory: Callable[[], Recommender]) -> Recommender:
    """The cached fit of ``(name, params)`` on ``fit``, or ``factory()`` fitted now and stored
    (also any other result computed from ``fit``, e.g. :func:`helpers.tuning.production.similar_products`)."""
    model = load(fit, name, params)
    if model is None:
        model = factory()
        store(model, fit, name, params)
    return model
