"""compare.py: the Mann-Whitney interval on made-up samples with known answers, verdicts and pairing."""

import json
import math

import pytest

from orchestrator.compare import comparereport, ratios
from orchestrator.errors import UsageError
from orchestrator.stats import ratio as stat
from tests.unit import runs

A = (10.0, 11.0, 12.0, 13.0, 14.0)
B = (20.0, 22.0, 24.0, 26.0, 28.0)  # exactly twice A


def test_u_distribution_counts_arrangements_exactly():
    assert ratios.u_distribution(2, 2) == pytest.approx((1 / 6, 1 / 6, 2 / 6, 1 / 6, 1 / 6))
    five = ratios.u_distribution(5, 5)
    assert len(five) == 26 and math.fsum(five) == pytest.approx(1)
    assert [round(p * 252) for p in five[:4]] == [1, 1, 2, 3]  # C(10,5) = 252 arrangements
    assert five == pytest.approx(tuple(reversed(five)))  # symmetric under no shift


def test_interval_for_five_against_five_is_the_third_pairwise_ratio_from_each_end():
    interval = ratios.ratio_interval(A, B)
    # The 25 ratios b/a: 3rd smallest is 22/14, 3rd largest is 28/11; P(U <= 2) = 4/252 on each side.
    assert interval.low == pytest.approx(22 / 14)
    assert interval.high == pytest.approx(28 / 11)
    assert interval.coverage == pytest.approx(1 - 8 / 252)


def test_interval_with_three_samples_is_the_widest_with_its_real_coverage():
    interval = ratios.ratio_interval((1.0, 2.0, 3.0), (2.0, 4.0, 6.0))
    assert (interval.low, interval.high) == (pytest.approx(2 / 3), pytest.approx(6.0))
    assert interval.coverage == pytest.approx(0.9)  # 1 - 2 / C(6,3): 95% is not reachable with 3 and 3


def test_exact_bounds_match_published_tables_and_the_normal_approximation_takes_over():
    assert stat.rank_bound(10, 10, 0.95)[0] == 24  # critical U 23 for 10 x 10 at 5%, two-sided
    assert stat.rank_bound(20, 20, 0.95)[0] == 128  # critical U 127
    exact, coverage = stat.rank_bound(50, 50, 0.95)  # m*n = 2500: still counted exactly
    assert stat.normal_bound(50, 50, 0.95) == exact and coverage >= 0.95
    assert stat.rank_bound(51, 50, 0.95) == (stat.normal_bound(51, 50, 0.95), 0.95)


def test_hodges_lehmann_of_a_pure_scale_change_is_that_scale():
    assert ratios.hodges_lehmann_ratio(A, B) == pytest.approx(2.0)


def test_twice_the_rate_is_faster_and_twice_the_time_is_slower():
    rate = ratios.compare_metric("gen_tps", A, B)
    assert (rate.ratio, rate.verdict) == (pytest.approx(2.0), ratios.FASTER)
    time = ratios.compare_metric("ttft_ms", A, B)
    assert time.verdict == ratios.SLOWER and time.worse_by == pytest.approx(0.5)  # half the speed
    assert ratios.compare_metric("ttft_ms", B, A).verdict == ratios.FASTER


def test_overlapping_samples_are_the_same_within_noise():
    found = ratios.compare_metric("gen_tps", A, (10.5, 11.5, 12.5, 13.5, 9.5))
    assert found.verdict == ratios.SAME and "includes 1" in found.why


def test_a_tight_small_shift_below_the_threshold_is_the_same():
    tight = (100.0, 100.1, 100.2, 100.3, 100.4)
    found = ratios.compare_metric("gen_tps", tight, tuple(v * 1.03 for v in tight))
    assert found.interval.low > 1  # the interval excludes 1 ...
    assert found.verdict == ratios.SAME and "noise threshold" in found.why  # ... but 3% is within 5%
    assert ratios.compare_metric("gen_tps", tight, tuple(v * 1.03 for v in tight), noise=0.01).verdict == \
        ratios.FASTER


def test_a_shift_beyond_the_threshold_counts_only_when_the_whole_interval_is_beyond_it():
    # 8 % faster at the median, but two of B's repetitions are barely faster than A's: the
    # interval is [1.01, 1.16], which reaches inside the 5 % band (criterion.rs's rule)
    a = (100.0, 100.5, 101.0, 101.5, 102.0)
    b = (102.5, 103.0, 109.0, 115.0, 118.0)
    found = ratios.compare_metric("gen_tps", a, b)
    assert found.interval.low > 1 and found.interval.low < 1.05 < found.ratio
    assert found.verdict == ratios.SAME and "reaches inside the 5% noise threshold" in found.why
    # the same shift with tight samples: the whole interval is above 1.05
    tight = tuple(v * 1.08 for v in a)
    beyond = ratios.compare_metric("gen_tps", a, tight)
    assert beyond.interval.low > 1.05 and beyond.verdict == ratios.FASTER
    assert ratios.compare_metric("itl_p50_ms", a, tight).verdict == ratios.SLOWER  # a time: higher is worse


