"""report.md's method section: the machine, pinning, repetitions, statistics and normalisation, each figure taken
from the RUN's run.json and TABLE (pure; no number in it is written by hand)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.merge import standings
from orchestrator.merge.standings import Summary
from orchestrator.results.rundata import Host
from orchestrator.results.runreader import RunDocument
from orchestrator.stats import describe
from orchestrator.stats import ratio as stat


def repetitions(row: Mapping[str, Any]) -> int:
    """A TABLE row's number of timed generation repetitions (0 for none, or for a perplexity CELL)."""
    value = row.get("gen_tps_n")
    return int(value) if isinstance(value, (int, float)) and value == value else 0


def _gib(size: int | None) -> str:
    return f"{size / 2**30:.1f} GiB" if size else "unknown"


def machine_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One bullet per RUN: its machine as run.json's host snapshot describes it."""
    lines = []
    for run in runs:
        view = RunDocument.read(run)
        host = Host.from_json(view.host)
        cpu = view.host.get("cpu") or {}
        frequency = (f"{host.frequency_ghz} GHz ({host.frequency_source})" if host.frequency_ghz
                     else f"unknown ({host.frequency_source})")
        lines.append(f"- RUN `{view.run_id}` ({view.status}, started {view.started_at}): {host.cpu_brand} "
                     f"(family {host.cpu_family}, model {host.cpu_model}, {host.machine}), {host.logical_cpus} logical "
                     f"CPUs, {cpu.get('physical_cores')} physical cores, {cpu.get('numa_nodes')} NUMA node(s); SMT "
                     f"active: {host.smt_active}; governor: {host.governor}; boost: {host.boost}; host frequency at "
                     f"the start: {frequency}; memory {_gib(host.memory_total_bytes)}; kernel {host.kernel}; Docker "
                     f"{host.docker_version}, cgroup v{host.cgroup_version} ({host.cgroup_driver}); host fingerprint "
                     f"`{host.fingerprint}`.")
    return lines


def pinning_lines(rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Which CPUs the CELLs of each thread count were pinned to, and the repetitions and rounds they ran."""
    placed: dict[int, Counter] = {}
    for row in rows:
        if row.get("status") == "ok":
            placed.setdefault(int(row.get("threads") or 0), Counter())[str(row.get("cpus"))] += 1
    lines = ["Each CELL ran in its own container, pinned to its own logical CPUs (one per thread, physical cores "
             "before SMT siblings); the CPUs of ok CELLs, by thread count:"]
    for threads, cpus in sorted(placed.items()):
        lines.append(f"- {threads} thread(s): " + "; ".join(f"CPUs {c} ({n} CELL(s))" for c, n in cpus.most_common()))
    counts = sorted(repetitions(r) for r in rows if r.get("status") == "ok" and repetitions(r) > 0)
    for run in runs:
        view = RunDocument.read(run)
        policy = view.sampling
        if policy:
            lines.append(f"- RUN `{view.run_id}`: {policy.get('rounds')} round(s) in a shuffled order (seed "
                         f"{policy.get('seed')}, {policy.get('seed_source')}), repetitions min {policy.get('min')}, max "
                         f"{policy.get('max')}, CV target {policy.get('cv_target') or 'none'}.")
    if counts:
        lines.append(f"- timed repetitions per ok generation CELL: {counts[0]} to {counts[-1]} (median "
                     f"{describe.median([float(c) for c in counts]):g}).")
    return lines


def statistics_lines(summary: Summary) -> list[str]:
    lines = ["- Each CELL's figure is the median over its timed repetitions; rates: prompt tokens / prefill time and "
             "(generated tokens - 1) / decode time.",
             f"- Against the baseline: {stat.METHOD}, at {stat.CONFIDENCE:.0%} confidence (the coverage is discrete; "
             "exact for small samples). The estimate shown, the interval shown and every word read this one "
             "statistic: faster/slower when the whole interval lies beyond the noise threshold, same within noise "
             "when it lies wholly inside it, the bare figure otherwise.",
             f"- ITL p50/p95/p99: per repetition, by {describe.PERCENTILE_METHOD}; then their median."]
    for machine, found in summary.thresholds.items():
        where = f" ({machine})" if machine else ""
        for metric, threshold in found.items():
            lines.append(f"- Noise threshold{where}, {standings.METRICS[metric][0]}: {stat.percent(threshold.value)}, "
                         f"{threshold.how}.")
    return lines


def normalisation_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per-core divisors and every frequency the per-GHz figures used, with its source and how many CELLs used it."""
    ok = [r for r in rows if r.get("status") == "ok" and repetitions(r) > 0]
    bases = Counter(str(r.get("per_core_basis")) for r in ok if r.get("per_core_basis") is not None)
    # Sampled sources differ only in how many readings each CELL got: counted together.
    sources = Counter((str(r.get("frequency_from")), r.get("frequency_ghz"),
                       re.sub(r"mean of \d+ readings", "mean of the readings", str(r.get("frequency_source"))))
                      for r in ok)
    lines = ["- Per core: gen tok/s divided by the threads the engine was seen to use where they differ from the "
             "threads requested, else by the threads requested: " +
             ("; ".join(f"{basis} for {n} CELL(s)" for basis, n in bases.most_common()) or "no ok CELL") + ".",
             "- Per GHz: each CELL divides by its own frequency; the frequencies used:"]
    for (kind, ghz, source), n in sources.most_common():
        shown = f"{ghz:g} GHz" if isinstance(ghz, (int, float)) and ghz == ghz else "no frequency"
        lines.append(f"  - {shown}, {kind}, for {n} CELL(s): {source}")
    return lines


def method(rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]], summary: Summary) -> list[str]:
    """The whole method section."""
    return (["## Method", "", "### Machine", "", *machine_lines(runs), "", "### Pinning and repetitions", "",
             *pinning_lines(rows, runs), "", "### Statistics", "", *statistics_lines(summary), "",
             "### Normalisation", "", *normalisation_lines(rows), ""])
