"""The summary (merge/standings.py, merge/baseline.py, report/summaries.py): ranks, ratios to the baseline in the
words their intervals support, thresholds, quality beside speed, and the CELLs not ranked (known answers)."""

import pytest

from orchestrator.errors import UsageError
from orchestrator.merge import baseline as yardstick
from orchestrator.merge import frames, qualitycols
from orchestrator.report import summaries, summarymd
from orchestrator.stats import ratio as stat
from tests.unit import records

FREQ = {"ghz": 2.5, "source": "test"}
R = (99.0, 99.5, 100.0, 100.5, 101.0)  # the baseline's decode rates


def expected(a, b, w=3):
    """The 5 x 5 Mann-Whitney interval by hand: the w-th smallest and largest of the 25 ratios b/a (w = 3 at 95 %)."""
    found = sorted(y / x for x in a for y in b)
    return found[w - 1], found[-w]


def made_up():
    disagree = records.rated("c-000000000005", "transformers", "safetensors", R)
    for rep in disagree["result"]["repetitions"]:
        rep["token_ids"] = [0, 1, 9, 9, 9]  # leaves the reference after 2 tokens
    noisy = records.with_rounds(records.rated("c-000000000006", "candle", "gguf-q4_0", tuple(3 * r for r in R)),
                                [1] * 5, flags=("steal",))
    return [records.rated("c-000000000001", "llama.cpp", "gguf-f32", R),
            records.rated("c-000000000002", "llama.cpp", "gguf-q8_0", tuple(2 * r for r in R), prefill=[0.005] * 5),
            records.rated("c-000000000003", "onnxruntime", "onnx", R),
            records.rated("c-000000000004", "candle", "safetensors", tuple(r / 3 for r in R)),
            disagree, noisy,
            records.rated("c-000000000007", "candle", "gguf-q8_0", (50.0, 80.0, 101.5, 120.0, 150.0)),
            records.record("c-000000000008", status="oom", reason="killed at the memory limit", engine="candle",
                           fmt="gguf-q4_1"),
            records.perplexity_record("c-000000000009", "llama.cpp", "gguf-f32", 20.0),
            records.perplexity_record("c-00000000000a", "llama.cpp", "gguf-q8_0", 22.0)]


def summary_of(found, given=None, matrix_texts=()):
    table, reps = frames.tables(found, FREQ)
    return summaries.summarise(table, reps, given, matrix_texts)


def test_ranks_ratios_and_words_with_known_answers():
    summary = summary_of(made_up())
    (group,) = summary.groups  # the perplexity CELLs give quality, not a group of their own
    assert group.title == "tinystories-15m, w, 1 thread" and group.baseline["cell_id"] == "c-000000000001"
    by_id = {s.row["cell_id"]: s for s in group.standings}
    assert [s.row["cell_id"] for s in group.ranked] == ["c-000000000002", "c-000000000007", "c-000000000001",
                                                        "c-000000000003", "c-000000000004"]
    assert [s.rank for s in group.ranked] == [1, 2, 3, 4, 5]
    fast = by_id["c-000000000002"].versus["gen_tps"]
    low, high = expected(R, tuple(2 * r for r in R))
    assert fast.ratio.estimate == pytest.approx(2.0) and (fast.ratio.interval.low, fast.ratio.interval.high) == (
        pytest.approx(low), pytest.approx(high))
    assert fast.words == stat.FASTER and fast.text == f"2.00x faster [{low:.2f}, {high:.2f}]" == "2.00x faster [1.97, 2.03]"
    assert by_id["c-000000000003"].versus["gen_tps"].text == "same within noise [0.99, 1.02]"
    assert by_id["c-000000000004"].versus["gen_tps"].text == "3.00x slower [2.96, 3.05]"
    wide = by_id["c-000000000007"].versus["gen_tps"]
    assert wide.words == yardstick.UNCLEAR and not {"faster", "slower", "same"} & set(wide.text.split())
    # A time: half the prefill is a shorter TTFT, and so faster, in the same words.
    assert by_id["c-000000000002"].versus["ttft_ms"].words == stat.FASTER
    assert by_id["c-000000000001"].is_baseline and by_id["c-000000000001"].versus["gen_tps"] is None


def test_cells_that_disagree_tripped_a_guard_or_failed_are_shown_not_ranked_with_the_reason():
    (group,) = summary_of(made_up()).groups
    unranked = {s.row["cell_id"]: s.unranked for s in group.standings if s.rank is None}
    assert unranked == {
        "c-000000000005": "disagrees with its reference c-000000000001: 2 of 5 greedy tokens agree",
        "c-000000000006": "noise guards tripped (steal)",
        "c-000000000008": "oom: killed at the memory limit"}
    assert [s.rank for s in group.standings][-3:] == [None, None, None]  # after the ranked ones


