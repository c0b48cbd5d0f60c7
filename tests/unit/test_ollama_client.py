"""The Ollama runner's client logic against a TEST DOUBLE of Ollama's API (tests/unit/ollama_double.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.unit.ollama_double import OllamaDouble, Script

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "ollama"))
import ollamaclient  # noqa: E402  (the runner's own module, standard library only)

OPTIONS = {"num_thread": 2, "temperature": 0.0, "top_k": 1, "repeat_penalty": 1.0, "seed": 42, "num_predict": 5}


def test_multi_token_and_empty_chunks_are_counted_per_token_and_timed_at_the_client():
    script = Script(chunks=[(0.05, ["Once"]), (0.02, [" upon", " a"]), (0.01, []), (0.02, [" time", ","])])
    with OllamaDouble(script) as double:
        generation = ollamaclient.Client(double.port).generate("m", "prompt text", OPTIONS)
    assert generation.tokens == 5 and generation.text == "Once upon a time,"
    summary = generation.summary()
    assert summary["multi_token_chunks"] == 2 and summary["empty_chunks"] == 1 and summary["counted_by"] == [
        "logprobs"]
    assert summary["done_reason"] == "length" and not summary["stopped_short"]
    timing = generation.timing()
    assert len(timing["inter_token_latencies_s"]) == 4  # 5 tokens
    assert timing["ttft_s"] >= 0.05
    carrying = [c for c in generation.chunks if c.tokens]
    # the gaps between token-carrying chunks are spread over their tokens: nothing invented, nothing lost
    assert timing["decode_s"] == pytest.approx(carrying[-1].arrived - carrying[0].arrived)
    assert min(timing["inter_token_latencies_s"]) > 0
    # the two tokens of the second chunk share its gap from the first chunk
    assert timing["inter_token_latencies_s"][0] == pytest.approx(timing["inter_token_latencies_s"][1])
    sent = double.requests[-1]
    assert sent["raw"] is True and sent["stream"] is True and sent["options"]["num_thread"] == 2


def test_a_short_generation_is_marked_with_ollamas_done_reason():
    with OllamaDouble(Script(chunks=[(0.01, ["The"]), (0.01, [" end"])], done_reason="stop")) as double:
        generation = ollamaclient.Client(double.port).generate("m", "p", OPTIONS)
    assert generation.stopped_short and generation.summary()["stopped_short"]
    assert generation.final["eval_count"] == 2 < OPTIONS["num_predict"]


def test_chunks_without_logprobs_count_one_token_for_text_and_none_when_empty():
    script = Script(chunks=[(0.01, "Once"), (0.01, ""), (0.01, " upon")], logprobs=False)
    with OllamaDouble(script) as double:
        generation = ollamaclient.Client(double.port).generate("m", "p", OPTIONS)
    assert [c.tokens for c in generation.chunks] == [1, 0, 1]
    assert generation.summary()["counted_by"] == ["empty", "text"]
    assert len(generation.timing()["inter_token_latencies_s"]) == 1


def test_everything_in_one_chunk_leaves_no_measurable_inter_token_latency():
    with OllamaDouble(Script(chunks=[(0.01, ["a", "b", "c"])])) as double:
        generation = ollamaclient.Client(double.port).generate("m", "p", OPTIONS)
    with pytest.raises(ollamaclient.OllamaError, match="one chunk"):
        generation.timing()


def test_unload_then_load_between_repetitions():
    with OllamaDouble(Script(chunks=[(0.01, ["a"]), (0.01, ["b"])])) as double:
        client = ollamaclient.Client(double.port)
        assert client.version() == "0.33.1-test-double"
        client.load("m", OPTIONS)
        client.generate("m", "p", OPTIONS)
        assert client.unload("m")["done_reason"] == "unload" and not double.loaded
        client.load("m", OPTIONS)
        assert double.loaded
    kinds = ["generate" if r.get("prompt") else ("unload" if r.get("keep_alive") == 0 else "load")
             for r in double.requests]
    assert kinds == ["load", "generate", "unload", "load"]


def test_an_unload_ollama_did_not_confirm_is_an_error():
    with OllamaDouble(Script(unload_answer="stop")) as double:
        with pytest.raises(ollamaclient.OllamaError, match="unload"):
            ollamaclient.Client(double.port).unload("m")
