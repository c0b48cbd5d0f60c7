"""The TABLE columns of how a CELL's repetitions were gathered: target, whether reached, batches, noise (pure)."""

from __future__ import annotations

from orchestrator.results.reader import Record


def columns(record: Record) -> dict:
    """The sampling columns of a CELL's row; None where the record has no sampling (an older record)."""
    sampling = record.sampling
    batches = sampling.batches
    swaps = [b.noise.get("swap_in_pages") for b in batches]
    out = {"cv_target": sampling.cv_target, "sampling_stopped": sampling.stopped,
           "batches": len(batches) or None, "rounds": sampling.rounds,
           "noise_flags": ",".join(sampling.noise_flags) or None,
           "swap_in_pages": sum(s for s in swaps if s is not None) if swaps and None not in swaps else None}
    for key in ("steal_share", "other_cpu_share"):
        values = [b.noise.get(key) for b in batches]
        out[key] = max(v for v in values if v is not None) if values and None not in values else None  # the worst
    return out
