"""The tuning files: one file per entry, written atomically, read back merged."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers.tuning import load_tuning, save_tuning, tuning_path
from helpers.tuning.files import params_key


def test_each_entry_has_its_own_file_and_loads_back_merged_and_sorted(tmp_path):
    save_tuning({"ease": {"all": {"l2": 300.0, "max_items": 2000}, "new": {"l2": 1000.0, "max_items": 5000}}},
                tmp_path)
    paths = save_tuning({"segmented_popularity": {"all": {"segment_type": "age_band", "blend": (0.0, 0.5)},
                                                  "new": {"segment_type": None}},
                         "als": {"all": {"factors": 64}, "new": {"factors": 32}}}, tmp_path)
    assert paths == [tuning_path(tmp_path, "segmented_popularity"), tuning_path(tmp_path, "als")]
    assert sorted(p.name for p in (tmp_path / "tuning").iterdir()) == ["als.json", "ease.json",
                                                                       "segmented_popularity.json"]
    assert json.loads(tuning_path(tmp_path, "als").read_text()) == {"all": {"factors": 64}, "new": {"factors": 32}}
    got = load_tuning(tmp_path)
    assert list(got) == ["als", "ease", "segmented_popularity"]
    assert got["segmented_popularity"]["all"]["blend"] == (0.0, 0.5)  # tuples come back as tuples
    assert got["ease"]["new"] == {"l2": 1000.0, "max_items": 5000}


def test_saving_one_model_leaves_the_others_files_untouched(tmp_path):
    save_tuning({"als": {"all": {"factors": 64}}, "ease": {"all": {"l2": 300.0}}}, tmp_path)
    before = tuning_path(tmp_path, "ease").read_bytes(), os.stat(tuning_path(tmp_path, "ease")).st_mtime_ns
    save_tuning({"als": {"all": {"factors": 8}}}, tmp_path)
    assert (tuning_path(tmp_path, "ease").read_bytes(), os.stat(tuning_path(tmp_path, "ease")).st_mtime_ns) == before
    assert load_tuning(tmp_path)["als"] == {"all": {"factors": 8}}


def test_writers_at_once_never_lose_an_entry(tmp_path):
    """Notebooks tuning different models at the same time: no lock is needed, as no file is shared."""
    names = [f"model_{i}" for i in range(40)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda n: save_tuning({n: {"all": {"k": int(n.split("_")[1])}}}, tmp_path), names))
    got = load_tuning(tmp_path)
    assert list(got) == sorted(names) and all(got[n]["all"]["k"] == int(n.split("_")[1]) for n in names)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    save_tuning({"als": {"all": {"factors": 64}}}, tmp_path)
    before = tuning_path(tmp_path, "als").read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_tuning({"als": {"all": {"factors": 8}}}, tmp_path)
    monkeypatch.undo()
    assert tuning_path(tmp_path, "als").read_bytes() == before
    assert [p.name for p in (tmp_path / "tuning").iterdir()] == ["als.json"]  # no temporary file left


def test_missing_tuning_and_bad_names_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tuning file"):
        load_tuning(tmp_path)
    (tmp_path / "tuning").mkdir()
    with pytest.raises(FileNotFoundError, match="run the model notebooks"):
        load_tuning(tmp_path)
    for bad in ("", "../als", ".hidden"):
        with pytest.raises(ValueError, match="not a tuning entry name"):
            tuning_path(tmp_path, bad)


def test_params_key_is_the_same_for_lists_and_tuples_and_any_key_order():
    assert params_key({"b": (1, 2), "a": 1}) == params_key({"a": 1, "b": [1, 2]})
    assert params_key({"a": 1}) != params_key({"a": 1.5})
