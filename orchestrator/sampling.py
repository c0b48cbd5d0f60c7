"""How many repetitions a CELL gets, in which batches and order, and how its batches merge into one record.

Adaptive repetitions are done by the orchestrator, not the runners: a CELL's container runs
in batches (each batch loads the model, runs the warm-up, then its timed repetitions), and
the batches' repetitions merge into one CELL record. So every ENGINE gets it without
changing its runner. Pure functions: rounds.py runs the batches.

- ``repetitions: N`` — N timed repetitions per CELL, split over the rounds.
- ``repetitions: {min, max, cv_target}`` — min repetitions split over the rounds; then
  top-up passes, each giving every CELL whose decode-rate CV is still above cv_target one
  more batch of ceil(min / rounds) repetitions (never beyond max), until no CELL needs one.
- ``rounds: R`` — the PLAN runs R times, each round in its own shuffled order (Python's
  ``random.Random(f"{seed}/{round}")``); top-up pass p is shuffled as round R + p.
  With one round and no seed in the MATRIX the PLAN order is kept.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

from orchestrator import certainty, noise, perplexity


@dataclass(frozen=True)
class Sampling:
    """The repetition and order policy of a RUN."""

    min: int
    max: int
    cv_target: float | None
    rounds: int
    seed: int
    shuffle: bool

    @classmethod
    def from_matrix(cls, matrix, seed: int) -> Sampling:
        """The policy of a MATRIX, with the RUN's seed (the MATRIX's own, else one drawn for the RUN)."""
        low = matrix.repetitions_min if matrix.repetitions_min is not None else matrix.repetitions
        return cls(low, matrix.repetitions, matrix.cv_target, matrix.rounds, seed,
                   matrix.rounds > 1 or matrix.seed is not None)

    def round_sizes(self) -> tuple[int, ...]:
        """Repetitions of each round's batch: min split as evenly as possible, at least 1 each."""
        base, extra = divmod(self.min, self.rounds)
        return tuple(max(1, base + (1 if r < extra else 0)) for r in range(self.rounds))

    def top_up_size(self, done: int) -> int:
        """Repetitions of the next top-up batch of a CELL that has ``done`` so far."""
        return max(0, min(math.ceil(self.min / self.rounds), self.max - done))

    def wants_more(self, gen_tps: list[float]) -> bool:
        """Whether a CELL with these decode rates gets another batch."""
        return (self.cv_target is not None and len(gen_tps) < self.max
                and not certainty.reached(gen_tps, self.cv_target))

    def order(self, cell_ids: list[str], round_number: int) -> list[str]:
        """The CELLs of a round (or top-up pass) in their seeded, shuffled order."""
        ordered = list(cell_ids)
        if self.shuffle:
            random.Random(f"{self.seed}/{round_number}").shuffle(ordered)
        return ordered

    def to_json(self) -> dict:
        return {"min": self.min, "max": self.max, "cv_target": self.cv_target, "rounds": self.rounds,
                "seed": self.seed, "shuffled": self.shuffle}


def gen_rates(record: dict) -> list[float]:
    """Decode rate of each timed repetition of an ok record: (generated - 1) / decode time (perplexity: scored
    ids per second)."""
    if record.get("status") != "ok" or not record.get("result"):
        return []
    if perplexity.is_perplexity(record["result"]):
        return perplexity.rates(record)
    return [(r["generated_tokens"] - 1) / r["decode_s"] for r in record["result"]["repetitions"] if r["decode_s"] > 0]


