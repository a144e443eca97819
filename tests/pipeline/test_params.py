"""Parameter checks before any work (helpers.pipeline.params): one rule per notebook parameter."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import config
from helpers.pipeline.params import (
    MIN_TRAIN_DAYS,
    RULES,
    ParameterError,
    notebook_parameters,
    parse_params,
    parse_value,
    validate,
)
from helpers.pipeline.run import numbered_notebooks


@pytest.fixture(scope="module")
def declared():
    return {nb.name: notebook_parameters(nb) for nb in numbered_notebooks()}


def test_every_notebook_parameter_has_a_rule_that_its_default_passes(declared):
    for name, params in declared.items():
        for key, default in params.items():
            assert key in RULES, f"{name}: parameter {key} has no rule in helpers.pipeline.params.RULES"
            assert RULES[key].check(default), f"{name}: default {key}={default!r} breaks its rule"


def test_the_defaults_of_every_notebook_pass_together(declared):
    for params in declared.values():
        validate({**params, "dataset": "synthetic"})


@pytest.mark.parametrize("name, value, allowed", [
    ("n_boot", "abc", "an integer >= 1"),
    ("n_boot", 0, "an integer >= 1"),
    ("n_boot", 2.5, "an integer >= 1"),
    ("n_boot", True, "an integer >= 1"),  # a bool is not a count
    ("test_days", -7, "an integer >= 1"),
    ("valid_days", 0, "an integer >= 1"),
    ("weight_windows", 0, "an integer >= 1"),
    ("seed", -1, "an integer >= 0"),
    ("seed", "x", "an integer >= 0"),
    ("top_n", 0, "an integer >= 1"),
    ("n_similar", None, "an integer >= 1"),
    ("dataset", "movielens", "one of completejourney, synthetic, files"),
    ("as_of", "yesterday", "null or a date YYYY-MM-DD"),
    ("ranker_learning_rate", 0, "a number > 0 and <= 1"),
    ("ranker_negative_rate", 1.5, "a number > 0 and <= 1"),
    ("promo_boost", -0.1, "a number >= 0"),
    ("availability_days", 0, "null or an integer >= 1"),
    ("use_ranker", "yes", "true or false"),
    ("components", [], "a non-empty list of distinct model names"),
    ("components", ["als", "als"], "a non-empty list of distinct model names"),
    ("components", {"all": []}, 'or {"all": list, "new": list} of them'),
    ("components", {"everyone": ["als"]}, 'or {"all": list, "new": list} of them'),
    ("grid_overrides", {"als": {"factors": 64}}, "an object"),
    ("engine", "gpu", "local or spark"),
    ("spark_master", "", "a non-empty text"),
])
def test_a_bad_value_names_parameter_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(ParameterError) as info:
        validate({name: value})
    msg = str(info.value)
    assert f"{name}={value!r}" in msg and allowed in msg


@pytest.mark.parametrize("values, words", [
    ({"dataset": "files", "data_dir": None}, "dataset=files needs --data-dir"),
    ({"dataset": "synthetic", "data_dir": "/tmp"}, "--data-dir is read only by dataset 'files'"),
    ({"dataset": "files", "data_dir": "/no/such/folder"}, "no such folder"),
    ({"dataset": "synthetic", "n_days": 60, "test_days": 28, "valid_days": 28, "weight_windows": 1},
     f"so at least {28 + 28 + MIN_TRAIN_DAYS}"),
])
def test_relations_between_parameters(values, words):
    with pytest.raises(ParameterError, match=words.replace("(", r"\(")):
        validate(values)


def test_components_may_differ_by_protocol():
    validate({"components": {"all": ["buy_again", "als"], "new": ["als", "content"]}})
    validate({"components": ["buy_again", "als"]})


def test_every_bad_parameter_is_listed_at_once():
    with pytest.raises(ParameterError) as info:
        validate({"n_boot": "abc", "test_days": -7, "top_n": 5})
    msg = str(info.value)
    assert "n_boot='abc'" in msg and "test_days=-7" in msg and "top_n" not in msg


@given(st.integers(min_value=1, max_value=10_000))
def test_positive_windows_pass(days):
    validate({"test_days": days, "valid_days": days, "n_boot": days})


@given(st.integers(max_value=0))
def test_non_positive_windows_fail(days):
    with pytest.raises(ParameterError, match="test_days"):
        validate({"test_days": days})


def test_parse_params_types():
    assert parse_params(["k=10", "alpha=0.5", "flag=true", "name=abc", "grid=[1,2]", "x=None"]) == {
        "k": 10, "alpha": 0.5, "flag": True, "name": "abc", "grid": [1, 2], "x": None}
    assert parse_value('{"als": {"factors": [64]}}') == {"als": {"factors": [64]}}
    with pytest.raises(ParameterError, match="KEY=VALUE"):
        parse_params(["novalue"])


@pytest.mark.parametrize("param, words", [("n_boot=abc", "n_boot='abc' is not allowed"),
                                          ("test_days=-7", "test_days=-7 is not allowed")])
def test_the_command_refuses_bad_values_with_one_message_and_no_traceback(tmp_path, param, words):
    res = subprocess.run([sys.executable, "-m", "helpers.pipeline", "run", "--dataset", "synthetic", "--no-progress",
                          "--output-dir", str(tmp_path / "out"), "--param", param],
                         cwd=config.PROJECT_ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_engine_flag_becomes_the_engine_parameter(monkeypatch):
    from helpers.pipeline import __main__ as cli

    seen = {}
    monkeypatch.setattr(cli, "run", lambda dataset, data_dir, output_dir, params, **kw: seen.update(params))
    assert cli.main(["run", "--engine", "spark", "--param", "spark_master=local[1]"]) == 0
    assert seen == {"engine": "spark", "spark_master": "local[1]"}
    seen.clear()
    assert cli.main(["run"]) == 0 and "engine" not in seen  # the notebooks' default: local
    with pytest.raises(SystemExit):
        cli.main(["run", "--engine", "gpu"])


def test_pipeline_check_runs_the_data_check(tmp_path):
    import subprocess
    import sys

    from helpers import config

    res = subprocess.run([sys.executable, "-m", "helpers.pipeline", "check", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, cwd=config.PROJECT_ROOT, timeout=300)
    assert res.returncode == 1 and "Traceback" not in res.stderr + res.stdout
    assert "fact_transactions" in res.stdout  # an empty folder: the missing required files are named
