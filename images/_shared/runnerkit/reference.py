"""An engine's own generation path, timed beside ours in the same container (the fidelity benchmark).

The runner times its repetitions (A), then the engine's documented path (B: its generation
API or example) on the same prompt ids, cores and model, then its own repetitions again (A),
so that drift during the CELL falls on both sides. The block goes into the RESULT's
``extra.reference``; benchmarks/fidelity.py reads it.
"""

from __future__ import annotations

import time


class TokenClock:
    """A streamer for a generation API that hands over each new token as it is chosen.

    ``put(value)`` is called first with the prompt (ignored), then with each new token; the
    clock is read on each call. ``end()`` closes it. Works with transformers' ``generate``
    (``streamer=``), which calls ``put`` and ``end`` only.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.stamps: list[float] = []
        self.tokens: list[int] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        ids = value.tolist() if hasattr(value, "tolist") else value
        while isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], list):
            ids = ids[0]
        for token in ids if isinstance(ids, list) else [ids]:
            self.stamps.append(now)
            self.tokens.append(int(token))

    def end(self) -> None:
        pass


def streamed(index: int, prompt_tokens: int, start: float, stamps: list[float], tokens: list[int]) -> dict:
    """One repetition of the reference path: ``start`` read before the call, one clock reading per token.

    ttft_s: from the call until the first token arrived; inter-token latencies: from one
    token's arrival to the next; decode_s: their sum (the span our decode_s covers).
    """
    latencies = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    decode_s = sum(latencies)
    return {"index": index, "prompt_tokens": prompt_tokens, "generated_tokens": len(tokens),
            "ttft_s": stamps[0] - start if stamps else None, "decode_s": decode_s,
            "gen_tok_s": len(latencies) / decode_s if decode_s > 0 else None,
            "inter_token_latencies_s": latencies, "token_ids": list(tokens)}


def ours(index: int, rep: dict) -> dict:
    """One of our repetitions, in the reference block's terms (the second A)."""
    latencies = rep["inter_token_latencies_s"]
    decode_s = sum(latencies)
    return {"index": index, "prefill_s": rep["prefill_s"], "ttft_s": rep["ttft_s"], "decode_s": decode_s,
            "gen_tok_s": len(latencies) / decode_s if decode_s > 0 else None}


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first position where two token lists differ (the shorter one's length when one is a prefix)."""
    for position, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return position
    return None if len(a) == len(b) else min(len(a), len(b))


def block(name: str, how: str, call: str, first: list[dict], reference: list[dict], again: list[dict]) -> dict:
    """``extra.reference``: the reference's repetitions (B) between ours (A: the RESULT's, then ``again``)."""
    expected = first[0]["token_ids"] if first else []
    differences = [first_difference(expected, rep["token_ids"]) for rep in reference]
    return {
        "name": name, "how": how, "call": call,
        "order": "ABA: the RESULT's repetitions (A), the reference's (B), ours again (second_a)",
        "repetitions": reference,
        "second_a": [ours(i, rep) for i, rep in enumerate(again)],
        "same_tokens": all(d is None for d in differences),
        "first_difference": next((d for d in differences if d is not None), None),
    }
