"""Statistics of certainty on made-up samples with answers worked out by hand."""

import math

import pytest

from orchestrator.stats import certainty


def test_cv_of_one_two_three_is_one_half():
    # mean 2, sample standard deviation 1
    assert certainty.cv([1.0, 2.0, 3.0]) == pytest.approx(0.5)


def test_cv_of_equal_values_is_zero_and_of_one_value_is_nan():
    assert certainty.cv([4.0, 4.0, 4.0]) == 0.0
    assert math.isnan(certainty.cv([4.0]))
    assert math.isnan(certainty.cv([]))


def test_cv_ignores_nan():
    assert certainty.cv([1.0, float("nan"), 3.0]) == pytest.approx(math.sqrt(2) / 2)


def test_median_interval_of_ten_uses_the_2nd_and_9th_order_statistics():
    # P(B <= 1) for B ~ Bin(10, 1/2) = 11/1024: coverage 1 - 22/1024 = 0.978515625 >= 0.95;
    # the next, 3rd and 8th, has 1 - 2 * 56/1024 = 0.890625 < 0.95.
    values = [10.0, 3.0, 7.0, 1.0, 9.0, 2.0, 8.0, 4.0, 6.0, 5.0]
    found = certainty.median_interval(values)
    assert (found.low, found.high, found.ranks) == (2.0, 9.0, (2, 9))
    assert found.coverage == 1 - 22 / 1024 and found.level_reached


def test_median_interval_of_twenty_uses_the_6th_and_15th():
    # P(B <= 5) for Bin(20, 1/2) = 21700/1048576 = 0.0207 -> coverage 0.9586; P(B <= 6) = 0.0577 -> 0.8847
    found = certainty.median_interval([float(v) for v in range(1, 21)])
    assert found.ranks == (6, 15) and (found.low, found.high) == (6.0, 15.0)
    assert found.coverage == pytest.approx(1 - 2 * 21700 / 2 ** 20)


def test_median_interval_of_five_cannot_reach_95_percent_and_says_so():
    found = certainty.median_interval([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (found.low, found.high) == (1.0, 5.0)
    assert found.coverage == 1 - 2 / 32 and not found.level_reached


def test_median_interval_of_six_reaches_95_percent_with_min_and_max():
    found = certainty.median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert found.ranks == (1, 6) and found.coverage == 1 - 2 / 64 and found.level_reached


def test_median_interval_of_nothing_is_none():
    assert certainty.median_interval([]) is None


def test_reached_compares_cv_with_the_target():
    assert certainty.reached([100.0, 101.0, 99.0], 0.02)  # cv 0.01
    assert not certainty.reached([100.0, 110.0, 90.0], 0.02)  # cv 0.1
    assert not certainty.reached([100.0], 0.02)  # no CV from one value
    assert not certainty.reached([100.0, 100.0], None)


def test_spread_far_flags_an_outlier_beyond_ten_percent():
    assert certainty.spread_far([100.0, 101.0, 99.0, 80.0])
    assert not certainty.spread_far([100.0, 101.0, 99.0, 95.0])


def test_warnings_say_what_to_do_when_cv_stays_above_target():
    row = {"gen_tps_cv": 0.05, "cv_target": 0.02, "gen_tps_n": 20, "gen_tps_min": 95.0, "gen_tps_max": 105.0,
           "gen_tps_median": 100.0, "gen_tps_ci_coverage": 0.99}
    found = certainty.warnings(row)
    assert len(found) == 1 and "above the target" in found[0] and "repetitions.max" in found[0]


def test_warnings_name_min_and_max_far_from_the_median_and_a_short_interval():
    row = {"gen_tps_cv": 0.01, "cv_target": None, "gen_tps_n": 5, "gen_tps_min": 70.0, "gen_tps_max": 101.0,
           "gen_tps_median": 100.0, "gen_tps_ci_coverage": 0.9375}
    found = certainty.warnings(row)
    assert any("more than 10%" in w for w in found) and any("at least 6 repetitions" in w for w in found)


def test_no_warning_for_a_tight_cell_that_met_its_target():
    row = {"gen_tps_cv": 0.01, "cv_target": 0.02, "gen_tps_n": 10, "gen_tps_min": 98.0, "gen_tps_max": 102.0,
           "gen_tps_median": 100.0, "gen_tps_ci_coverage": 0.978}
    assert certainty.warnings(row) == []
