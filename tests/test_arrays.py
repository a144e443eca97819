"""helpers.arrays: the sort-based unique equals np.unique."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers.arrays import unique


@given(hnp.arrays(st.sampled_from([np.int64, np.int32, np.float64, np.bool_]), hnp.array_shapes(max_dims=2, max_side=40)))
def test_unique_equals_numpy(x):
    np.testing.assert_array_equal(unique(x), np.unique(x))
    assert unique(x).dtype == np.unique(x).dtype


def test_unique_known_answers():
    assert unique(np.array([3, 1, 2, 3, 1])).tolist() == [1, 2, 3]
    assert unique(np.array([], dtype=np.int64)).tolist() == []
    got = unique(np.array([1.0, np.nan, 2.0, np.nan, 1.0]))  # NaNs collapse into one, last
    assert got[:2].tolist() == [1.0, 2.0] and len(got) == 3 and np.isnan(got[2])
    assert unique(np.array(["b", "a", "b"])).tolist() == ["a", "b"]
