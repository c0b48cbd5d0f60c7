"""One streamed /api/generate of Ollama 0.33 as the client saw it, and what a RESULT takes from it (pure).

Standard library only, free of the runner kit: tested on any machine (tests/unit/test_ollama_client.py).
What Ollama sends, checked against its source at v0.33.0-rc2 (file:line in images/ollama/README.md):

- Ollama 0.33 runs llama-server and forwards one chunk per llama-server event that has text; an event
  with empty text is dropped, its logprobs with it, and llama-server sends no event at all while the text
  ends inside a UTF-8 character. So a chunk carries one token's text, some tokens have no chunk, and no
  chunk says which: the token count is the final chunk's ``eval_count`` (llama-server's predicted_n).
- The final chunk (``done: true``) has ``done_reason`` "length" for every llama-server limit stop (the
  num_predict budget and a full context alike) and "stop" otherwise.
- After more than REPEAT_LIMIT consecutive events with the same whitespace-trimmed text, Ollama stops
  reading and ends the stream with HTTP 200 and no final chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REPEAT_LIMIT = 30  # Ollama aborts when the repeat counter exceeds 30 (llm/llama_server.go:1700)
LOAD_INSIDE_FRACTION = 0.5  # a timed request whose load_duration reaches half the untimed preload's time...
LOAD_INSIDE_FLOOR_S = 0.05  # ...and at least this, loaded the model itself


class OllamaError(RuntimeError):
    """Ollama answered with an error, or streamed something this client cannot read or must refuse."""


@dataclass(frozen=True)
class Chunk:
    """One streamed chunk that carried text, stamped with time.perf_counter as it arrived."""

    arrived: float
    text: str


@dataclass
class Generation:
    """One streamed generation: the chunks with text, and the final chunk ({} when Ollama sent none)."""

    sent: float
    chunks: list[Chunk] = field(default_factory=list)
    final: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def repeat_limited(self) -> bool:
        """Did Ollama end the stream on its token repeat limit (no final chunk after a run of repeats)?"""
        return not self.final and trailing_run(self.chunks) >= REPEAT_LIMIT

    @property
    def tokens(self) -> int:
        """Tokens decoded: Ollama's eval_count; without a final chunk, the chunks seen (each one token)."""
        return int(self.final["eval_count"]) if "eval_count" in self.final else len(self.chunks)

    @property
    def unseen(self) -> int:
        """Tokens Ollama decoded but streamed no chunk for (empty text, or text cut inside a UTF-8 character)."""
        return self.tokens - len(self.chunks)

    def stop(self, num_predict: int) -> str:
        """Why the generation ended: "length" (num_predict reached), "context" (a limit stop before
        num_predict: the context was full), "stop" (end of sequence or a stop string) or "repeat-limit"."""
        if not self.final:
            return "repeat-limit"
        if self.final.get("done_reason") == "length":
            return "length" if self.tokens >= num_predict else "context"
        return "stop"

    def timing(self) -> dict:
        """TTFT and the inter-token latencies at the client, and whether they are per token.

        Every chunk is one token. When every token had a chunk, the latencies are the gaps between chunk
        arrivals. When Ollama streamed no chunk for some tokens, their arrival times are unknown: the
        measured decode time (first chunk to last) is split evenly over the tokens instead, and
        ``per_token`` says so.
        """
        if not self.chunks:
            raise OllamaError("the stream carried no text")
        if self.unseen < 0:
            raise OllamaError(f"Ollama streamed {len(self.chunks)} chunks with text but reports eval_count "
                              f"{self.tokens}")
        first, last = self.chunks[0].arrived, self.chunks[-1].arrived
        if not self.unseen:
            latencies = [b.arrived - a.arrived for a, b in zip(self.chunks, self.chunks[1:])]
        elif len(self.chunks) == 1:
            raise OllamaError(f"Ollama streamed one chunk for {self.tokens} tokens: no decode time can be "
                              "measured at the client")
        else:
            latencies = [(last - first) / (self.tokens - 1)] * (self.tokens - 1)
        return {"ttft_s": first - self.sent, "inter_token_latencies_s": latencies, "decode_s": sum(latencies),
                "per_token": not self.unseen}

    def summary(self, num_predict: int) -> dict:
        """What a RESULT's extra keeps of this generation: Ollama's own figures and the chunk accounting."""
        keys = ("done_reason", "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration")
        return {**{k: self.final.get(k) for k in keys}, "final_chunk": bool(self.final),
                "chunks": len(self.chunks), "tokens": self.tokens, "unseen_tokens": self.unseen,
                "stop": self.stop(num_predict)}


def trailing_run(chunks: list[Chunk]) -> int:
    """How many chunks at the end share one whitespace-trimmed text (Ollama's repeat test)."""
    run = 0
    for chunk in reversed(chunks):
        if chunk.text.strip() != chunks[-1].text.strip():
            break
        run += 1
    return run


def load_inside(final: dict, preload_s: float) -> str | None:
    """Why the timed request's own load_duration says the model was loaded inside it, or None.

    Ollama's load_duration is the time from the request's arrival to its runner being ready
    (server/routes.go:475, :710): a few milliseconds when the preloaded runner is reused, the whole load
    when the request had to load the model.
    """
    if "load_duration" not in final:
        return None
    load_s = final["load_duration"] / 1e9
    if load_s >= max(LOAD_INSIDE_FRACTION * preload_s, LOAD_INSIDE_FLOOR_S):
        return (f"the timed request's load_duration was {load_s:.3f} s (the untimed preload took "
                f"{preload_s:.3f} s): Ollama loaded the model inside the timed request")
    return None


def prompt_mismatch(final: dict, prompt_tokens: int) -> str | None:
    """Why Ollama's prompt_eval_count differs from the prompt the runner shaped, or None."""
    counted = final.get("prompt_eval_count")
    if counted is None or counted == prompt_tokens:
        return None
    return (f"Ollama evaluated {counted} prompt tokens, the runner shaped {prompt_tokens} (the text "
            "re-tokenized differently, or the prompt was truncated)")


def record(index: int, generation: Generation, fresh: dict, prompt_tokens: int, num_predict: int) -> tuple[dict, dict]:
    """(the contract's repetition without token_ids, what extra keeps of it) for one timed generation.

    generated_tokens is Ollama's eval_count; prompt_tokens Ollama's prompt_eval_count, so that a prompt
    Ollama evaluated differently shows as such. A repetition Ollama's repeat limit cut has no final chunk:
    it is recorded as a short one, its prefill_s bounded by the client TTFT (Ollama reports none).
    """
    timing = generation.timing()
    final = generation.final
    summary = {**generation.summary(num_predict), **fresh, "per_token_latencies": timing.pop("per_token")}
    if final:
        prefill_s = final.get("prompt_eval_duration", 0) / 1e9
    else:
        prefill_s, summary["prefill_from"] = timing["ttft_s"], "client ttft (Ollama sent no final chunk)"
    mismatch = prompt_mismatch(final, prompt_tokens)
    if mismatch:
        summary["prompt_mismatch"] = mismatch
    needed = prompt_tokens + num_predict + 1
    if (fresh.get("context_length") or 0) < needed:
        summary["context_problem"] = (f"/api/ps lists context_length {fresh.get('context_length')}, less than "
                                      f"prompt + num_predict + 1 = {needed}")
    rep = {"index": index, "prompt_tokens": int(final.get("prompt_eval_count") or prompt_tokens),
           "generated_tokens": generation.tokens, "prefill_s": prefill_s, **timing}
    return rep, summary
