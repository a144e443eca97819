"""The Performance page's first section: this run's own timings, from ``reports/run_manifest.json``.

:func:`timings_markdown` renders each notebook's time and start / end (``schedule_s``: seconds
from the start of the run), the run's wall time and how many notebooks ran at once; and
:func:`gantt_chart` draws the schedule (one bar per notebook, in start order; a notebook
reused from the cache is drawn hatched).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from helpers.atomic import atomic_path  # noqa: E402
from helpers.report import palette  # noqa: E402

GANTT_PNG = "run_schedule.png"


def read_manifest(path) -> dict | None:
    """The manifest, or None when there is none (or it has no notebook times)."""
    path = Path(path)
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    return m if m.get("notebooks") else None


def schedule(manifest: dict) -> list[tuple[str, float, float]]:
    """``(notebook, start_s, end_s)`` in start order (numeric order when starts tie)."""
    sched = manifest.get("schedule_s") or {}
    rows, t = [], 0.0
    for nb in sorted(manifest["notebooks"]):
        if nb in sched:
            start, end = (float(x) for x in sched[nb])
        else:  # an older manifest without a schedule: one after another
            start, end = t, t + float(manifest["notebooks"][nb])
        t = end
        rows.append((nb, start, end))
    return sorted(rows, key=lambda r: (r[1], r[0]))


def gantt_chart(manifest: dict, path) -> Path:
    rows = schedule(manifest)
    reused = set(manifest.get("reused_from_cache") or [])
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(rows) + 1.4), layout="constrained")
    for i, (nb, start, end) in enumerate(rows):
        ax.barh(i, max(end - start, 0.01), left=start, color=palette.ACCENT, hatch="//" if nb in reused else None,
                edgecolor="white")
        ax.text(end, i, f" {end - start:,.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [nb.removesuffix(".ipynb") for nb, _, _ in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the start of the run")
    ax.set_ylabel("notebook")
    ax.set_title(f"Notebook schedule (up to {manifest.get('jobs', 1)} at once)", fontweight="bold")
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    with atomic_path(Path(path), suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def timings_markdown(manifest: dict, image: str | None = None) -> str:
    """MyST markdown of the run's timings (``image``: path of the Gantt PNG from the page)."""
    rows = schedule(manifest)
    reused = set(manifest.get("reused_from_cache") or [])
    lines = ["## This run\n",
             f"The pipeline ran the notebooks in {manifest.get('wall_time_s', 0):,.1f} s of wall time, up to "
             f"{manifest.get('jobs', 1)} at once, on the `{manifest.get('dataset', 'n/a')}` data "
             f"(finished {manifest.get('finished_at', 'n/a')}). Times are the notebooks' own; notebooks that ran "
             "side by side overlap, so their sum can exceed the wall time.\n",
             "| notebook | time | start | end | reused from the cache |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {nb} | {manifest['notebooks'][nb]:,.1f} s | {start:,.1f} s | {end:,.1f} s | "
              f"{'yes' if nb in reused else 'no'} |" for nb, start, end in rows]
    if image:
        lines += ["", f"```{{image}} {image}", ":alt: Gantt chart of the notebook schedule", ":width: 90%", "```",
                  "", "*When each notebook ran (hatched: reused from the cache).*"]
    return "\n".join(lines) + "\n"