def test_runs_that_really_differ_mark_only_the_changed_cell():
    run_a = runs.run_doc(["c-000000000001", "c-000000000002"])
    run_b = runs.run_doc(["c-000000000001", "c-000000000002"], run_id="20260101T000001Z-abcdef")
    a = runs.typed(run_a, [runs.cell_record("c-000000000001"), runs.cell_record("c-000000000002")])
    b = runs.typed(run_b, [runs.cell_record("c-000000000001", speed=1.8),
                           runs.cell_record("c-000000000002", spread=(1.01, 0.99, 1.0, 1.02, 0.98))])
    found = {c.cell_a: c for c in ratios.compare(a, b)}
    assert found["c-000000000001"].verdict == ratios.FASTER
    assert {m.metric: m.verdict for m in found["c-000000000001"].metrics} == {
        "gen_tps": ratios.FASTER, "prompt_tps": ratios.FASTER, "ttft_ms": ratios.FASTER,
        "itl_p50_ms": ratios.FASTER}
    assert found["c-000000000002"].verdict == ratios.SAME
    # the reverse direction is slower, and --fail-on slower:5% catches it
    back = ratios.compare(b, a)
    assert back[0].verdict == ratios.SLOWER
    assert ratios.failures(back, [ratios.parse_fail_on("slower:5%")])
    assert not ratios.failures(back, [ratios.parse_fail_on("slower:50%")])  # it lost 44% (1 - 1/1.8)


def test_compare_page_draws_each_ratio_with_its_interval_and_verdict_colour():
    from orchestrator.compare import comparepage

    ids = ["c-000000000001", "c-000000000002"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0]), runs.cell_record(ids[1])])
    b = runs.typed(runs.run_doc(ids, run_id="20260101T000001Z-abcdef"),
                   [runs.cell_record(ids[0], speed=1.8), runs.cell_record(ids[1])])
    compared = ratios.compare(a, b)
    page = comparepage.compare_page(a, b, compared, ratios.thresholds(a, b))
    data = json.loads(page.split('<script id="figures" type="application/json">')[1].split("</script>")[0])
    decode = next(f for f in data if f["id"] == "chart-ratio-gen_tps")["data"][0]
    assert decode["y"][0] == pytest.approx(1.8) and decode["y"][1] == pytest.approx(1.0)
    colours = comparepage.VERDICT_COLOURS
    assert decode["marker"]["color"] == [colours["faster"], colours["same within noise"]]
    assert decode["error_y"]["arrayminus"][0] >= 0 and decode["error_y"]["array"][0] >= 0
    assert page.count("<tr class=") == len(comparereport.rows(compared)) and 'id="cells"' in page


def test_a_different_cpu_model_is_not_comparable():
    ids = ["c-000000000001"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0])])
    b = runs.typed(runs.run_doc(ids, brand="Intel(R) Xeon(R) Platinum 8488C"), [runs.cell_record(ids[0])])
    (cell,) = ratios.compare(a, b)
    assert cell.verdict == ratios.NOT_COMPARABLE and cell.metrics == ()
    assert cell.verdict_text == ("not comparable: CPU model (AMD EPYC 9B14 (family 25, model 17) vs "
                                 "Intel(R) Xeon(R) Platinum 8488C (family 25, model 17))")
    assert ratios.failures((cell,), [ratios.parse_fail_on("not-comparable")])


@pytest.mark.parametrize("change, reason", [
    ({"sha": "b" * 64}, "model sha256"), ({"tag": "orchestrate/llama.cpp:222222222222"}, "image content"),
    ({"engine_version": "v2"}, "engine version"), ({"cpus": "0"}, "thread placement")])
def test_each_provenance_difference_is_named(change, reason):
    ids = ["c-000000000001"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0])])
    b = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0], **change)])
    (cell,) = ratios.compare(a, b)
    assert [r.split(" (")[0] for r in cell.reasons] == [reason]


def test_unpaired_and_failed_cells_are_not_comparable():
    a = runs.typed(runs.run_doc(["c-000000000001", "c-000000000002"]),
                   [runs.cell_record("c-000000000001"), runs.cell_record("c-000000000002")])
    failed = runs.records.record(cell_id="c-000000000001", status="crashed", reason="exit 132")
    b = runs.typed(runs.run_doc(["c-000000000001"]), [failed])
    found = {c.cell_a: c.verdict_text for c in ratios.compare(a, b)}
    assert found["c-000000000001"].startswith("not comparable: status crashed on B (exit 132)")
    assert found["c-000000000002"] == "not comparable: only in A"


