"""csvtext.to_csv writes exactly what pandas' to_csv(index=False) writes, on hostile values too."""

import math
import random

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.report import csvtext

EDGE = [0.0, -0.0, 1.0, 0.1, 1e-4, 9.99e-5, 1e-5, 1.5e-7, 1e15, 9.999e15, 1e16, 1.2345678901234567e17, math.nan,
        2.5e-300, 1e300, 5e-324, 1.7976931348623157e308, 0.30000000000000004, -123.456]


def test_edge_floats_strings_ints_bools_and_mixed_objects_are_written_as_pandas_writes_them():
    rng = random.Random(3)
    values = EDGE + [rng.uniform(-1, 1) * 10 ** rng.randint(-9, 20) for _ in range(3000)]
    frame = pd.DataFrame({
        "x": values,
        "s": [rng.choice(["a,b", 'q"uote', "line\nbreak", None, "plain", math.nan, "é", ""]) for _ in values],
        "i": np.arange(len(values), dtype=np.int64) - 5,
        "b": [bool(i % 2) for i in range(len(values))],
        "m": [rng.choice([None, 1, 2.5, "x", True]) for _ in values],
    })
    assert csvtext.to_csv(frame) == frame.to_csv(index=False)


def test_empty_frames_and_other_dtypes_fall_back_to_pandas():
    for frame in (pd.DataFrame(), pd.DataFrame({"a": pd.Series([], dtype=float)}),
                  pd.DataFrame({"c": pd.Categorical(["a", "b"])}), pd.DataFrame({"n": pd.array([1, None], "Int64")})):
        assert csvtext.to_csv(frame) == frame.to_csv(index=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40))
def test_any_float_reads_the_same_as_pandas(values):
    frame = pd.DataFrame({"v": np.array(values, dtype=np.float64)})
    assert csvtext.to_csv(frame) == frame.to_csv(index=False)
