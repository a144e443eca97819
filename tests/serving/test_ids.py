"""Ids matched by value whatever their type: known answers and properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.serving.ids import IdIndex, as_id_array

PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))  # ids are printable text


def test_integer_index_known_answers():
    idx = IdIndex(np.array([30, 10, 20], dtype=np.int64))
    assert idx.is_int
    assert idx.positions(["10", 20, "30", "-0", "abc", "1e1", str(2 ** 63), 2 ** 63, -(2 ** 63) - 1, True, None,
                          " 10", "10.0", "10\n", "010"]).tolist() == [1, 2, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1]
    assert idx.position("20") == 2 and idx.position("99") == -1 and idx.position(str(10 ** 30)) == -1
    assert idx.value(1) == 10 and isinstance(idx.value(1), int)


def test_text_index_keeps_leading_zeros_and_matches_numbers_as_text():
    idx = IdIndex(["00123", "HBZ-4720-BL", "42"])
    assert not idx.is_int
    assert idx.positions(["00123", "123", 123, "HBZ-4720-BL", 42, "hbz-4720-bl"]).tolist() == [0, -1, -1, 1, 2, -1]
    assert idx.values([1, 0]) == ["HBZ-4720-BL", "00123"]


def test_few_and_many_ids_are_looked_up_alike():
    """A few ids are looked up one by one, more at once: the same positions either way."""
    from helpers.serving.ids import FEW_IDS

    for idx, probes in ((IdIndex(np.array([30, 10, 20], dtype=np.int64)), ["10", 20, "x", True, 2 ** 63, "030", 30]),
                        (IdIndex(["00123", "HBZ-4720-BL", "42"]), ["42", 42, "123", "00123", "HBZ-4720-BL", None])):
        many = (probes * (FEW_IDS // len(probes) + 1))[: FEW_IDS + 1]
        assert len(many) > FEW_IDS
        few = idx.positions(probes).tolist()
        assert idx.positions(many).tolist() == (few * (FEW_IDS // len(probes) + 1))[: FEW_IDS + 1]
        assert max(few) >= 0 and min(few) == -1


def test_file_dtypes():
    assert as_id_array(np.array([1, 2], dtype=np.int32)).dtype == np.int64
    assert as_id_array(np.array([1.0, 2.0])).dtype == np.int64  # a nullable integer column read as floats
    assert as_id_array(np.array(["a", "b"])).dtype == object
    idx = IdIndex(np.array(["P1", "P2"]))
    assert idx.positions_of(np.array(["P2", "P3"])).tolist() == [1, -1]
    ints = IdIndex(np.array([5, 7]))
    assert ints.positions_of(np.array(["7", "x"], dtype=object)).tolist() == [1, -1]  # text file, integer ids


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=1, max_size=30, unique=True),
       st.lists(st.one_of(st.integers(), st.text(max_size=25)), max_size=30))
def test_integer_index_property(known, probes):
    """A probe is found iff it names (as an int or its decimal text) a known id, at that id's position."""
    idx = IdIndex(np.array(known, dtype=np.int64))
    got = idx.positions(probes)
    where = {k: i for i, k in enumerate(known)}
    for probe, pos in zip(probes, got.tolist()):
        if isinstance(probe, int):
            assert pos == where.get(probe, -1)
        elif probe.lstrip("-").isascii() and probe.lstrip("-").isdigit() and probe.count("-") <= 1 \
                and probe[:1] != "+" and not probe.startswith("--") and probe != "-":
            assert pos == where.get(int(probe), -1)
        else:
            assert pos == -1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(PRINTABLE, min_size=1, max_size=12), min_size=1, max_size=30, unique=True),
       st.lists(st.text(PRINTABLE, max_size=12), max_size=30))
def test_text_index_property(known, probes):
    idx = IdIndex(known)
    where = {k: i for i, k in enumerate(known)}
    assert idx.positions(probes + known).tolist() == [where.get(p, -1) for p in probes] + list(range(len(known)))
