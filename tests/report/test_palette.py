"""One visual language: a fixed colour per model in every figure, segments in natural order."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from helpers.report import comparison, dashboard, palette  # noqa: E402

MODELS = list(palette.MODEL_ORDER)


def fake_metrics() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    segs = {"overall": ["all"], "loyalty_tier": ["Silver", "Platinum", "Bronze", "Gold"],
            "income_band": ["unknown", "150K+", "<35K", "35-74K"]}
    for model in MODELS[::-1]:  # deliberately not in display order
        for protocol in ("all", "new"):
            if model == "buy_again" and protocol == "new":
                continue
            for stype, names in segs.items():
                for s in names:
                    for metric in ("ndcg", "hit_rate"):
                        v = float(rng.uniform(0.1, 0.6))
                        rows.append((model, protocol, "test", stype, s, 5, metric, v, v - 0.05, v + 0.05, 50, False))
    from helpers.evaluation.metrics import SUMMARY_COLUMNS

    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def colours_by_model(fig) -> dict[str, set]:
    out: dict[str, set] = {}
    for ax in fig.axes:
        for p in ax.patches:
            if p.get_gid():
                out.setdefault(p.get_gid(), set()).add(to_hex(p.get_facecolor()))
    return out


def test_every_model_has_its_own_colour():
    assert len(set(palette.MODEL_COLORS.values())) == len(palette.MODEL_COLORS)
    assert set(palette.MODEL_ORDER) == set(palette.MODEL_COLORS)
    assert palette.model_color("no such model") == palette.OTHER_COLOR


def test_same_model_same_colour_in_every_figure():
    import matplotlib.pyplot as plt

    m = fake_metrics()
    figs = [dashboard.segment_chart(m, "loyalty_tier"), dashboard.segment_chart(m, "income_band"),
            comparison.model_figure(m, "ndcg"), comparison.model_figure(m, "hit_rate")]
    seen: dict[str, set] = {}
    for fig in figs:
        found = colours_by_model(fig)
        assert set(found) == set(MODELS)
        for model, cols in found.items():
            seen.setdefault(model, set()).update(cols)
        plt.close(fig)
    for model, cols in seen.items():
        assert cols == {palette.model_color(model)}, model


def test_hybrid_is_emphasised():
    h, o = palette.model_style("hybrid"), palette.model_style("als")
    assert h["edgecolor"] == "black" and h["zorder"] > o["zorder"] and h["alpha"] > o["alpha"]


@pytest.mark.parametrize("stype, values, expected", [
    ("loyalty_tier", ["Silver", "Platinum", "Bronze", "Gold"], ["Bronze", "Silver", "Gold", "Platinum"]),
    ("income_band", ["unknown", "150K+", "<35K", "35-74K", "75-149K"], ["<35K", "35-74K", "75-149K", "150K+", "unknown"]),
    ("promo_exposure", ["high", "low", "medium"], ["low", "medium", "high"]),
    ("age_band", ["unknown", "65+", "19-24", "35-44"], ["19-24", "35-44", "65+", "unknown"]),
    ("gender", ["unknown", "M", "F"], ["F", "M", "unknown"]),
])
def test_segments_in_natural_order_unknown_last(stype, values, expected):
    assert palette.segment_order(stype, values) == expected


def test_segment_chart_orders_ticks_and_puts_the_legend_outside():
    import matplotlib.pyplot as plt

    fig = dashboard.segment_chart(fake_metrics(), "loyalty_tier")
    ticks = [t.get_text().split("\n")[0] for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["Bronze", "Silver", "Gold", "Platinum"]
    assert not fig.axes[0].get_legend() and fig.legends  # one figure legend, not on the data axes
    plt.close(fig)


def test_order_models():
    assert palette.order_models(["hybrid", "zzz", "als", "global_popularity"]) == [
        "global_popularity", "als", "hybrid", "zzz"]
