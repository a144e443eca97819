"""The model chapter on the Spark engine (``engine="spark"``) against the local chapter.

Same small synthetic data, same grids: popularity, segment popularity and buy-again choose
the same parameters, write the same tuning files, the same predictions and the same metrics
(values and bootstrap intervals) as :func:`helpers.tuning.workflow.run_chapter`. The grids
include a time window, a blend, a repeat-rate exponent and the promotion-exposure segments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.report import model_chapter
from helpers.spark import chapter as spark_chapter
from helpers.spark import engine
from helpers.tuning import workflow as models
from helpers.tuning.files import params_key

NAMES = ["global_popularity", "segmented_popularity", "buy_again"]
OVERRIDES = {
    "global_popularity": {"window_days": [None, 14]},
    "segmented_popularity": {"segment_type": ["promo_exposure", "history_length"], "window_days": [None, 28],
                             "blend": [0.5]},
    "buy_again": {"half_life_days": [60], "repeat_beta": [0.5, 1.0]},
}


@pytest.fixture(scope="module")
def local(small_tables, small_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local-chapter")
    _, valid, test = models.prepare_stages(small_tables, 28, 28, out)
    chapter = models.run_chapter(NAMES, valid, test, out, OVERRIDES, n_boot=50, seed=3)
    return chapter, out


@pytest.fixture(scope="module")
def remote(spark, small_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("spark-chapter")
    return spark_chapter.run_chapter(NAMES, small_dir, out, overrides=OVERRIDES, n_boot=50, seed=3, spark=spark), out


def test_the_report_knows_the_spark_engines_models():
    assert model_chapter.SPARK_MODELS == engine.MODELS


def test_same_choices_and_tuning_files(local, remote):
    def keys(best):
        return {name: {p: params_key(v) for p, v in by.items()} for name, by in best.items()}
    assert keys(remote[0]["best"]) == keys(local[0]["best"])
    assert keys(models.load_tuning(remote[1])) == keys(models.load_tuning(local[1]))


def test_tuning_values_equal(local, remote):
    lt, rt = local[0]["tuning"], remote[0]["tuning"]
    assert len(rt) == len(lt)
    key = [c for c in lt.columns if c not in ("value", "fit_seconds")]
    merged = rt.merge(lt, on=key, suffixes=("_spark", "_local"), how="left", validate="one_to_one")
    assert len(merged) == len(rt) and merged["value_local"].notna().all()
    np.testing.assert_array_equal(merged["value_spark"].to_numpy(), merged["value_local"].to_numpy())
    assert merged["window_days"].isna().any() and (merged["repeat_beta"].dropna() > 0).any()


@pytest.mark.parametrize("name", NAMES)
def test_same_predictions(local, remote, name):
    want = pd.read_parquet(local[1] / f"predictions_{name}.parquet")
    got = pd.read_parquet(remote[1] / f"predictions_{name}.parquet")
    order = ["protocol", "customer_id", "rank"]
    pd.testing.assert_frame_equal(got.sort_values(order).reset_index(drop=True),
                                  want.sort_values(order).reset_index(drop=True))


@pytest.mark.parametrize("name", NAMES)
def test_same_metrics_and_intervals(local, remote, name):
    want = pd.read_csv(local[1] / f"metrics_{name}.csv")
    got = pd.read_csv(remote[1] / f"metrics_{name}.csv")
    assert "promo_exposure" in set(got["segment_type"])
    key = ["protocol", "segment_type", "segment", "k", "metric"]
    merged = got.merge(want, on=key, suffixes=("_spark", "_local"), validate="one_to_one")
    assert len(merged) == len(got) == len(want) > 0
    for col in ("value", "ci_low", "ci_high", "n_customers"):
        np.testing.assert_allclose(merged[f"{col}_spark"], merged[f"{col}_local"], rtol=0, atol=1e-12, err_msg=col)


def test_unsupported_parameters_are_named():
    with pytest.raises(ValueError, match="weighting='none' only"):
        spark_chapter.spark_params("als", {"factors": 8, "weighting": "bm25"})
    with pytest.raises(ValueError, match="no parameter 'l2'"):
        spark_chapter.spark_params("buy_again", {"l2": 1.0})
    with pytest.raises(ValueError, match="no model 'ease'"):
        spark_chapter.spark_params("ease", {})
