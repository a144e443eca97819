"""The fit windows of the book: the split's stages, earlier validation windows (rolling
origin), and the later fit windows whose models the model notebooks fit ahead.

Fits on these windows are shared between notebooks through the model cache
(:mod:`helpers.tuning.model_cache`) when the processed folder has a data fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from helpers.config import processed_dir as resolve
from helpers.data.products import ProductLookup
from helpers.data.split import Split, temporal_split
from helpers.data.star import load_meta
from helpers.features.segments import compute_segments
from helpers.models.base import FitData
from helpers.models.registry import HYBRID_EXTRAS
from helpers.tuning import model_cache
from helpers.tuning.files import params_key
from helpers.tuning.fits import make_model
from helpers.tuning.production import N_SIMILAR, production_fit_data, production_tuning, similar_products
from helpers.tuning.stages import Stage, make_stage

__all__ = ["PRODUCTION_STAGE", "LaterFit", "earlier_stages", "later_fits", "prefit", "prepare_stages", "segments_of"]


def prepare_stages(tables: dict, test_days: int = 28, valid_days: int = 28, processed_dir=None,
                   names=("valid", "test")):
    """The split (also written to ``split.json``) and its stages with segments: ``(split, valid,
    test)``, or ``(split, *stages)`` in the order of ``names``. Their fits go through the model
    cache, so a notebook loads the fits another one made on the same window."""
    split = temporal_split(tables["fact_transactions"], test_days=test_days, valid_days=valid_days)
    split.write(resolve(processed_dir) / "split.json")
    segments = segments_of(processed_dir)
    stages = [make_stage(tables, split, name, segments) for name in names]
    _share_fits([(st.fit, st.name) for st in stages], processed_dir)
    return (split, *stages)


def _data_fingerprint(processed_dir) -> str | None:
    """The data fingerprint of a processed folder (None: no metadata, or none recorded)."""
    try:
        return load_meta(processed_dir).get("fingerprint") or None
    except FileNotFoundError:
        return None


def segments_of(processed_dir) -> Callable[[dict, pd.Timestamp], pd.DataFrame]:
    """:func:`~helpers.features.segments.compute_segments`, kept in the model cache folder per fit
    window (its end and the tables it reads) when the processed folder has a data fingerprint:
    every notebook builds the stages it needs, and the segments of a window are computed by the
    first one only. Same frame (pickled, its thresholds in ``.attrs`` included)."""
    fingerprint = _data_fingerprint(processed_dir)
    if not fingerprint:
        return compute_segments
    where = model_cache.folder(resolve(processed_dir), fingerprint)

    def segments(tables: dict, as_of) -> pd.DataFrame:
        used = "+".join(n for n in ("customer_exposure",) if n in tables) or "none"
        return model_cache.kept(where, f"segments-{pd.Timestamp(as_of).date()}-{used}",
                                lambda: compute_segments(tables, as_of))

    return segments


def _share_fits(fits: list[tuple[FitData, str]], processed_dir) -> None:
    """Fits on these ``(fit data, stage label)`` are shared between notebooks
    (:mod:`helpers.tuning.model_cache`) when the processed folder has a data fingerprint."""
    fingerprint = _data_fingerprint(processed_dir)
    if fingerprint:
        for fit, stage in fits:
            model_cache.enable(fit, resolve(processed_dir), fingerprint, stage)


def earlier_stages(tables: dict, split, valid_days: int, n: int, processed_dir=None) -> list[Stage]:
    """``n`` validation stages before the validation window (rolling origin).

    Stage ``valid-i`` fits on the data before ``valid_start - i * valid_days`` and
    scores the ``valid_days`` after that date; segments are computed on its own fit
    window. Nothing of the validation or test windows is seen.
    """
    stages, segments = [], segments_of(processed_dir)
    for i in range(1, n + 1):
        start = split.valid_start - pd.Timedelta(days=i * valid_days)
        if start <= split.start + pd.Timedelta(days=valid_days):
            raise ValueError(f"{n} earlier windows of {valid_days} days leave too little training data "
                             f"before {start.date()} (data start {split.start.date()})")
        shifted = Split(split.start, start, start + pd.Timedelta(days=valid_days), split.end)
        stage = make_stage(tables, shifted, "valid", segments)
        stage.name = f"valid-{i}"
        stages.append(stage)
    _share_fits([(st.fit, st.name) for st in stages], processed_dir)
    return stages


#: Stage label of the export's all-data fits (:func:`helpers.export.production.fit_production`).
PRODUCTION_STAGE = "production"


@dataclass
class LaterFit:
    """A fit window used after the model notebooks: one of the hybrid's earlier validation
    windows (06) or the export's all-data fit (08). The chosen models are fitted there ahead,
    into the model cache, so that those notebooks load them (:func:`prefit`)."""

    fit: FitData
    production: bool = False  # fitted with the export's parameters (helpers.tuning.production.production_tuning)


def later_fits(tables: dict, split, valid_days: int = 28, weight_windows: int = 2,
               processed_dir=None) -> list[LaterFit]:
    """The fit windows of the hybrid's ``weight_windows - 1`` earlier validation windows
    (:func:`earlier_stages`, the same stages as the hybrid notebook) and of the export
    (:func:`helpers.tuning.production.production_fit_data`), each with its model cache location.

    Empty when the processed folder has no data fingerprint (nothing would be shared).
    Earlier windows that do not fit in the data are left out (the hybrid notebook says so
    when it asks for them)."""

    if _data_fingerprint(processed_dir) is None:
        return []
    try:
        earlier = earlier_stages(tables, split, valid_days, weight_windows - 1, processed_dir)
    except ValueError:
        earlier = []
    production = production_fit_data(tables, segments_fn=segments_of(processed_dir))
    _share_fits([(production, PRODUCTION_STAGE)], processed_dir)
    return [LaterFit(st.fit) for st in earlier] + [LaterFit(production, production=True)]


def prefit(best: dict[str, dict], later: list[LaterFit], seed: int = 0, log=None) -> int:
    """Fit every chosen ``{model: {protocol: params}}`` (and buy-again's fixed hybrid extras,
    :data:`HYBRID_EXTRAS`) on each later fit window into the model cache; fits already there
    are skipped. Returns the number of fits made. The hybrid and export notebooks load them
    instead of fitting: same parameters and fit data, hence the same models."""

    made = 0
    for target in later:
        tuned = production_tuning(best, seed) if target.production else best  # as the export fits them
        specs: dict[tuple[str, str], dict] = {}
        for name, by_protocol in tuned.items():
            entries = list(by_protocol.values())
            entries += [params for base, params in HYBRID_EXTRAS.values() if base == name]  # fixed, as given
            for params in entries:
                specs[(name, params_key(params))] = params
        for (name, _), params in specs.items():
            path = model_cache.model_path(target.fit, name, params)
            if path is None or path.exists():
                continue
            make_model(name, params, target.fit)  # fitted and stored, then dropped
            made += 1
            if log:
                log(f"{name} {params} fitted ahead on {model_cache.stage_label(target.fit)}")
        if target.production and "all" in tuned.get("content", {}):
            _similar_ahead(tuned["content"]["all"], target.fit, log)
    return made


def _similar_ahead(params: dict, fit: FitData, log=None) -> None:
    """Rank the export's similar products (every product, :data:`helpers.tuning.production.N_SIMILAR`
    deep) with its content model into the model cache, as the export asks for them."""

    if model_cache.model_path(fit, "content", params) is None:
        return
    ids = ProductLookup(fit.products).ids  # the export's product list, so the cache key is the one it asks for
    similar_products(make_model("content", params, fit), params, ids, N_SIMILAR)
    if log:
        log(f"similar products ({N_SIMILAR} per product, content {params}) ranked ahead on "
            f"{model_cache.stage_label(fit)}")
