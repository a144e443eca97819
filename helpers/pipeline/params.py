"""Notebook parameters: ``--param`` parsing, each notebook's declared parameters, and the checks
every value passes before any notebook runs.

:data:`RULES` is the one table ``parameter -> rule``; every parameter a numbered notebook
declares has an entry (a test checks it). :func:`validate` applies the rules and the relations
between parameters (:func:`relation_problems`) to the values a run would use (the notebooks'
defaults overridden by ``--param``) and raises :class:`ParameterError` naming every bad
parameter, its value and what is allowed.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from helpers import config
from helpers.features.signals import SIGNAL_GROUPS

#: Parameters the pipeline sets itself (``--dataset``, ``--data-dir``, ``--output-dir``).
RESERVED = ("dataset", "data_dir", "processed_dir", "reports_dir")
#: Fewest days of history before the earliest validation window (synthetic ``n_days`` check).
MIN_TRAIN_DAYS = 7


class ParameterError(ValueError):
    """One or more parameter values break their rule; the message names each one."""


@dataclass(frozen=True)
class Rule:
    """``check(value)`` is true for an allowed value; ``allowed`` says which ones in words."""

    check: Callable[[object], bool]
    allowed: str


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and v == v  # not NaN


def int_at_least(low: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= low, f"an integer >= {low}")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.check(v), f"null or {rule.allowed}")


def number_between(low: float, high: float | None = None, low_open: bool = False) -> Rule:
    def check(v) -> bool:
        if not _is_number(v):
            return False
        above = v > low if low_open else v >= low
        return above and (high is None or v <= high)
    lo = f"> {low}" if low_open else f">= {low}"
    return Rule(check, f"a number {lo}" + (f" and <= {high}" if high is not None else ""))


def _iso_date(v) -> bool:
    if not isinstance(v, str):
        return False
    try:
        date.fromisoformat(v[:10])
    except ValueError:
        return False
    return True


def _names(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(c, str) for c in v) and len(set(v)) == len(v)


def _grid_overrides(v) -> bool:
    return isinstance(v, dict) and all(isinstance(m, str) and isinstance(g, dict) and all(
        isinstance(p, str) and isinstance(vals, list) and vals for p, vals in g.items()) for m, g in v.items())


BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str) and v != "", "a non-empty text")
PATH = optional(TEXT)
DAYS = int_at_least(1)
SEED = int_at_least(0)
COUNT = int_at_least(1)
THRESHOLD = int_at_least(0)
SHARE = number_between(0, 1, low_open=True)

#: parameter -> rule, for every parameter of every numbered notebook.
RULES: dict[str, Rule] = {
    "dataset": Rule(lambda v: v in config.DATASETS, "one of " + ", ".join(config.DATASETS)),
    "data_dir": PATH,
    "processed_dir": PATH,
    "reports_dir": PATH,
    "export_dir": PATH,
    # engine (03, 04): the models of the Spark engine run on Spark (helpers.spark.chapter)
    "engine": Rule(lambda v: v in ("local", "spark"), "local or spark"),
    "spark_master": TEXT,
    # synthetic generator (00)
    "n_customers": int_at_least(2),
    "n_products": int_at_least(2),
    "n_days": DAYS,
    "seed": SEED,
    # temporal split (01-07)
    "as_of": Rule(lambda v: v is None or _iso_date(v), "null or a date YYYY-MM-DD"),
    "test_days": DAYS,
    "valid_days": DAYS,
    "weight_windows": int_at_least(1),
    # charts (01, 02)
    "currency": Rule(lambda v: isinstance(v, str), "a text"),
    "top_departments": COUNT,
    "min_buyers": THRESHOLD,
    "min_cell_customers": THRESHOLD,
    # tuning and evaluation (03-07)
    "n_boot": COUNT,
    "paired_boot": COUNT,
    "grid_overrides": Rule(_grid_overrides, 'an object {model: {parameter: [non-empty list of values]}}'),
    # hybrid (06)
    "components": Rule(lambda v: _names(v) or (isinstance(v, dict) and v and set(v) <= {"all", "new"}
                                               and all(_names(x) for x in v.values())),
                       'a non-empty list of distinct model names, or {"all": list, "new": list} of them'),
    "pool_size": COUNT,
    "n_trials": COUNT,
    "by_history": BOOL,
    "light_max_baskets": COUNT,
    "use_ranker": BOOL,
    "ranker_max_iter": COUNT,
    "ranker_learning_rate": SHARE,
    "ranker_max_leaf_nodes": int_at_least(2),
    "ranker_min_samples_leaf": COUNT,
    "ranker_negative_rate": SHARE,
    "ranker_protocols": Rule(lambda v: isinstance(v, list) and set(v) <= {"all", "new"} and len(set(v)) == len(v),
                             'a list of distinct protocols among "all" and "new" (may be empty)'),
    "ranker_signals": Rule(lambda v: isinstance(v, list) and set(v) <= set(SIGNAL_GROUPS) and len(set(v)) == len(v),
                           f"a list of distinct signal groups among {list(SIGNAL_GROUPS)} (may be empty)"),
    "availability_days": optional(DAYS),
    "max_per_category": optional(COUNT),
    "promo_boost": number_between(0),
    "margin_weight": number_between(0),
    # export (08)
    "top_n": COUNT,
    "n_similar": COUNT,
}


def parse_value(text: str):
    """``--param`` values: JSON when it parses (numbers, booleans, lists, objects, null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def parse_params(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--param expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value.strip())
    return out


def notebook_parameters(path: Path) -> dict:
    """Names and defaults of the notebook's ``parameters`` cell."""
    import papermill as pm  # start-up: papermill loads nbconvert and jupyter_client

    return {name: _default(info["default"]) for name, info in pm.inspect_notebook(str(path)).items()}


def _default(source: str):
    """A default as papermill reports it (Python source text) turned into its value when it is a literal."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def relation_problems(values: dict) -> list[str]:
    """Checks between parameters (only those present in ``values`` take part)."""
    out = []
    dataset, data_dir = values.get("dataset"), values.get("data_dir")
    if dataset == "files" and not data_dir:
        out.append("dataset=files needs --data-dir (the folder of CSV/Parquet tables)")
    if data_dir and dataset != "files":
        out.append(f"--data-dir is read only by dataset 'files', not by dataset={dataset!r}")
    if data_dir and dataset == "files" and not Path(data_dir).is_dir():
        out.append(f"data_dir={data_dir!r}: no such folder")
    days = [values.get(k) for k in ("n_days", "test_days", "valid_days", "weight_windows")]
    if dataset == "synthetic" and "n_days" in values and all(_is_int(d) and d >= 1 for d in days if d is not None):
        test, valid, windows = (values.get(k) or 0 for k in ("test_days", "valid_days", "weight_windows"))
        need = test + valid * max(1, windows) + MIN_TRAIN_DAYS
        if values["n_days"] < need:
            out.append(f"n_days={values['n_days']}: the synthetic history must cover test_days ({test}) + "
                       f"weight_windows x valid_days ({max(1, windows)} x {valid}) + {MIN_TRAIN_DAYS} days of "
                       f"training, so at least {need}")
    return out


def validate(values: dict, rules: dict[str, Rule] = RULES) -> None:
    """Raise :class:`ParameterError` listing every value that breaks its rule or a relation."""
    problems = [f"{name}={value!r} is not allowed: {name} must be {rules[name].allowed}"
                for name, value in values.items() if name in rules and not rules[name].check(value)]
    if not problems:
        problems = relation_problems(values)
    if problems:
        raise ParameterError("invalid parameters (nothing was run):\n  " + "\n  ".join(problems))
