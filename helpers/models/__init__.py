"""Models: the fit-window data (``fitdata``), ranking utilities (``ranking``), the thread
budget (``threads``), the recommender interface (``base``), one module per recommender
(``popularity``, ``buy_again``, ``als``, ``itemknn``, ``ease``, ``content``, ``ranker``,
``hybrid`` with ``normalize`` and ``rules``) and the registry of reported models (``registry``).

Models never import the evaluation engine (lint-imports: models and evaluation are
independent); tuning and weight search live in :mod:`helpers.tuning`. This package
re-exports only the light common names below: import a model or the registry from its
module (they load implicit and scikit-learn).
"""

from helpers.models.base import DEFAULT_CHUNK, Recommender
from helpers.models.fitdata import FitData, make_fit_data
from helpers.models.ranking import excluded_matrix, mask_excluded, stable_dot, top_k, top_k_parts
from helpers.models.threads import THREADS_ENV, blas_limits, map_blocks, n_threads

__all__ = [
    "DEFAULT_CHUNK", "THREADS_ENV", "FitData", "Recommender", "blas_limits", "excluded_matrix", "make_fit_data",
    "map_blocks", "mask_excluded", "n_threads", "stable_dot", "top_k", "top_k_parts",
]