def test_quality_comes_from_the_perplexity_cell_of_the_same_engine_and_format():
    summary = summary_of(made_up())
    by_id = {s.row["cell_id"]: s for s in summary.groups[0].standings}
    assert by_id["c-000000000002"].quality["ppl_vs_f32"] == pytest.approx(0.10)  # 22 over the F32 parent's 20
    assert by_id["c-000000000001"].quality["ppl_vs_f32"] == 0.0  # the reference itself
    assert by_id["c-000000000003"].quality["ppl_vs_f32"] is None  # not measured: null, not guessed
    assert by_id["c-000000000003"].quality["kl_mean"] is None  # no runner measures it yet
    assert [c.key for c in summary.quality_columns] == ["ppl", "ppl_vs_f32", "agree"]
    assert qualitycols.texts(by_id["c-000000000002"].quality, by_id["c-000000000002"].row)["ppl_vs_f32"] == "+10.00%"


def test_a_divergence_column_appears_once_the_table_has_it():
    table, reps = frames.tables(made_up(), FREQ)
    table["ppl_kl_mean"] = [0.02 if c == "c-00000000000a" else None for c in table["cell_id"]]
    summary = summaries.summarise(table, reps)
    assert "kl_mean" in [c.key for c in summary.quality_columns]
    by_id = {s.row["cell_id"]: s for s in summary.groups[0].standings}
    assert by_id["c-000000000002"].quality["kl_mean"] == 0.02 and by_id["c-000000000004"].quality["kl_mean"] is None


def test_the_threshold_comes_from_the_runs_rounds_where_it_has_them():
    assert summary_of(made_up()).thresholds[None]["gen_tps"].how.startswith("fixed 5%")
    rounds = [1, 1, 2, 2, 3]  # round medians of R: 99.25, 100.25, 101 -> spread 101 / 99.25 - 1
    found = [records.with_rounds(r, rounds) for r in made_up() if r["status"] == "ok"]
    chosen = summary_of(found).thresholds[None]["gen_tps"]
    assert chosen.derived and chosen.value == pytest.approx(101 / 99.25 - 1)
    assert "derived from this RUN's rounds" in summarymd.markdown(summary_of(found), "S")


def test_the_baseline_is_chosen_given_from_the_matrix_or_by_default():
    found = made_up()
    assert summary_of(found).choice.engine == "llama.cpp" and "by default" in summary_of(found).choice.how
    from_matrix = summary_of(found, matrix_texts=["version: 1\nbaseline: onnxruntime\n"])
    assert (from_matrix.choice.engine, from_matrix.choice.how) == ("onnxruntime", "the MATRIX's baseline")
    assert from_matrix.groups[0].baseline["cell_id"] == "c-000000000003"
    given = summary_of(found, "llama.cpp/gguf-q8_0", ["version: 1\nbaseline: onnxruntime\n"])
    assert given.choice.how == "chosen with --baseline" and given.groups[0].baseline["cell_id"] == "c-000000000002"
    assert {s.row["cell_id"]: s.versus["gen_tps"].text for s in given.groups[0].ranked
            if s.row["cell_id"] == "c-000000000001"} == {"c-000000000001": "2.00x slower [1.97, 2.03]"}
    with pytest.raises(UsageError, match="no CELL of engine 'nope'"):
        summary_of(found, "nope")
    with pytest.raises(UsageError, match="has no CELL of format 'gguf-q4_0'"):
        summary_of(found, "llama.cpp/gguf-q4_0")
    assert yardstick.choose(["candle"]).engine == "candle"  # no llama.cpp: the first engine of the PLAN
    assert summaries.matrix_baseline("version: [unclosed") is None


def test_summary_md_is_short_markdown_with_every_claim_and_reason():
    text = summarymd.markdown(summary_of(made_up()), "Summary of RUN x")
    assert text.startswith("## Summary of RUN x\n")
    assert "| 1 | llama.cpp gguf-q8_0 | 200.0 | 2.00x faster [1.97, 2.03] |" in text
    assert "| - | candle gguf-q4_0 |" in text and "noise guards tripped (steal) |" in text
    assert "Noise thresholds: decode tok/s 5%; prefill tok/s 5%; TTFT ms 5% (fixed 5%" in text
    assert "| +10.00% |" in text and "PPL vs F32" in text and "KL mean" not in text
    assert len(text.splitlines()) < 30


def test_a_long_summary_stays_short_and_says_what_it_left_to_the_table():
    found = []
    for index in range(60):  # 60 workloads: 60 groups of one CELL
        rec = records.rated(f"c-{index:012x}", rates=R)
        rec["cell"]["workload"]["name"] = f"w{index}"
        found.append(rec)
    text = summarymd.markdown(summary_of(found), "S")
    assert text.count("### ") == summarymd.MAX_GROUPS and "... and 10 more group(s) of 60: see the TABLE" in text
    many = [records.rated(f"c-{index:012x}", "candle", "gguf-q8_0", R) for index in range(45)]
    text = summarymd.markdown(summary_of(many), "S")
    assert text.count("| candle gguf-q8_0 |") == summarymd.MAX_SHOWN and "... and 5 more CELL(s) of this group" in text


def test_an_engine_known_to_sit_below_its_own_best_path_is_said_so_once():
    text = summarymd.markdown(summary_of(made_up()), "S")
    assert text.count("**onnxruntime** is not the engine at its best:") == 1 and "onnxruntime-genai" in text
    without = [r for r in made_up() if r["cell"]["engine"] != "onnxruntime"]
    assert "not the engine at its best" not in summarymd.markdown(summary_of(without), "S")
