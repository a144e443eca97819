"""The ablation of the re-ranker's feature groups: the groups partition the design matrix, the
full variant is the hybrid chapter's held-out ranker, and every group is left out once."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.evaluation.metrics import temporal_split
from helpers.models.ranker import Ranker, pool_examples
from helpers.tuning import workflow as models
from helpers.tuning.ablation import ablation, feature_groups
from helpers.tuning.stages import make_stage
from helpers.tuning.weights import CandidatePool

NAMES = ("global_popularity", "buy_again")
RANKER = dict(max_iter=10, min_samples_leaf=5, signal_groups=("cycles", "sequences", "ownership"))


@pytest.fixture(scope="module")
def stages(tiny_tables, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablation")
    split = temporal_split(tiny_tables["fact_transactions"], test_days=14, valid_days=14)
    valid = make_stage(tiny_tables, split, "valid")
    earlier = models.earlier_stages(tiny_tables, split, 14, 1, tmp)  # not the checkout's data/processed
    models.save_tuning({"global_popularity": {p: {} for p in models.PROTOCOLS},
                        "buy_again": {p: {"half_life_days": 30.0} for p in models.PROTOCOLS}}, tmp)
    return valid, earlier, tmp


def test_groups_partition_the_design_columns(stages):
    valid, _, tmp = stages
    comps = models.fit_components(models.load_tuning(tmp), valid.fit, "all", NAMES)
    pool = CandidatePool.for_protocols({"all": comps}, valid.fit, valid.relevance, pool_size=10)["all"]
    history = Ranker(**RANKER).history(valid.fit)
    x = pool_examples(pool, history).x
    groups = feature_groups(history, len(NAMES))
    assert list(groups) == ["timing", "cycles", "sequences", "ownership", "scores"]
    cols = np.concatenate(list(groups.values()))
    np.testing.assert_array_equal(np.sort(cols), np.arange(x.shape[1]))


def test_full_variant_is_the_held_out_ranker_and_each_group_is_left_out_once(stages):
    valid, earlier, tmp = stages
    table = ablation(valid, earlier, tmp, RANKER, names=NAMES, pool_size=10, n_trials=10)
    out = models.run_hybrid(valid, tmp, NAMES, n_trials=10, earlier=earlier, ranker=RANKER, pool_size=10,
                            ranker_protocols=("all", "new"))
    for protocol in models.PROTOCOLS:
        t = table.loc[table["protocol"] == protocol].set_index("variant")
        assert list(t.index) == ["all features", "without timing", "without cycles", "without sequences",
                                 "without ownership", "without scores", "weighted blend"]
        sel = out["selection"].query("protocol == @protocol").set_index("method")["valid NDCG@5"]
        assert t.loc["all features", "valid NDCG@5"] == pytest.approx(sel["learned re-ranker"], abs=1e-12)
        assert t.loc["weighted blend", "valid NDCG@5"] == pytest.approx(sel["weighted blend"], abs=1e-12)
        np.testing.assert_allclose(t["change"], t["valid NDCG@5"] - t.loc["all features", "valid NDCG@5"])
        comps = models.fit_components(models.load_tuning(tmp), valid.fit, protocol, NAMES)
        assert t.loc["without scores", "columns"] == len(comps)  # the protocol's components


def test_ablation_needs_an_earlier_window(stages):
    valid, _, tmp = stages
    with pytest.raises(ValueError, match="earlier"):
        ablation(valid, [], tmp, RANKER, names=NAMES)


def test_runner_takes_the_notebooks_defaults_and_the_runs_overrides(tmp_path):
    import json

    from helpers.pipeline.ablation import RANKER_PARAMS, hybrid_parameters

    defaults = hybrid_parameters(tmp_path)  # no manifest: the notebook's parameters cell
    assert set(RANKER_PARAMS.values()) <= set(defaults) and defaults["weight_windows"] >= 2
    (tmp_path / "run_manifest.json").write_text(json.dumps({"parameters": {"ranker_signals": ["cycles"],
                                                                           "n_customers": 10}}))
    got = hybrid_parameters(tmp_path)
    assert got["ranker_signals"] == ["cycles"] and "n_customers" not in got  # another notebook's parameter
    assert {k: v for k, v in got.items() if k != "ranker_signals"} == {k: v for k, v in defaults.items()
                                                                       if k != "ranker_signals"}


def test_components_per_protocol_reach_the_tuning_file(stages):
    valid, earlier, tmp = stages
    names = {"all": ["buy_again"], "new": ["global_popularity"]}
    assert list(models.fit_components(models.load_tuning(tmp), valid.fit, "all", names)) == ["buy_again"]
    assert list(models.fit_components(models.load_tuning(tmp), valid.fit, "new", names)) == ["global_popularity"]
    out = models.run_hybrid(valid, tmp, names, n_trials=5, earlier=earlier, pool_size=10)
    assert {p: out["config"][p]["components"] for p in models.PROTOCOLS} == names
    assert set(out["weights"]["all"]["light"]) == {"buy_again"}
