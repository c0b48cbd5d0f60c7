"""Spread CPU-bound work of the report over this process's CPUs (forked workers), in order.

Used where one RUN holds thousands of records (merged shards, long RUNs): reading and
checking records and writing the exports are independent per chunk and per file. Small
jobs, machines with one CPU, and platforms without ``fork`` run in this process, with
the same results: the output never depends on how many workers ran.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence

MIN_ITEMS = 500  # below this the work takes well under a second: not worth starting processes
MAX_WORKERS = 8


def workers(items: int) -> int:
    """How many processes to use for ``items`` independent pieces of work."""
    if items < MIN_ITEMS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_WORKERS))


def chunks(items: Sequence, count: int) -> list[Sequence]:
    """``items`` cut into ``count`` contiguous, nearly equal, non-empty pieces (in order)."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def run(function: Callable, tasks: Sequence, processes: int) -> list:
    """``[function(task) for task in tasks]``, computed by ``processes`` forked workers when > 1.

    Workers are forked, so ``function`` sees this process's memory as it was (nothing is
    pickled on the way in); only the return values travel back. An exception in a worker
    is raised here.
    """
    if processes <= 1 or len(tasks) <= 1:
        return [function(task) for task in tasks]
    with multiprocessing.get_context("fork").Pool(min(processes, len(tasks))) as pool:
        return pool.map(function, tasks, chunksize=1)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while millions of long-lived objects are made.

    Parsing 10,000 records makes millions of dicts and lists that all stay alive; the
    collector would walk them again and again (measured: a third of the time of reading
    a RUN). Nothing made here forms cycles, so reference counting frees what is dropped.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
