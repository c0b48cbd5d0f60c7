"""The machine's own speed, measured beside every BATCH: short probes of fixed work on the CELL's CPUs.

A cloud host's speed moves with its neighbours (shared caches and memory bandwidth) and its
clock, and a CELL's noise guards cannot see that: they look at the CELL's own cores. So before
and after each batch the orchestrator runs two probes in a process pinned to the CELL's CPUs,
one thread each: a compute-bound one (float64 matrix products that stay in cache) and one that
streams a working set of the model's size (capped) through the memory hierarchy. Their figures go
into batch.json and the record; compare says when they moved between two RUNs, and a RUN whose
probes drift is flagged in its report. The probe's own numbers are what was measured, never an
estimate: a probe that cannot run is recorded as null with the reason.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

PROBE_VERSION = 1
MATRIX_SIZE = 192  # 192 x 192 float64 matrices: 3 x 288 KiB, in a core's L2 on every CPU seen here
PRODUCTS = 40  # about 0.6 GFLOP a probe
MAX_WORKING_SET = 256 * 2**20  # the memory probe streams the model's size, at most this much
MIN_WORKING_SET = 16 * 2**20
PASSES = 3  # of each probe; the best pass is the figure (the least disturbed)
TIMEOUT_S = 60
DRIFT_LIMIT = 0.10  # probes of one RUN that differ by more than this: the machine's speed moved during it

# Runs in the pinned child: numpy with one BLAS thread; prints one JSON line.
_SCRIPT = """
import json, sys, time
import numpy as np
size, products, working, passes = (int(x) for x in sys.argv[1:5])
a = np.random.default_rng(1).random((size, size)); b = a.T.copy(); c = np.empty_like(a)
best = float("inf")
for _ in range(passes):
    t = time.perf_counter()
    for _ in range(products):
        np.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t)
gflops = 2 * size ** 3 * products / best / 1e9
data = np.ones(working // 8)
fastest = float("inf")
for _ in range(passes):
    t = time.perf_counter()
    data.sum()
    fastest = min(fastest, time.perf_counter() - t)
print(json.dumps({"compute_gflops": gflops, "memory_gbs": data.nbytes / fastest / 1e9}))
"""
_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def working_set(model_bytes: int | None) -> int:
    """The memory probe's working set: the model's size, within [MIN_WORKING_SET, MAX_WORKING_SET]."""
    return min(max(model_bytes or MIN_WORKING_SET, MIN_WORKING_SET), MAX_WORKING_SET)


def measure(cpus: tuple[int, ...], model_bytes: int | None) -> dict:
    """Both probes on ``cpus`` (one of them: the probes are single-threaded), as plain data for batch.json."""
    size = working_set(model_bytes)
    out = {"version": PROBE_VERSION, "cpu": cpus[0] if cpus else None, "working_set_bytes": size,
           "compute_gflops": None, "memory_gbs": None, "reason": None}
    pin = cpus[:1]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(MATRIX_SIZE), str(PRODUCTS), str(size), str(PASSES)],
            capture_output=True, text=True, timeout=TIMEOUT_S, env={**os.environ, **_ENV},
            preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None)
    except (OSError, subprocess.SubprocessError) as exc:
        return {**out, "reason": f"the probe did not run: {exc}"}
    if done.returncode != 0:
        return {**out, "reason": f"the probe ended with exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    try:
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {**out, "reason": "the probe printed no figures"}
    return {**out, **{k: float(figures[k]) for k in ("compute_gflops", "memory_gbs")}}


def figure(batches_probes: Sequence[Mapping], key: str) -> float | None:
    """The median of a probe's figure over a CELL's batches (before and after each), None when none ran."""
    values = sorted(p[key] for probes in batches_probes for side in ("before", "after")
                    if isinstance(p := (probes or {}).get(side), dict) and isinstance(p.get(key), (int, float)))
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def drift(values: Sequence[float | None]) -> float | None:
    """How far a RUN's probe figures spread: largest / smallest - 1 (None with fewer than two)."""
    found = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return max(found) / min(found) - 1 if len(found) >= 2 else None
