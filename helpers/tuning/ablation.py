"""Which of the re-ranker's feature groups matter: each group removed in turn, on validation.

The re-ranker of :func:`~helpers.tuning.hybrid_workflow.run_hybrid` is trained on the earlier
validation windows and scored on the validation window (its held-out choice). Here the same
training and scoring are repeated with the columns of one group left out, for every group:

* ``timing`` (the pair's, the customer's and the product's purchase history: the ranker's
  base features, :data:`~helpers.models.ranker.FEATURES`), each retail signal group
  (:data:`~helpers.features.signals.SIGNAL_GROUPS`) the source can feed, and ``scores`` (the
  components' normalised scores);
* the full ranker and, for reference, the weighted blend searched on the same earlier windows.

The drop in validation NDCG@5 when a group is removed is what that group adds given the others.
Features are computed once per window (the full set) and columns are dropped; the test window is
never read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.features.signals import SIGNAL_GROUPS
from helpers.models.ranker import FEATURES, Examples, Ranker, pool_examples
from helpers.models.registry import HYBRID_COMPONENTS, PROTOCOLS
from helpers.tuning.files import load_tuning
from helpers.tuning.hybrid_workflow import stage_pools
from helpers.tuning.stages import Stage
from helpers.tuning.weights import CandidatePool, search_weights

__all__ = ["feature_groups", "ablation"]


def feature_groups(history, n_components: int) -> dict[str, np.ndarray]:
    """Column indices of every group in the ranker's design matrix (see module doc)."""
    out = {"timing": np.arange(len(FEATURES))}
    at = len(FEATURES)
    signals = history.signals
    for group in (signals.groups if signals is not None else ()):
        width = len(SIGNAL_GROUPS[group])
        out[group] = np.arange(at, at + width)
        at += width
    out["scores"] = np.arange(at, at + n_components)
    return out


def _without(ex: Examples, drop: np.ndarray) -> Examples:
    keep = np.setdiff1d(np.arange(ex.x.shape[1]), drop)
    return Examples(ex.x[:, keep], ex.y, ex.valid, ex.draws, ex.draw_at)


def ablation(valid: Stage, earlier: list[Stage], tables_dir, ranker: dict, names=HYBRID_COMPONENTS,
             pool_size: int = 100, n_trials: int = 300, by_history: bool = True, light_max_baskets: int = 5,
             seed: int = 0, protocols=PROTOCOLS, log=None) -> pd.DataFrame:
    """One row per (protocol, variant): ``variant`` (``all features``, ``without <group>``,
    ``weighted blend``), ``removed`` (the group or ''), ``valid NDCG@5`` and ``change`` against the
    full ranker. ``ranker``: :class:`~helpers.models.ranker.Ranker` keyword arguments (as in the
    hybrid notebook); components and their parameters from the tuning files in ``tables_dir``."""
    if not earlier:
        raise ValueError("the ablation trains on earlier validation windows: pass at least one")
    pools = stage_pools(load_tuning(tables_dir), (valid, *earlier), names, pool_size, protocols)
    histories = {st.name: Ranker(**ranker).history(st.fit) for st in (valid, *earlier)}
    rows = []
    for protocol in protocols:
        pool = pools[valid.name][protocol]
        early = [pools[st.name][protocol] for st in earlier]
        train = [pool_examples(p, histories[st.name]) for p, st in zip(early, earlier)]
        held = pool_examples(pool, histories[valid.name])
        groups = feature_groups(histories[valid.name], len(pool.names))
        variants = {"": np.zeros(0, dtype=np.int64), **groups}
        values = {}
        for group, drop in variants.items():
            model = Ranker(**ranker).fit([_without(ex, drop) for ex in train])
            scores = _without(held, drop).predict_slots(model).reshape(pool.cands.shape)
            values[group] = pool.evaluate_scores(scores)
            if log:
                log(f"{protocol}: {'all features' if not group else 'without ' + group}: {values[group]:.4f}")
        w, _ = search_weights(CandidatePool.concat(early) if len(early) > 1 else early[0], n_trials=n_trials,
                              seed=seed, by_history=by_history, light_max_baskets=light_max_baskets)
        blend = pool.evaluate(pool.weight_matrix(w, light_max_baskets))
        full = values[""]
        for group, value in values.items():
            rows.append({"protocol": protocol, "variant": "all features" if not group else f"without {group}",
                         "removed": group, "columns": int(len(variants[group])), "valid NDCG@5": value,
                         "change": value - full})
        rows.append({"protocol": protocol, "variant": "weighted blend", "removed": "", "columns": 0,
                     "valid NDCG@5": blend, "change": blend - full})
    return pd.DataFrame(rows)
