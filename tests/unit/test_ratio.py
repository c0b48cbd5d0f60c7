"""stats/ratio.py and stats/threshold.py: one statistic behind each claim, and the threshold it is read against,
with known answers; the simulated two-state case where a ratio of medians fell outside its own interval."""

import random

import pytest

from orchestrator.compare import ratios
from orchestrator.stats import describe, threshold
from orchestrator.stats import ratio as stat
from tests.unit import records, runs

# Two-state samples, 20 against 20: A is 100 eleven times and 110 nine times; B is 92.5 nine times and 98.6
# eleven times. Medians 100 and 98.6: their ratio is 0.986. The 400 ratios b/a are 0.841 (81 of them),
# 0.896 (99), 0.925 (99) and 0.986 (121); the Mann-Whitney bound for 20 x 20 at 95 % is w = 128, so the
# interval runs from the 128th smallest (0.896) to the 273rd (0.925), and the median of the 400 (200th and
# 201st) is 0.925.
A = (100.0,) * 11 + (110.0,) * 9
B = (92.5,) * 9 + (98.6,) * 11


def test_the_two_state_case_known_answers():
    found = stat.ratio(A, B)
    assert found.estimate == pytest.approx(0.925)
    assert (found.interval.low, found.interval.high) == (pytest.approx(98.6 / 110), pytest.approx(0.925))
    assert found.interval.coverage == pytest.approx(0.95091, abs=1e-5)
    medians = describe.median(sorted(B)) / describe.median(sorted(A))
    assert medians == pytest.approx(0.986)  # what compare showed before: outside its own interval
    assert not found.interval.low <= medians <= found.interval.high
    assert found.interval.low <= found.estimate <= found.interval.high


def test_estimate_interval_verdict_and_fail_on_agree_where_they_disagreed_before():
    metric = ratios.compare_metric("gen_tps", A, B)
    assert metric.ratio == pytest.approx(0.925) and metric.verdict == ratios.SLOWER
    assert metric.worse_by == pytest.approx(0.075) and metric.worse_by_at_least == pytest.approx(0.075)
    cell = ratios.CellComparison("c-1", "x", "c-1", "c-1", (), (metric,))
    # Before: --fail-on slower:5% tested the ratio of medians (1.4 % lost) and stayed silent on a "slower" metric.
    (line,) = ratios.failures((cell,), [ratios.parse_fail_on("slower:5%")])
    assert "7.5% slower, at least 7.5% over the whole interval (B/A 0.925 [0.896, 0.925], limit 5%)" in line
    assert ratios.failures((cell,), [ratios.parse_fail_on("slower:8%")]) == []


def test_fail_on_reads_the_interval_not_the_estimate():
    a = (100.0, 100.5, 101.0, 101.5, 102.0, 100.2, 101.7, 100.9)
    b = tuple(v * 0.9 for v in (100.0, 108.0, 101.0, 104.0, 102.0, 100.2, 106.0, 103.0))
    metric = ratios.compare_metric("gen_tps", a, b)
    assert metric.verdict == ratios.SLOWER
    assert metric.worse_by > 0.08 > metric.worse_by_at_least > 0.05  # the estimate lost more than the interval shows
    cell = ratios.CellComparison("c-1", "x", "c-1", "c-1", (), (metric,))
    assert ratios.failures((cell,), [("slower", 0.05)]) and not ratios.failures((cell,), [("slower", 0.08)])


def test_simulated_two_state_draws_the_estimate_never_leaves_its_interval():
    rng = random.Random(28)
    outside_medians = outside_estimate = 0
    draws = 3313
    for _ in range(draws):
        a = tuple(rng.choice((100.0, 108.0)) for _ in range(20))
        b = tuple(rng.choice((93.0, 100.0)) for _ in range(20))
        found = stat.ratio(a, b)
        medians = describe.median(sorted(b)) / describe.median(sorted(a))
        outside_medians += not found.interval.low <= medians <= found.interval.high
        outside_estimate += not found.interval.low <= found.estimate <= found.interval.high
    assert outside_estimate == 0
    assert outside_medians == 1878  # of 3313, with this seed: the disagreement the statistic removes


