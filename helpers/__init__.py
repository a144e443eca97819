"""Retail recommender book: tested helpers behind the notebooks.

Sub-modules hold one concern each: ``config`` (paths), ``schema`` (the star
schema contract), ``validate`` (checks with clear errors), ``sources`` (the
three data sources), ``data`` (build and load the star schema), ``pipeline``
(papermill runs), ``features``/``segments``, ``evaluation``, ``recommenders``.
"""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto (used by implicit) warns in kernels without ipywidgets; progress still prints as text.
_warnings.filterwarnings("ignore", message="IProgress not found")