def combine(batches: list[tuple[dict, dict]], policy: Sampling, complete: bool) -> dict:
    """One CELL record from its batches' records (``(meta, record)`` in batch order; meta from rounds.py).

    An ok CELL: the repetitions of every batch in order (renumbered from 0), CPU seconds and
    wall time summed, peak memory the largest, the rest (provenance, load time, threads
    verdict) from the first batch and the log tail from the last. The engine's per-thread
    CPU seconds are concatenated, so their sum stays the CPU of every timed repetition.
    A batch that did not end ok ends the CELL: its record is the CELL's, with the batches so far.
    """
    failed = next((rec for _, rec in batches if rec["status"] != "ok"), None)
    out = copy.deepcopy(failed or batches[0][1])
    meta_rows, owner = [], []
    for meta, rec in batches:
        count = len(rec["result"]["repetitions"]) if rec["status"] == "ok" else 0
        meta_rows.append({**meta, "status": rec["status"], "repetitions": count, "first_repetition": len(owner),
                          "wall_s": rec["outside"]["wall_s"], "cpu_seconds": rec["outside"]["cpu_seconds"]})
        owner += [meta["batch"]] * count
    if failed is None:
        reps = [rep for _, rec in batches for rep in rec["result"]["repetitions"]]
        out["result"]["repetitions"] = [{**rep, "index": i} for i, rep in enumerate(reps)]
        out["cell"]["repetitions"] = len(reps)
        threads = out["result"].get("threads")
        if isinstance(threads, dict) and threads.get("per_thread") is not None:
            threads["per_thread"] = [t for _, rec in batches for t in rec["result"]["threads"]["per_thread"]]
        outside = out["outside"]
        walls = [rec["outside"]["wall_s"] for _, rec in batches]
        cpus = [rec["outside"]["cpu_seconds"] for _, rec in batches]
        peaks = [rec["outside"]["peak_memory_bytes"] for _, rec in batches]
        outside["wall_s"] = sum(walls) if None not in walls else None
        outside["cpu_seconds"] = sum(cpus) if None not in cpus else None
        outside["peak_memory_bytes"] = max(peaks) if None not in peaks else None
        for _, rec in batches:
            for key, why in rec["outside"]["unmeasured"].items():
                outside["unmeasured"].setdefault(key, why)
        out["log_tail"] = batches[-1][1].get("log_tail", "")
    rates = gen_rates(out)
    stopped = ("failed" if failed else "in progress" if not complete
               else "fixed repetitions" if policy.cv_target is None
               else "cv_target reached" if certainty.reached(rates, policy.cv_target) else "max reached")
    out["sampling"] = {
        "method": "orchestrator batches: each batch is one container (model load, warm-up, timed repetitions)",
        **policy.to_json(), "complete": complete, "stopped": stopped, "batches": meta_rows,
        "repetition_batch": owner, "noise_flags": sorted({f for m in meta_rows for f in m["noise"]["flags"]}),
        "frequency": _frequency([m["frequency"] for m in meta_rows]),
    }
    return out


def _frequency(per_batch: list[dict]) -> dict:
    """The CELL's frequency: the sample-weighted mean of its batches' measured ones, else the first batch's."""
    measured = [f for f in per_batch if f.get("samples")]
    if measured:
        samples = sum(f["samples"] for f in measured)
        ghz = sum(f["ghz"] * f["samples"] for f in measured) / samples
        return {"ghz": round(ghz, 4), "samples": samples,
                "source": f"sampled: mean of {samples} readings of {measured[0]['sampler']} over CPUs "
                          f"{','.join(map(str, measured[0]['cpus']))} during the CELL's batches"
                          + noise.CAVEAT.get(measured[0]["sampler"], "")}
    return dict(per_batch[0]) if per_batch else {"ghz": None, "source": None, "reason": "no batch ran"}


def columns(record: dict) -> dict:
    """The TABLE columns of a CELL record's sampling: target, whether reached, batches, noise (pure)."""
    sampling = record.get("sampling") or {}
    batches = sampling.get("batches", [])
    shares = {key: [b["noise"].get(key) for b in batches] for key in ("steal_share", "other_cpu_share")}
    out = {"cv_target": sampling.get("cv_target"), "sampling_stopped": sampling.get("stopped"),
           "batches": len(batches) or None, "rounds": sampling.get("rounds"),
           "noise_flags": ",".join(sampling.get("noise_flags", [])) or None,
           "swap_in_pages": sum(b["noise"]["swap_in_pages"] for b in batches)
           if batches and all(b["noise"].get("swap_in_pages") is not None for b in batches) else None}
    for key, values in shares.items():
        out[key] = max(values) if values and None not in values else None  # the worst batch
    return out
