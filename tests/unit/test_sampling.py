"""Repetition policy, shuffled order and merging of batches (pure, made-up records)."""

import pytest

from orchestrator.execute import batchmerge, sampling
from orchestrator.matrix import matrixfile
from tests.unit.records import record

META = {"noise": {"flags": []}, "frequency": {"ghz": None, "source": None, "samples": 0, "reason": "test"}}


def policy(low=5, high=20, target=0.02, rounds=2, seed=7, shuffle=True):
    return sampling.Sampling(low, high, target, rounds, seed, shuffle)


def test_min_is_split_over_rounds_and_top_ups_stop_at_max():
    assert policy(low=5, rounds=2).round_sizes() == (3, 2)
    assert policy(low=2, rounds=3).round_sizes() == (1, 1, 1)  # every round runs at least one
    assert policy(low=5, rounds=2).top_up_size(10) == 3
    assert policy(low=5, high=20, rounds=2).top_up_size(19) == 1
    assert policy(low=5, high=20).top_up_size(20) == 0


def test_wants_more_until_cv_target_or_max():
    assert policy().wants_more([100.0, 110.0, 90.0])
    assert not policy().wants_more([100.0, 100.5, 99.5])
    assert not policy(high=3).wants_more([100.0, 110.0, 90.0])
    assert not policy(target=None).wants_more([100.0, 110.0, 90.0])


def test_order_is_seeded_shuffled_differs_by_round_and_keeps_every_cell():
    ids = [f"c-{i:012x}" for i in range(12)]
    first, again = policy(seed=1).order(ids, 1), policy(seed=1).order(ids, 1)
    assert first == again and sorted(first) == ids and first != ids
    assert policy(seed=1).order(ids, 2) != first
    assert policy(shuffle=False).order(ids, 1) == ids


def test_from_matrix_plain_number_keeps_todays_meaning(tmp_path):
    text = ("version: 1\nengines: [{name: llama.cpp}]\nmodels: [{id: tinystories-15m, formats: [gguf-f32]}]\n"
            "threads: [1]\nworkloads: [{name: w, prompt: x, gen_tokens: 8}]\n")
    plain = sampling.Sampling.from_matrix(matrixfile.parse(text + "repetitions: 4\n"), 3)
    assert (plain.min, plain.max, plain.cv_target, plain.rounds, plain.shuffle) == (4, 4, None, 1, False)
    adaptive = sampling.Sampling.from_matrix(matrixfile.parse(
        text + "repetitions: {min: 5, max: 30, cv_target: 0.02}\nrounds: 2\nseed: 11\n"), 11)
    assert (adaptive.min, adaptive.max, adaptive.cv_target, adaptive.rounds, adaptive.shuffle) == (5, 30, 0.02, 2, True)


def test_matrix_refuses_min_above_max():
    text = ("version: 1\nengines: [{name: llama.cpp}]\nmodels: [{id: tinystories-15m, formats: [gguf-f32]}]\n"
            "threads: [1]\nworkloads: [{name: w, prompt: x, gen_tokens: 8}]\n"
            "repetitions: {min: 9, max: 5, cv_target: 0.02}\n")
    with pytest.raises(Exception, match="above repetitions.max"):
        matrixfile.parse(text)


def test_combine_concatenates_batches_and_keeps_each_repetitions_batch():
    first, second = record(decode=(0.04, 0.05)), record(decode=(0.06,), peak=70 * 2**20, cpu=0.5)
    merged = batchmerge.combine([({**META, "batch": 1, "round": 1, "position": 4, "session": 1}, first),
                               ({**META, "batch": 2, "round": 2, "position": 9, "session": 2}, second)],
                              policy(target=None, low=3, high=3), complete=True)
    assert [r["index"] for r in merged["result"]["repetitions"]] == [0, 1, 2]
    assert [r["decode_s"] for r in merged["result"]["repetitions"]] == [0.04, 0.05, 0.06]
    assert merged["cell"]["repetitions"] == 3
    assert merged["outside"]["cpu_seconds"] == 2.0 and merged["outside"]["peak_memory_bytes"] == 70 * 2**20
    assert merged["outside"]["wall_s"] == 2.0
    assert merged["sampling"]["repetition_batch"] == [1, 1, 2]
    assert [(b["round"], b["position"], b["session"]) for b in merged["sampling"]["batches"]] == [(1, 4, 1), (2, 9, 2)]
    assert merged["sampling"]["stopped"] == "fixed repetitions"


def test_combine_a_failed_batch_fails_the_cell():
    ok, oom = record(decode=(0.04, 0.05)), record(status="oom", reason="killed")
    merged = batchmerge.combine([({**META, "batch": 1, "round": 1, "position": 1, "session": 1}, ok),
                               ({**META, "batch": 2, "round": 2, "position": 2, "session": 1}, oom)],
                              policy(), complete=True)
    assert merged["status"] == "oom" and merged["sampling"]["stopped"] == "failed"


def test_combine_says_whether_the_target_was_reached():
    tight = record(decode=(0.04, 0.0401, 0.0399))
    loose = record(decode=(0.04, 0.05, 0.03))
    meta = {**META, "batch": 1, "round": 1, "position": 1, "session": 1}
    assert batchmerge.combine([(meta, tight)], policy(), True)["sampling"]["stopped"] == "cv_target reached"
    assert batchmerge.combine([(meta, loose)], policy(), True)["sampling"]["stopped"] == "max reached"
    assert batchmerge.combine([(meta, loose)], policy(), False)["sampling"]["stopped"] == "in progress"


def test_cell_frequency_is_the_sample_weighted_mean_of_its_batches():
    freq = [{"ghz": 2.0, "samples": 10, "sampler": "scaling_cur_freq", "cpus": [1], "source": "x"},
            {"ghz": 3.0, "samples": 30, "sampler": "scaling_cur_freq", "cpus": [1], "source": "x"}]
    found = batchmerge._frequency(freq)
    assert found["ghz"] == 2.75 and found["samples"] == 40 and found["source"].startswith("sampled: mean of 40 readings")
