"""One timed greedy repetition (contract step 6), the same clock and boundaries for every runner."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def repetition(index: int, prompt_ids: list[int], gen_tokens: int, prefill: Callable[[], Any],
               pick: Callable[[Any], int], step: Callable[[int], Any]) -> dict:
    """Time ``prefill()`` over the prompt, ``pick(output)`` (argmax) for each token id, and
    ``step(token)`` (one forward pass with the KV cache) between tokens; exactly gen_tokens ids.

    prefill_s: prefill(); ttft_s: start of prefill until the first id is known; each
    inter-token latency: from one id known to the next; decode_s: their sum.
    """
    clock = time.perf_counter
    start = clock()
    output = prefill()
    prefilled = clock()
    token = int(pick(output))
    previous = first = clock()
    tokens, latencies = [token], []
    while len(tokens) < gen_tokens:  # end-of-sequence is ignored on purpose
        token = int(pick(step(token)))
        now = clock()
        latencies.append(now - previous)
        previous = now
        tokens.append(token)
    return {"index": index, "prompt_tokens": len(prompt_ids), "generated_tokens": len(tokens),
            "prefill_s": prefilled - start, "decode_s": sum(latencies), "ttft_s": first - start,
            "inter_token_latencies_s": latencies, "token_ids": tokens}
