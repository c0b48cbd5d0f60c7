"""The report of a comparison (compare.py): the verdict table, the environments side by side; md, CSV, JSON.

Pure functions from typed RUNs and CellComparisons to text.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

from orchestrator.compare.ratios import (
    METRICS,
    SAME,
    CellComparison,
    Thresholds,
    cpu_path,
)
from orchestrator.files import terminal
from orchestrator.results.rundata import Run
from orchestrator.stats import describe
from orchestrator.stats import ratio as stat

MARKS = {SAME: "="}  # how a metric's verdict shows in the Markdown table (others: as they are)
CONTENDED = 0.8  # a median CPU share below this means other work ran on the CELLs' cores


def cpu_share(run: Run) -> float | None:
    """Median over ok CELLs of their CPU share (rundata.CellRun.cpu_share): how much of its CPUs a CELL got."""
    shares = sorted(c.cpu_share for c in run.cells.values() if c.status == "ok" and c.cpu_share is not None)
    return describe.median(shares) if shares else None


def warnings(a: Run, b: Run) -> list[str]:
    """What makes the verdicts less telling than they look: CELLs that did not get their CPUs."""
    found = []
    for side, run in (("A", a), ("B", b)):
        share = cpu_share(run)
        if share is not None and share < CONTENDED:
            found.append(f"{side}'s CELLs got a median {share:.0%} of their CPUs while timed (engine threads' CPU "
                         "time / timed time / threads): other work ran on those cores, and the speed shows that as "
                         "much as the engine's")
    return found


def environment(a: Run, b: Run) -> list[tuple[str, str, str]]:
    """Side by side: (what, A, B) for the host, Docker, IMAGEs, engine versions and CPU code paths."""
    ha, hb = a.info.host, b.info.host

    def ghz(host):
        return f"{host.frequency_ghz:g} GHz ({host.frequency_source})" if host.frequency_ghz else \
            f"unknown ({host.frequency_source})"

    share = [f"{x:.0%}" if x is not None else None for x in (cpu_share(a), cpu_share(b))]
    rows = [("RUN", a.info.run_id, b.info.run_id), ("git commit", _commit(a), _commit(b)),
            ("CELL CPU share (median)", *share),
            ("CPU model", ha.cpu_brand, hb.cpu_brand), ("architecture", ha.machine, hb.machine),
            ("CPU family/model", f"{ha.cpu_family}/{ha.cpu_model}", f"{hb.cpu_family}/{hb.cpu_model}"),
            ("logical CPUs", ha.logical_cpus, hb.logical_cpus), ("frequency", ghz(ha), ghz(hb)),
            ("SMT active", ha.smt_active, hb.smt_active), ("governor", ha.governor, hb.governor),
            ("boost", ha.boost, hb.boost), ("kernel", ha.kernel, hb.kernel),
            ("memory", _gib(ha.memory_total_bytes), _gib(hb.memory_total_bytes)),
            ("Docker", ha.docker_version, hb.docker_version),
            ("cgroup", f"v{ha.cgroup_version} {ha.cgroup_driver}", f"v{hb.cgroup_version} {hb.cgroup_driver}"),
            ("storage driver", ha.storage_driver, hb.storage_driver), ("host fingerprint", ha.fingerprint, hb.fingerprint)]
    for engine in dict.fromkeys([*a.info.images, *b.info.images]):
        ia, ib = a.info.images.get(engine), b.info.images.get(engine)
        rows += [(f"{engine} image tag", ia and ia.tag, ib and ib.tag),
                 (f"{engine} image id", ia and ia.id[:19], ib and ib.id[:19]),
                 (f"{engine} base image", ia and f"{ia.base} ({(ia.base_id or '')[:19]})",
                  ib and f"{ib.base} ({(ib.base_id or '')[:19]})"),
                 (f"{engine} version", _first(a, engine, lambda c: c.engine_version),
                  _first(b, engine, lambda c: c.engine_version)),
                 (f"{engine} CPU code path", _first(a, engine, cpu_path), _first(b, engine, cpu_path))]
    return [(what, "" if x is None else str(x), "" if y is None else str(y)) for what, x, y in rows]


def _gib(size: int | None) -> str | None:
    return f"{size / 2**30:.1f} GiB" if size else None


def _commit(run: Run) -> str:
    commit = run.info.git_commit
    return "unknown" if not commit else commit[:12] + (" (dirty)" if run.info.git_dirty else "")


def _first(run: Run, engine: str, get):
    values = {get(c) for c in run.cells.values() if c.engine == engine and c.status == "ok"} - {None}
    return ", ".join(sorted(map(str, values))) if values else None


def rows(compared: tuple[CellComparison, ...]) -> list[dict]:
    """One row per CELL and metric (a CELL that is not comparable: one row with its reasons), for CSV/JSON."""
    out = []
    for cell in compared:
        machine = dict(cell.machine)
        base = {"key": cell.key if cell.key.startswith("c-") else None, "cell": cell.label, "cell_a": cell.cell_a,
                "cell_b": cell.cell_b, "cell_verdict": cell.verdict, "reasons": "; ".join(cell.reasons) or None}
        probes = {"machine_compute_probe_ratio": machine.get("compute"),
                  "machine_memory_probe_ratio": machine.get("memory"),
                  "machine_moved": ", ".join(name for name, _ in cell.machine_moved) or None}
        if not cell.metrics:
            out.append({**base, "metric": None, **probes})
        for m in cell.metrics:
            out.append({**base, "metric": m.metric, "median_a": _num(m.median_a), "median_b": _num(m.median_b),
                        "n_a": m.n_a, "n_b": m.n_b, "ratio": _num(m.ratio),
                        "ci_low": m.interval.low if m.interval else None,
                        "ci_high": m.interval.high if m.interval else None,
                        "ci_coverage": m.interval.coverage if m.interval else None,
                        "noise_threshold": m.threshold.value, "threshold_how": m.threshold.how,
                        "verdict": m.verdict, "why": m.why, **probes})
    return out


def _num(value: float) -> float | None:
    return None if value != value else value


def method(noise: Thresholds) -> str:
    """What every ratio, interval, verdict and --fail-on of a comparison reads, and the thresholds used."""
    return (f"{stat.METHOD}; the estimate, the interval, the verdict and --fail-on all read this one statistic. "
            "Faster/slower when the whole interval lies beyond the noise threshold (above 1 + t or below 1 - t); "
            f"thresholds: {noise.describe()}")


def to_json(a: Run, b: Run, compared: tuple[CellComparison, ...], noise: Thresholds) -> str:
    return json.dumps({"a": a.source, "b": b.source, "method": method(noise),
                       "noise": {metric: {"threshold": t.value, "how": t.how} for metric, t in noise.by_metric.items()},
                       "warnings": warnings(a, b),
                       "environment": [{"what": w, "a": x, "b": y} for w, x, y in environment(a, b)],
                       "cells": rows(compared)}, indent=2, allow_nan=False) + "\n"


def to_csv(compared: tuple[CellComparison, ...]) -> str:
    found = rows(compared)
    columns = list(dict.fromkeys(k for row in found for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: terminal.cell(v) if isinstance(v, str) else v for k, v in row.items()} for row in found)
    return buffer.getvalue()


def to_markdown(a: Run, b: Run, compared: tuple[CellComparison, ...], noise: Thresholds) -> str:
    """The verdict table (ratio B/A [interval] per metric) and the environment side by side."""
    lines = [f"A: `{a.source}` (RUN {a.info.run_id})  ", f"B: `{b.source}` (RUN {b.info.run_id})", "",
             "B/A: the Hodges-Lehmann estimate with its Mann-Whitney interval (the estimate, the interval, the "
             "verdict and --fail-on read this one statistic; medians are in the CSV and JSON); faster/slower when "
             "the whole interval lies beyond the noise threshold.  ",
             f"Noise thresholds: {noise.describe()}.", "",
             "| CELL | " + " | ".join(label for label, _ in METRICS.values()) + " | verdict |",
             "| --- | " + " | ".join("---" for _ in METRICS) + " | --- |"]
    for cell in compared:
        shown = {m.metric: f"{m.ratio:.3f} [{m.interval.low:.3f}, {m.interval.high:.3f}] {MARKS.get(m.verdict, m.verdict)}"
                 if m.interval else "-" for m in cell.metrics}
        ids = cell.cell_a if cell.cell_a == cell.cell_b else f"{cell.cell_a or '-'} / {cell.cell_b or '-'}"
        lines.append(f"| {cell.label} `{ids}` | " + " | ".join(shown.get(k, "") for k in METRICS) +
                     f" | {cell.verdict_text} |")
    counts = Counter(cell.verdict for cell in compared)
    lines += ["", "CELLs: " + ", ".join(f"{n} {v}" for v, n in counts.items())]
    lines += [f"\nwarning: {w}" for w in warnings(a, b)]
    lines += ["",
              "| environment | A | B | |", "| --- | --- | --- | --- |"]
    lines += [f"| {w} | {x} | {y} | {'' if x == y else 'differs'} |" for w, x, y in environment(a, b)]
    return "\n".join(lines) + "\n"


EXPORTERS = {"md": to_markdown, "csv": lambda a, b, c, n: to_csv(c), "json": to_json}