def test_speedup_inverts_times_and_within_means_the_whole_interval():
    found = stat.Ratio(0.5, stat.Interval(0.4, 0.625, 0.95), 5, 5)
    assert stat.speedup(found, True) == (0.5, 0.4, 0.625)
    assert stat.speedup(found, False) == (2.0, 1.6, 2.5)  # half the time: twice as fast
    assert stat.lost_at_least(found, True) == pytest.approx(0.375)
    assert stat.lost_at_least(found, False) == pytest.approx(-1.5)  # a time that halved lost nothing
    near = stat.Ratio(1.0, stat.Interval(0.98, 1.03, 0.95), 5, 5)
    assert stat.within(near, 0.05) and not stat.within(near, 0.02)
    assert stat.percent(0.05) == "5%" and stat.percent(0.0234) == "2.34%"


def test_round_spread_and_the_derived_threshold():
    assert threshold.round_spread({1: [10.0, 11.0, 12.0], 2: [12.0, 13.0, 14.0]}) == pytest.approx(13 / 11 - 1)
    assert threshold.round_spread({1: [10.0], 2: []}) is None  # one round with values: nothing to derive
    found = threshold.derived([0.02, None, 0.04, 0.10])
    assert found.value == pytest.approx(0.04) and found.derived and "median over 3 CELL(s)" in found.how
    assert threshold.derived([None]) is None
    assert threshold.wider([None, None]) == threshold.fixed() and threshold.fixed().value == 0.05
    assert threshold.wider([threshold.Threshold(0.01, "a", True), threshold.Threshold(0.03, "b", True)]).how == "b"


def _rounds_run(cell_id, factors, run_id=runs.RUN_ID):
    """A RUN of one CELL whose six repetitions ran in rounds 1, 1, 2, 2, 3, 3 at these speed factors."""
    rec = runs.cell_record(cell_id, spread=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0), run_id=run_id)
    for rep, factor in zip(rec["result"]["repetitions"], factors):
        rep["decode_s"] /= factor
    records.with_rounds(rec, [1, 1, 2, 2, 3, 3])
    return runs.typed(runs.run_doc([cell_id], run_id=run_id), [rec])


def test_compare_derives_its_threshold_from_the_runs_rounds_and_says_so():
    ids = "c-000000000001"
    a = _rounds_run(ids, (1.0, 1.0, 1.01, 1.01, 1.005, 1.005))  # round medians 1, 1.01, 1.005 x: spread 1 %
    b = _rounds_run(ids, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0), "20260101T000001Z-abcdef")  # no spread
    chosen = ratios.thresholds(a, b)
    decode = chosen.of("gen_tps")
    assert decode.derived and decode.value == pytest.approx(0.01) and "RUN 20260101T000000Z-abcdef" in decode.how
    assert ratios.thresholds(a, b, 0.1).of("gen_tps").how == "given: --noise 0.1"
    single = runs.typed(runs.run_doc([ids]), [runs.cell_record(ids)])
    assert ratios.thresholds(single, single).of("gen_tps") == threshold.fixed()
    # 3 % faster everywhere: beyond the derived 1 %, within the fixed 5 %.
    faster = _rounds_run(ids, tuple(1.03 * f for f in (1.0, 1.0, 1.01, 1.01, 1.005, 1.005)), "20260101T000002Z-abcdef")
    (cell,) = ratios.compare(a, faster)
    metric = next(m for m in cell.metrics if m.metric == "gen_tps")
    assert metric.threshold.derived and metric.verdict == ratios.FASTER
    assert next(m for m in ratios.compare(a, faster, 0.05)[0].metrics if m.metric == "gen_tps").verdict == ratios.SAME
    assert "decode tok/s" in chosen.describe() and "derived from RUN" in chosen.describe()
