"""The Ollama runner's client logic against a TEST DOUBLE of Ollama 0.33's API (tests/unit/ollama_double.py).

Each upstream behaviour the double reproduces (images/ollama/README.md cites Ollama's source for it) has
a test here that the runner's earlier client failed.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import time
from pathlib import Path

import pytest

from tests.unit.ollama_double import OllamaDouble, Script

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "ollama"))
import ollamaclient  # noqa: E402  (the runner's own modules, standard library only)
import ollamalog  # noqa: E402
import ollamastream  # noqa: E402

MODEL = "orchestrate-cell"


def opts(gen_tokens: int = 5, num_ctx: int = 2048, threads: int = 2) -> dict:
    return ollamaclient.options(threads, gen_tokens, num_ctx, seed=42)


def words(n: int, seconds: float = 0.005) -> list[tuple[float, str]]:
    return [(seconds, f" w{i}") for i in range(n)]


def raw_generate(port: int, body: dict) -> list[dict]:
    """The chunks Ollama (here: the double) streams for a request the client would not send."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/api/generate", json.dumps(body).encode(), {"Content-Type": "application/json"})
    lines = connection.getresponse().read().decode().splitlines()
    connection.close()
    return [json.loads(line) for line in lines if line.strip()]


# 1. threads: Ollama logs `-t N` in its `starting llama-server` line; llama-server states n_threads itself


def test_the_thread_count_is_read_from_ollamas_launch_line_and_llama_servers_own_line():
    with OllamaDouble(Script(tokens=words(3))) as double:
        client = ollamaclient.Client(double.port)
        client.load(MODEL, opts(threads=3))
        log = "\n".join(double.log)
    assert not re.findall(r"threads=(\d+)", log)  # the line the runner used to read is gone
    assert ollamalog.threads(log)[0] == 3 and "llama-server's own" in ollamalog.threads(log)[1]
    count, how = ollamalog.threads("\n".join(line for line in log.splitlines() if "system_info" not in line))
    assert count == 3 and "-t of Ollama's" in how
    assert ollamalog.llama_server_starts(log) == 1


def test_the_thread_count_is_that_of_the_last_llama_server_started():
    log = "\n".join([
        'time=t level=INFO source=llama_server.go:433 msg="starting llama-server" cmd="/x/llama-server -c 64 -t 4"',
        "cmn init: llama threadpool init, n_threads = 4",
        'time=t level=INFO source=llama_server.go:433 msg="starting llama-server" cmd="/x/llama-server -c 64 -t 2 '
        '--context-shift"',
        "cmn init: llama threadpool init, n_threads = 2"])
    assert ollamalog.threads(log)[0] == 2 and ollamalog.llama_server_starts(log) == 2
    assert ollamalog.threads("no such line")[0] is None


# 2. tokens: Ollama drops empty events with their logprobs; eval_count counts every token; no logprobs timed


def test_tokens_without_a_chunk_are_counted_from_eval_count_and_the_timed_request_asks_no_logprobs():
    # " caf" + the two bytes of "é" split over two tokens (no event for the first) + a token with no text
    tokens = [(0.005, " caf"), (0.005, b"\xc3"), (0.005, b"\xa9"), (0.005, ""), (0.005, " au"), (0.005, " lait")]
    with OllamaDouble(Script(tokens=tokens)) as double:
        generation = ollamaclient.Client(double.port).generate(MODEL, "p", opts(gen_tokens=6))
        sent = double.requests[-1]
        with_logprobs = raw_generate(double.port, {**sent, "logprobs": True})
    assert "logprobs" not in sent and sent["raw"] is True
    assert generation.text == " café au lait" and len(generation.chunks) == 4
    assert generation.tokens == generation.final["eval_count"] == 6 and generation.unseen == 2
    timing = generation.timing()
    assert len(timing["inter_token_latencies_s"]) == 5 and not timing["per_token"]
    assert timing["decode_s"] == pytest.approx(generation.chunks[-1].arrived - generation.chunks[0].arrived)
    # what the runner counted before: one token per logprobs entry, and Ollama sent 4 for 6 tokens
    assert sum(len(c.get("logprobs", [])) for c in with_logprobs) == 4 < with_logprobs[-1]["eval_count"]


