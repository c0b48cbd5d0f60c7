"""runnerkit.reference: an engine's own generation path timed beside ours (the fidelity benchmark)."""

import importlib.util
from pathlib import Path

# Loaded from its file under a name of its own: the runnerkit package is imported, assembled per IMAGE,
# by other tests (tests/unit/test_runnerkit.py), and reference.py imports nothing from it.
_SPEC = importlib.util.spec_from_file_location(
    "runnerkit_reference_under_test", Path(__file__).resolve().parents[2] / "images/_shared/runnerkit/reference.py")
reference = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reference)


class Ids:
    """A stand-in for a tensor handed to a streamer: only ``tolist`` is used."""

    def __init__(self, value):
        self.value = value

    def tolist(self):
        return self.value


def test_the_clock_skips_the_prompt_and_stamps_each_token_as_it_arrives():
    clock = reference.TokenClock()
    clock.put(Ids([[1, 2, 3, 4]]))  # the prompt, as transformers' generate hands it over first
    clock.put(Ids([7]))
    clock.put(Ids([8]))
    clock.put(9)
    clock.end()
    assert clock.tokens == [7, 8, 9]
    assert len(clock.stamps) == 3 and clock.start <= clock.stamps[0] <= clock.stamps[1] <= clock.stamps[2]


def test_a_streamed_repetition_has_our_boundaries():
    rep = reference.streamed(0, 16, 10.0, [10.5, 10.6, 10.8], [5, 6, 7])
    assert rep["ttft_s"] == 0.5 and rep["generated_tokens"] == 3 and rep["prompt_tokens"] == 16
    assert rep["inter_token_latencies_s"] == [0.09999999999999964, 0.20000000000000107]
    assert abs(rep["decode_s"] - 0.3) < 1e-9 and abs(rep["gen_tok_s"] - 2 / 0.3) < 1e-6


def test_a_repetition_with_one_token_has_no_rate():
    assert reference.streamed(0, 4, 1.0, [1.2], [3])["gen_tok_s"] is None


def test_the_block_says_where_the_tokens_first_differ():
    ours = [{"token_ids": [1, 2, 3], "prefill_s": 0.1, "ttft_s": 0.11, "inter_token_latencies_s": [0.1, 0.1]}]
    same = reference.streamed(0, 4, 0.0, [0.1, 0.2, 0.3], [1, 2, 3])
    other = reference.streamed(1, 4, 0.0, [0.1, 0.2, 0.3], [1, 2, 4])
    block = reference.block("x", "how", "call()", ours, [same, same], ours)
    assert block["same_tokens"] and block["first_difference"] is None
    assert block["second_a"] == [{"index": 0, "prefill_s": 0.1, "ttft_s": 0.11, "decode_s": 0.2, "gen_tok_s": 10.0}]
    block = reference.block("x", "how", "call()", ours, [same, other], ours)
    assert not block["same_tokens"] and block["first_difference"] == 2


def test_a_prefix_differs_at_its_end():
    assert reference.first_difference([1, 2, 3], [1, 2]) == 2
    assert reference.first_difference([1, 2], [1, 2]) is None


def test_the_fidelity_benchmark_reads_a_reference_block():
    from benchmarks import fidelity

    ours = [{"index": i, "prompt_tokens": 4, "prefill_s": 0.04, "ttft_s": 0.05, "decode_s": 0.3,
             "inter_token_latencies_s": [0.1, 0.1, 0.1], "token_ids": [1, 2, 3, 4]} for i in range(2)]
    slower = [reference.streamed(i, 4, 0.0, [0.06, 0.26, 0.46, 0.66], [1, 2, 3, 4]) for i in range(2)]
    block = reference.block("transformers generate()", "how", "model.generate(...)", ours, slower, ours)
    record = {"cell": {"format": "safetensors", "threads": 1, "workload": {"gen_tokens": 4}},
              "result": {"repetitions": ours, "extra": {"reference": block}}}
    row = fidelity.row(record)
    assert abs(row["ratio"] - 2.0) < 1e-9 and row["same_tokens"] is True  # ours 10 tok/s, generate() 5 tok/s
    assert row["bench_tg_command"] == "model.generate(...)" and row["harness_share_median"] is None
    text = fidelity.table([row], "generate()")
    assert "ratio ours/generate()" in text and "| 2.000 |" in text and text.rstrip().endswith("| yes |")
