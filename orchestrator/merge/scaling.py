"""Thread scaling as one statistic: each engine x format's decode rate at its most threads against its fewest (pure).

The same Hodges-Lehmann ratio and interval as every other claim (merge/baseline.py), read
against the noise threshold of its machine; the efficiency is the estimate over the ratio of
thread counts (1.0: twice the threads, twice the rate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.merge import baseline as yardstick
from orchestrator.merge.standings import Samples, Summary
from orchestrator.stats import threshold as noise_threshold


@dataclass(frozen=True)
class Scaling:
    """One engine x format x model x workload (x machine) at its fewest and most threads."""

    fewest: Mapping[str, Any]  # the TABLE rows
    most: Mapping[str, Any]
    versus: yardstick.Versus

    @property
    def efficiency(self) -> float:
        return self.versus.factor[0] / (int(self.most.get("threads") or 1) / int(self.fewest.get("threads") or 1))

    @property
    def label(self) -> str:
        machine = f" @ {self.fewest.get('machine')}" if self.fewest.get("machine") else ""
        return (f"{self.fewest.get('engine')} {self.fewest.get('format')} {self.fewest.get('model')} "
                f"{self.fewest.get('workload')}{machine}")


def scalings(rows: Sequence[Mapping[str, Any]], found: Samples, summary: Summary) -> list[Scaling]:
    """Every engine x format x model x workload with ok generation CELLs at two or more thread counts."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (row.get("machine"), row.get("cell_id"))
        if row.get("status") == "ok" and found.get(key, {}).get("gen_tps"):
            groups.setdefault((row.get("machine"), row.get("engine"), row.get("engine_options"), row.get("model"),
                               row.get("format"), row.get("workload")), []).append(row)
    out = []
    for (machine, *_), members in groups.items():
        if len({r.get("threads") for r in members}) < 2:
            continue
        fewest = min(members, key=lambda r: int(r.get("threads") or 0))
        most = max(members, key=lambda r: int(r.get("threads") or 0))
        limit = summary.thresholds.get(machine, {}).get("gen_tps")
        versus = yardstick.versus([v for _, v in found[(machine, most.get("cell_id"))]["gen_tps"]],
                                  [v for _, v in found[(machine, fewest.get("cell_id"))]["gen_tps"]],
                                  limit.value if limit else noise_threshold.FIXED, True)
        if versus is not None:
            out.append(Scaling(fewest, most, versus))
    return out
