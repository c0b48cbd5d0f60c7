"""The TABLE columns of how a CELL's repetitions were gathered: target, whether reached, batches, noise (pure)."""

from __future__ import annotations

from orchestrator.host import probes
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
    found = [b.probes for b in batches]
    out["probe_compute_gflops"] = probes.figure(found, "compute_gflops")  # the machine's own speed beside it
    out["probe_memory_gbs"] = probes.figure(found, "memory_gbs")
    return out


PROBES = {"compute_gflops": ("compute probe", "GFLOP/s"), "memory_gbs": ("memory probe", "GB/s")}


def machine_drift(records: list[Record]) -> list[str]:
    """One line per probe whose figures spread beyond probes.DRIFT_LIMIT over the RUN's batches (pure): the
    machine's own speed moved while the RUN ran, so CELLs run at different times met different machines."""
    lines = []
    for key, (name, unit) in PROBES.items():
        values = [side[key] for r in records for b in r.sampling.batches for side in b.probes.values()
                  if isinstance(side, dict) and isinstance(side.get(key), (int, float))]
        spread = probes.drift(values)
        if spread is not None and spread > probes.DRIFT_LIMIT:
            lines.append(f"the machine's {name} ranged from {min(values):.3g} to {max(values):.3g} {unit} over the "
                         f"RUN's batches ({spread:.0%} apart): the machine's own speed moved while the RUN ran")
    return lines
