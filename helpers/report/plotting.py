"""One chart style for the whole book, and saving + gluing figures.

Call :func:`set_style` once at the top of a notebook. Every chart helper takes
a ``title``, an ``xlabel`` and a ``ylabel`` (with units, e.g. ``"Sales ($ per
week)"``); :func:`save_figure` refuses a figure whose data axes miss one of
them, writes ``<reports_dir>/figures/<key>.png`` and glues the figure under
``key`` (``myst_nb.glue(key, fig, display=False)``) for a ``{glue:figure}``
directive, then closes it so it is not shown twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.colors import TwoSlopeNorm

from helpers.atomic import atomic_path
from helpers.report import palette
from helpers.report.glue import report_dirs

PALETTE = "colorblind"
FIGSIZE = (8.0, 4.2)
SEQUENTIAL = "crest"
DIVERGING = "vlag"
RC = {
    "figure.figsize": FIGSIZE,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}


def set_style() -> None:
    """Seaborn ``whitegrid`` theme, colour-blind palette, one figure size; quiet matplotlib."""
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE, rc=RC)
    matplotlib.set_loglevel("error")
    logging.getLogger("matplotlib").setLevel(logging.ERROR)


def colors(n: int | None = None) -> list:
    """``n`` colours for series that are not models (models: :func:`palette.model_color`)."""
    return sns.color_palette(PALETTE, n)


def legend_outside(ax, title: str | None = None, **kwargs):
    """The legend to the right of the axes, outside the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, title=title,
                     fontsize=kwargs.pop("fontsize", 9), **kwargs)


def new_figure(nrows: int = 1, ncols: int = 1, figsize=None, **kwargs):
    """``(fig, axes)`` with constrained layout in the book's size."""
    return plt.subplots(nrows, ncols, figsize=figsize or FIGSIZE, layout="constrained", **kwargs)


def label(ax, title: str, xlabel: str, ylabel: str):
    """Set title and axis labels (units belong in the labels)."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def format_axis(ax, axis: str = "y", kind: str = "thousands", decimals: int = 0):
    """Tick format: ``thousands`` (1,234), ``percent`` (fractions shown as %), ``plain``."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    if kind == "percent":
        target.set_major_formatter(ticker.PercentFormatter(1.0, decimals=decimals))
    elif kind == "thousands":
        target.set_major_formatter(ticker.StrMethodFormatter("{x:,.%sf}".replace("%s", str(decimals))))
    return ax


def _data_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]


def missing_labels(fig) -> list[str]:
    """Which data axes lack a title, an x label or a y label (empty = complete)."""
    out = []
    for i, ax in enumerate(_data_axes(fig)):
        for what, text in (("title", ax.get_title()), ("xlabel", ax.get_xlabel()), ("ylabel", ax.get_ylabel())):
            if not text.strip():
                out.append(f"axes {i}: {what}")
    return out


def save_figure(fig, key: str, reports_dir=None, glue: bool = True, close: bool = True) -> Path:
    """Write ``<reports_dir>/figures/<key>.png`` (atomically), glue the figure
    under ``key`` and close it (``close=False``: keep it open to show it).
    Raises if a data axes has no title or axis label."""
    missing = missing_labels(fig)
    if missing:
        raise ValueError(f"figure {key!r} is missing {', '.join(missing)}")
    folder = report_dirs(reports_dir)["figures"]
    path = folder / f"{key}.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    if glue:
        from myst_nb import glue as _glue

        _glue(key, fig, display=False)
    if close:
        plt.close(fig)
    return path


# -------------------------------------------------------------------- charts
def line_chart(x, y, title: str, xlabel: str, ylabel: str, ax=None, dates: bool = False, **kwargs):
    """One line (``x`` dates when ``dates``); returns the figure."""
    if ax is None:
        fig, ax = new_figure()
    else:
        fig = ax.figure
    ax.plot(np.asarray(x), np.asarray(y, dtype=float), marker=kwargs.pop("marker", "o"),
            markersize=kwargs.pop("markersize", 3), **kwargs)
    if dates:
        loc = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    label(ax, title, xlabel, ylabel)
    return fig


def bar_chart(categories, values, title: str, xlabel: str, ylabel: str, ax=None, horizontal: bool = False,
              annotate: str | None = None, color=None):
    """Bars in the given order; ``annotate`` is a format like ``"{:,.0f}"`` or ``"{:.0%}"``."""
    if ax is None:
        fig, ax = new_figure()
    else:
        fig = ax.figure
    cats = [str(c) for c in categories]
    vals = np.asarray(values, dtype=float)
    color = color or palette.ACCENT
    bars = ax.barh(cats, vals, color=color) if horizontal else ax.bar(cats, vals, color=color)
    if horizontal:
        ax.invert_yaxis()
    if annotate:
        ax.bar_label(bars, labels=[annotate.format(v) for v in vals], padding=2, fontsize=9)
        ax.margins(**({"x": 0.12} if horizontal else {"y": 0.12}))
    label(ax, title, xlabel, ylabel)
    return fig


def hist_chart(values, title: str, xlabel: str, ylabel: str, bins=40, ax=None, log_x: bool = False,
               log_y: bool = False):
    """Histogram of ``values`` (NaN dropped); ``log_x`` uses log-spaced bins."""
    if ax is None:
        fig, ax = new_figure()
    else:
        fig = ax.figure
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if log_x:
        v = v[v > 0]
        if len(v):
            bins = np.geomspace(v.min(), v.max() * 1.0001, bins if isinstance(bins, int) else 40)
        ax.set_xscale("log")
    ax.hist(v, bins=bins, color=palette.ACCENT, edgecolor="white", linewidth=0.5)
    if log_y:
        ax.set_yscale("log")
    label(ax, title, xlabel, ylabel)
    return fig


def heatmap_chart(frame: pd.DataFrame, title: str, xlabel: str, ylabel: str, cbar_label: str,
                  fmt: str = ".2f", cmap: str = SEQUENTIAL, center=None, annot: bool = True, ax=None,
                  figsize=None, cbar_format: str | None = None):
    """Annotated heatmap of a numeric frame (rows x columns); NaN cells left blank.
    ``cbar_format`` is a ``str.format`` pattern for the colour-bar ticks, e.g. ``"{x:,.0f}"``."""
    if ax is None:
        fig, ax = new_figure(figsize=figsize)
    else:
        fig = ax.figure
    data = frame.astype(float)
    norm = None
    if center is not None and np.isfinite(data.to_numpy()).any():  # diverging colours around ``center``
        lo, hi = float(np.nanmin(data.to_numpy())), float(np.nanmax(data.to_numpy()))
        eps = 1e-9 * max(1.0, abs(center))
        norm = TwoSlopeNorm(vcenter=center, vmin=min(lo, center - eps), vmax=max(hi, center + eps))
    sns.heatmap(data, annot=annot, fmt=fmt, cmap=cmap, norm=norm, ax=ax, linewidths=0.5,
                cbar_kws={"label": cbar_label}, annot_kws={"fontsize": 8})
    ax.grid(False)
    if cbar_format:
        ax.collections[0].colorbar.ax.yaxis.set_major_formatter(ticker.StrMethodFormatter(cbar_format))
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)
    label(ax, title, xlabel, ylabel)
    return fig
