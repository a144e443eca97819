"""Retail recommender book: tested helpers behind the notebooks.

Sub-modules hold one concern each: ``config`` (paths), ``schema`` (the star
schema contract), ``validate`` (checks with clear errors), ``sources`` (the
three data sources), ``data`` (build and load the star schema), ``pipeline``
(papermill runs), ``features``/``segments``, ``evaluation``, ``recommenders``.
"""

__version__ = "0.1.0"
