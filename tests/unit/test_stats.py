"""Plain-Python statistics give numpy's and pandas' floats bit for bit (so TABLEs do not change)."""

import random

import numpy as np
import pandas as pd

from orchestrator.stats import describe

SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 127, 128, 129, 200, 257, 1000]


def samples(seed: int, count: int = 150):
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.choice(SIZES)
        yield [rng.uniform(0.001, 10) * 10 ** rng.randint(-3, 3) for _ in range(n)]


def test_summary_equals_pandas():
    for values in samples(1):
        series = pd.Series(values)
        got = describe.summary(values)
        assert got["median"] == series.median() and got["p90"] == series.quantile(0.9)
        assert got["min"] == series.min() and got["max"] == series.max() and got["n"] == len(values)
        if len(values) > 1:
            assert got["std"] == series.std(ddof=1)


def test_percentiles_and_sum_equal_numpy():
    for values in samples(3):
        ordered = sorted(values)
        for q in (25, 50, 75, 95, 99):
            assert describe.percentile(ordered, q) == float(np.percentile(np.asarray(values), q))
        assert describe.np_sum(values) == float(np.sum(np.asarray(values)))


def test_nan_is_dropped_and_empty_is_nan():
    got = describe.summary([1.0, float("nan"), 3.0])
    assert got["n"] == 2 and got["median"] == 2.0
    empty = describe.summary([float("nan")])
    assert empty["n"] == 0 and empty["median"] != empty["median"]
    assert describe.std([5.0]) != describe.std([5.0])  # NaN for one value


def test_scaled_percentile_equals_the_percentile_of_scaled_values():
    for values in samples(4, 100):
        ordered = sorted(values)
        scaled = sorted(v * 1000 for v in values)
        for q in (50, 95, 99):
            assert describe.scaled_percentile(ordered, q, 1000) == describe.percentile(scaled, q)
