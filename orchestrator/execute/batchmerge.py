"""How the batches of a CELL merge into its one record (pure): repetitions in order, outside figures summed.

Each batch is one container (model load, warm-up, timed repetitions; rounds.py runs them);
its record is written like any CELL's. The CELL's record is made from them after every
batch, with ``sampling`` saying how the repetitions were gathered (sampling.py's policy).
"""

from __future__ import annotations

import copy

from orchestrator.execute.sampling import Sampling
from orchestrator.host import noise
from orchestrator.results.reader import Record
from orchestrator.stats import certainty


def combine(batches: list[tuple[dict, dict]], policy: Sampling, complete: bool) -> dict:
    """One CELL record from its batches' records (``(meta, record)`` in batch order; meta from rounds.py).

    An ok CELL: the repetitions of every batch in order (renumbered from 0), CPU seconds and
    wall time summed, peak memory the largest, the rest (provenance, load time, threads
    verdict) from the first batch and the log tail from the last. The engine's per-thread
    CPU seconds are concatenated, so their sum stays the CPU of every timed repetition.
    A batch that did not end ok ends the CELL: its record is the CELL's, with the batches so far.
    """
    views = [(meta, Record.read(rec)) for meta, rec in batches]
    failed = next((i for i, (_, rec) in enumerate(views) if not rec.ok), None)
    out = copy.deepcopy(batches[failed][1] if failed is not None else batches[0][1])
    meta_rows: list[dict] = []
    owner: list[int] = []
    for meta, rec in views:
        count = len(rec.ok_result.repetitions) if rec.ok_result is not None else 0
        meta_rows.append({**meta, "status": rec.status, "repetitions": count, "first_repetition": len(owner),
                          "wall_s": rec.outside.wall_s, "cpu_seconds": rec.outside.cpu_seconds})
        owner += [meta["batch"]] * count
    if failed is None:
        results = [rec.result for _, rec in views if rec.result is not None]  # every batch is ok here
        result = out["result"]
        result["repetitions"] = [{**rep.doc, "index": i}
                                 for i, rep in enumerate(r for batch in results for r in batch.repetitions)]
        out["cell"] = {**out["cell"], "repetitions": len(result["repetitions"])}
        if isinstance(result.get("threads"), dict) and result["threads"].get("per_thread") is not None:
            result["threads"] = {**result["threads"],
                                 "per_thread": [t for batch in results for t in batch.per_thread or ()]}
        walls = [rec.outside.wall_s for _, rec in views]
        cpus = [rec.outside.cpu_seconds for _, rec in views]
        peaks = [rec.outside.peak_memory_bytes for _, rec in views]
        unmeasured: dict = {}
        for _, rec in views:
            for key, why in rec.outside.unmeasured.items():
                unmeasured.setdefault(key, why)
        out["outside"] = {**out["outside"], "wall_s": sum(walls) if None not in walls else None,
                          "cpu_seconds": sum(cpus) if None not in cpus else None,
                          "peak_memory_bytes": max(p for p in peaks if p is not None) if None not in peaks else None,
                          "unmeasured": unmeasured}
        out["log_tail"] = views[-1][1].log_tail
    rates = Record.read(out).rates
    stopped = ("failed" if failed is not None else "in progress" if not complete
               else "fixed repetitions" if policy.cv_target is None
               else "cv_target reached" if certainty.reached(rates, policy.cv_target) else "max reached")
    out["sampling"] = {
        "method": "orchestrator batches: each batch is one container (model load, warm-up, timed repetitions)",
        **policy.to_json(), "complete": complete, "stopped": stopped, "batches": meta_rows,
        "repetition_batch": owner, "noise_flags": sorted({f for m in meta_rows for f in m["noise"].get("flags", [])}),
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