def test_ignore_threads_pairs_one_thread_with_two():
    a = runs.typed(runs.run_doc(["c-000000000001"]), [runs.cell_record("c-000000000001", threads=1)])
    b = runs.typed(runs.run_doc(["c-000000000002"]), [runs.cell_record("c-000000000002", threads=2, speed=1.7)])
    assert ratios.compare(a, b)[0].verdict_text == "not comparable: only in A"
    (paired,) = ratios.compare(a, b, ignore=("threads",))
    assert (paired.cell_a, paired.cell_b, paired.verdict) == ("c-000000000001", "c-000000000002", ratios.FASTER)
    with pytest.raises(UsageError):
        ratios.compare(a, b, ignore=("colour",))


def test_fail_on_and_noise_parsing():
    assert ratios.parse_fail_on("slower:5%") == ("slower", pytest.approx(0.05))
    assert ratios.parse_fail_on("slower:0.1") == ("slower", pytest.approx(0.1))
    assert ratios.parse_fail_on("not-comparable") == ("not-comparable", 0.0)
    for bad in ("faster:5%", "slower", "slower:x", "slower:-1%"):
        with pytest.raises(UsageError):
            ratios.parse_fail_on(bad)


def test_outputs_carry_verdicts_and_the_environment_side_by_side():
    ids = ["c-000000000001"]
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0])])
    b = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0], speed=2)])
    compared = ratios.compare(a, b)
    md = comparereport.to_markdown(a, b, compared, ratios.thresholds(a, b, 0.05))
    assert "| llama.cpp tinystories-15m/gguf-f32 t1 w `c-000000000001` | 2.000 [" in md and "| faster |" in md
    assert "| CPU model | AMD EPYC 9B14 | AMD EPYC 9B14 |  |" in md
    document = json.loads(comparereport.to_json(a, b, compared, ratios.thresholds(a, b, 0.05)))
    assert {r["metric"]: r["verdict"] for r in document["cells"]}["gen_tps"] == "faster"
    assert "Mann-Whitney" in document["method"]
    csv_text = comparereport.to_csv(compared)
    assert csv_text.splitlines()[0].startswith("key,cell,cell_a,cell_b,cell_verdict,reasons,metric,median_a")
    assert len(csv_text.splitlines()) == 1 + len(ratios.METRICS) - 1  # no perplexity samples: ppl_tps not compared


def test_cells_that_did_not_get_their_cpus_are_flagged():
    ids = ["c-000000000001"]
    quiet, busy = runs.cell_record(ids[0]), runs.cell_record(ids[0])
    timed = sum(r["ttft_s"] + r["decode_s"] for r in quiet["result"]["repetitions"])
    quiet["result"]["threads"]["per_thread"] = [{"tid": 1, "cpu_s": 0.95 * timed}]
    busy["result"]["threads"]["per_thread"] = [{"tid": 1, "cpu_s": 0.15 * timed}, {"tid": 2, "cpu_s": 0.05 * timed}]
    a, b = runs.typed(runs.run_doc(ids), [quiet]), runs.typed(runs.run_doc(ids), [busy])
    assert a.cells[ids[0]].cpu_share == pytest.approx(0.95)
    assert comparereport.warnings(a, a) == []
    (warning,) = comparereport.warnings(a, b)
    assert warning.startswith("B's CELLs got a median 20% of their CPUs")
    assert "warning: B's CELLs" in comparereport.to_markdown(a, b, ratios.compare(a, b), ratios.thresholds(a, b))


def test_a_generic_cpu_name_with_other_model_numbers_is_another_cpu():
    ids = ["c-000000000001"]
    other = runs.run_doc(ids)
    other["host"]["cpu"]["model"] = 143
    a = runs.typed(runs.run_doc(ids), [runs.cell_record(ids[0])])
    (cell,) = ratios.compare(a, runs.typed(other, [runs.cell_record(ids[0])]))
    assert cell.verdict == ratios.NOT_COMPARABLE and cell.reasons[0].startswith("CPU model")


def test_ignore_one_engine_option_pairs_the_two_settings_and_names_them():
    a_rec, b_rec = runs.cell_record("c-000000000001"), runs.cell_record("c-000000000002", speed=0.5)
    a_rec["cell"]["engine_options"] = {"kv_cache_type": "f16"}
    b_rec["cell"]["engine_options"] = {"kv_cache_type": "f32"}
    a = runs.typed(runs.run_doc(["c-000000000001"]), [a_rec])
    b = runs.typed(runs.run_doc(["c-000000000002"]), [b_rec])
    (paired,) = ratios.compare(a, b, ignore=("engine_options.kv_cache_type",))
    assert paired.verdict == ratios.SLOWER
    assert paired.label.endswith('options {"kv_cache_type": "f16"} -> {"kv_cache_type": "f32"}')