def test_with_a_chunk_for_every_token_the_latencies_are_the_gaps_between_chunks():
    with OllamaDouble(Script(tokens=[(0.02, "Once"), (0.01, " upon"), (0.03, " a")])) as double:
        generation = ollamaclient.Client(double.port).generate(MODEL, "p", opts(gen_tokens=3))
    timing = generation.timing()
    assert generation.unseen == 0 and timing["per_token"]
    gaps = [b.arrived - a.arrived for a, b in zip(generation.chunks, generation.chunks[1:])]
    assert timing["inter_token_latencies_s"] == gaps and timing["ttft_s"] >= 0.02


def test_logprobs_cost_decode_time_the_timed_request_does_not_pay():
    script = Script(tokens=words(5, 0.001), logprobs_cost_s=0.05)  # the double's stand-in for a vocabulary sort
    with OllamaDouble(script) as double:
        generation = ollamaclient.Client(double.port).generate(MODEL, "p", opts(gen_tokens=5))
        with_logprobs = raw_generate(double.port, {**double.requests[-1], "logprobs": True})
    assert generation.final["eval_duration"] < 0.1e9 < with_logprobs[-1]["eval_duration"]


# 3. stop strings: a bare FROM import adds the template's stop strings; they apply to raw requests


def test_stop_strings_the_import_added_are_cleared_by_an_empty_list():
    tokens = [(0.001, " a"), (0.001, "<|im_end|>"), (0.001, " b"), (0.001, " c")]
    with OllamaDouble(Script(tokens=tokens, model_stop=["<|im_start|>", "<|im_end|>"])) as double:
        generation = ollamaclient.Client(double.port).generate(MODEL, "p", opts(gen_tokens=4))
        body = {**double.requests[-1]}
        without = {k: v for k, v in body["options"].items() if k != "stop"}
        unset = raw_generate(double.port, {**body, "options": without})
        null = raw_generate(double.port, {**body, "options": {**body["options"], "stop": None}})
    assert body["options"]["stop"] == []
    assert generation.final["done_reason"] == "length" and generation.text == " a<|im_end|> b c"
    for chunks in (unset, null):  # without "stop", or with null, the template's stop strings cut the text
        assert chunks[-1]["done_reason"] == "stop" and "".join(c["response"] for c in chunks) == " a"


# 4. Ollama's repeat limit: more than 30 identical (trimmed) events end the stream without a final chunk


def test_the_repeat_limit_ends_the_stream_without_a_final_chunk_and_is_recorded_as_a_short_repetition():
    tokens = [(0.001, "Once")] + [(0.001, " the")] * 40
    with OllamaDouble(Script(tokens=tokens)) as double:
        generation = ollamaclient.Client(double.port).generate(MODEL, "p", opts(gen_tokens=64))
    assert not generation.final and generation.repeat_limited
    assert len(generation.chunks) == 32 and generation.tokens == 32  # "Once" + 31 times " the"
    rep, summary = ollamastream.record(0, generation, {"context_length": 2048}, 8, 64)
    assert rep["generated_tokens"] == 32 and len(rep["inter_token_latencies_s"]) == 31
    assert summary["stop"] == "repeat-limit" and summary["prefill_from"].startswith("client ttft")
    assert rep["prefill_s"] == rep["ttft_s"] and not summary["final_chunk"]


def test_whitespace_repeats_from_the_start_hit_the_limit_one_chunk_earlier():
    with OllamaDouble(Script(tokens=[(0.001, "\n")] * 40)) as double:  # "\n" trims to "", as the initial text
        generation = ollamaclient.Client(double.port).generate(MODEL, "p", opts(gen_tokens=64))
    assert generation.repeat_limited and len(generation.chunks) == 30


# 5. unload: answered at once, done later; poll /api/ps, preload untimed, check load_duration


def test_unload_is_answered_before_the_model_goes_and_fresh_waits_for_it():
    with OllamaDouble(Script(tokens=words(3), unload_delay_s=0.2, load_s=0.05)) as double:
        client = ollamaclient.Client(double.port)
        client.load(MODEL, opts())
        client.unload(MODEL)
        assert client.loaded(MODEL) is not None  # Ollama answered "unload"; the model is still there
        assert client.wait_unloaded(MODEL) >= 0.15 and client.loaded(MODEL) is None
        fresh = client.fresh(MODEL, opts())
    assert fresh["context_length"] == 2048 and fresh["preload_s"] >= 0.05 and double.loads == 2


def test_a_load_after_an_unload_reuses_the_doomed_runner_and_the_timed_request_then_loads_it():
    with OllamaDouble(Script(tokens=words(3), unload_delay_s=0.1, load_s=0.2)) as double:
        client = ollamaclient.Client(double.port)
        client.load(MODEL, opts(gen_tokens=3))
        client.unload(MODEL)
        preload_s = client.load(MODEL, opts(gen_tokens=3))  # the runner's sequence before: no wait
        time.sleep(0.2)  # the doomed runner goes once the preload no longer holds it
        generation = client.generate(MODEL, "p", opts(gen_tokens=3))
    assert preload_s < 0.1 and double.loads == 2
    assert generation.final["load_duration"] >= 0.2e9
    assert "inside the timed request" in ollamastream.load_inside(generation.final, preload_s)


def test_a_repetition_preloads_after_the_unload_and_its_timed_request_loads_nothing():
    with OllamaDouble(Script(tokens=words(3), unload_delay_s=0.1, load_s=0.2)) as double:
        client = ollamaclient.Client(double.port)
        client.load(MODEL, opts(gen_tokens=3))

        def starts() -> int:
            return ollamalog.llama_server_starts("\n".join(double.log))

        for _ in range(2):
            generation, fresh = client.repetition(MODEL, "p", opts(gen_tokens=3), starts)
            assert generation.final["load_duration"] < 0.05e9 and fresh["unload_wait_s"] >= 0.05
    assert double.loads == 3
    kinds = ["generate" if r.get("prompt") else ("unload" if r.get("keep_alive") == 0 else "load")
             for r in double.requests]
    assert kinds == ["load"] + ["unload", "load", "generate"] * 2
    assert all(r["shift"] is False and r["truncate"] is False for r in double.requests if r.get("keep_alive") != 0)


def test_a_timed_request_that_loads_the_model_is_refused():
    with OllamaDouble(Script(tokens=words(3), load_s=0.1)) as double:
        client = ollamaclient.Client(double.port)

        class OtherOptions(ollamaclient.Client):  # a preload whose runner options differ from the timed request's
            def load(self, model, options):
                return super().load(model, {**options, "num_ctx": 1024})

        with pytest.raises(ollamaclient.OllamaError, match="inside the timed request"):
            OtherOptions(double.port).repetition(MODEL, "p", opts(gen_tokens=3))
        assert client.loaded(MODEL)["context_length"] == 2048  # the timed request reloaded it


# 6. num_ctx: a full context is a "length" stop too; prompt_eval_count against the prompt


def test_num_ctx_has_headroom_and_a_num_ctx_without_a_free_slot_is_refused():
    assert ollamaclient.context_size(64, 64, 8192) == 64 + 64 + ollamaclient.CONTEXT_HEADROOM
    assert ollamaclient.context_size(64, 64, 150) == 150
    assert ollamaclient.context_size(64, 64, 8192, asked=4096) == 4096
    with pytest.raises(ollamaclient.OllamaError, match="free slot"):
        ollamaclient.context_size(64, 64, 8192, asked=128)


def test_a_full_context_stops_as_length_before_num_predict_and_is_told_apart():
    # Ollama evaluates 9 prompt tokens where the runner shaped 8; num_ctx = 8 + 6 as the runner used to set it
    script = Script(tokens=words(6), prompt_eval_count=9)
    with OllamaDouble(script) as double:
        client = ollamaclient.Client(double.port)
        cut = client.generate(MODEL, "p", opts(gen_tokens=6, num_ctx=14))
        old = raw_generate(double.port, {k: v for k, v in double.requests[-1].items() if k != "shift"})
        whole = client.generate(MODEL, "p", opts(gen_tokens=6, num_ctx=ollamaclient.context_size(8, 6, None)))
    assert cut.final["done_reason"] == "length" and cut.tokens == 5 and cut.stop(6) == "context"
    assert old[-1]["done_reason"] == "length" and old[-1]["eval_count"] == 6 and double.shifts == 1  # silent shift
    assert whole.stop(6) == "length" and whole.tokens == 6
    rep, summary = ollamastream.record(0, whole, {"context_length": 78}, 8, 6)
    assert rep["prompt_tokens"] == 9 and "evaluated 9 prompt tokens" in summary["prompt_mismatch"]
    _, short = ollamastream.record(0, whole, {"context_length": 14}, 8, 6)
    assert "context_length 14" in short["context_problem"]
    assert ollamastream.prompt_mismatch(whole.final, 9) is None
