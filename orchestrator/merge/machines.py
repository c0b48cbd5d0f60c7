"""Merge RUN folders from several MACHINEs (or SHARDs) into one TABLE keyed by machine (pure but for the reads).

A machine is its architecture and CPU model (and the CI runner labels), as each RUN's host
snapshot says. Every row keeps its own RUN's frequency and host facts; agreement is
recomputed over all the CELLs of one machine (a shard's reference CELL may have run in
another shard). A CELL whose model sha256 or IMAGE content differs between RUNs, or that ran
twice on one machine, is refused with the reason; RUNs measured with other settings are
refused unless asked for. report/mergereport.py writes the merged TABLE's files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from orchestrator.errors import ResultError, UsageError
from orchestrator.merge import agreement, frames
from orchestrator.results.reader import Record, as_records
from orchestrator.results.recordfiles import read_run
from orchestrator.results.rundata import Host
from orchestrator.results.runreader import RunDocument

# Metrics shown side by side, one column per machine, at the top of the merged page.
SIDE_BY_SIDE = {"gen_tps_median": "gen tok/s", "prompt_tps_median": "prompt tok/s", "ttft_ms_median": "TTFT ms",
                "peak_memory_mib_median": "cgroup peak MiB"}


CELL_COLUMNS = ["engine", "model", "format", "threads", "workload"]


@dataclass(frozen=True, eq=False)
class Source:
    """One RUN folder as read for a merge."""

    run_dir: Path
    run: Mapping
    records: tuple[Mapping, ...]

    @cached_property
    def view(self) -> RunDocument:
        return RunDocument.read(self.run)

    @cached_property
    def views(self) -> list[Record]:
        return as_records(self.records)

    @cached_property
    def host(self) -> Host:
        return Host.from_json(self.view.host)

    @cached_property
    def emulated_architecture(self) -> str | None:
        """The architecture a RUN's IMAGEs were built for when they ran under emulation here (None: native)."""
        found = {r.image_architecture or "unknown" for r in self.views if r.emulated}
        return next(iter(found)) if len(found) == 1 else ("several" if found else None)

    @property
    def machine(self) -> str:
        key = machine_key(self.view.host, self.view.ci.get("runner_labels"))
        emulated = self.emulated_architecture
        return f"{emulated} EMULATED on {key}" if emulated else key


@dataclass(frozen=True)
class Merged:
    """The merged TABLEs and what was left out, with the reason."""

    cells: pd.DataFrame
    repetitions: pd.DataFrame
    machines: dict[str, list[dict]]  # machine -> the facts of each of its RUNs
    refused: dict[str, str]  # cell id -> why it was not merged
    missing: tuple[str, ...]  # cells of the PLAN that no RUN recorded
    runs: tuple[dict, ...] = ()  # each merged RUN's run.json, for the environment of report.html
    mixed: tuple[str, ...] = ()  # settings that differ between the RUNs (merged only with --allow-mixed-settings)


def machine_key(host: dict, runner_labels: list[str] | None = None) -> str:
    """'<architecture> <CPU model>', e.g. 'x86_64 AMD EPYC 7763 64-Core Processor', then the runner labels in
    brackets where the CI job recorded them, e.g. 'aarch64 Neoverse-V1 [self-hosted, linux, arm64, graviton3]'."""
    key = f"{host.get('machine') or 'unknown-arch'} {(host.get('cpu') or {}).get('brand') or 'unknown CPU'}"
    return f"{key} [{', '.join(runner_labels)}]" if runner_labels else key


MAX_RUN_FOLDERS = 4096  # RUN folders found below the folders named (a shard each: 256 shards x 16 machines)


MAX_FOLDERS_WALKED = 100_000  # folders looked at while searching for them


def run_folders(paths: list[Path]) -> list[Path]:
    """RUN folders named, or found below the folders named (downloaded artifacts), in a stable order.

    The search never follows a link (a planted link cannot lead it out of the folders named) and
    looks at a bounded number of folders.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "run.json").is_file():
            found.append(path)
            continue
        below = _runs_below(path) if path.is_dir() else []
        if not below:
            raise ResultError(f"{path} is neither a RUN folder nor a folder holding RUN folders (no run.json)")
        found += below
    if len(found) > MAX_RUN_FOLDERS:
        raise ResultError(f"{len(found)} RUN folders found; a merge takes at most {MAX_RUN_FOLDERS}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if len(unique) < len(found):
        raise UsageError("the same RUN folder was named twice")
    return unique


def _runs_below(top: Path) -> list[Path]:
    found, walked = [], 0
    for folder, subfolders, files in os.walk(top, followlinks=False):
        walked += 1
        if walked > MAX_FOLDERS_WALKED:
            raise ResultError(f"{top}: more than {MAX_FOLDERS_WALKED} folders below it; name the RUN folders instead")
        if "run.json" in files:
            found.append(Path(folder))
            subfolders[:] = []  # a RUN folder's own folders hold no other RUN
        subfolders.sort()
    return sorted(found)


def load(paths: list[Path]) -> list[Source]:
    """Read and validate every RUN folder (the impure part of a merge)."""
    sources = []
    for run_dir in run_folders(paths):
        run, records = read_run(run_dir)
        sources.append(Source(run_dir, run, tuple(records)))
    return sources


def conflicts(sources: list[Source]) -> dict[str, str]:
    """CELLs that cannot be merged, with the reason (pure)."""
    seen: dict[str, list[tuple[Source, Record]]] = {}
    for source in sources:
        for record in source.views:
            seen.setdefault(record.cell_id, []).append((source, record))
    refused = {}
    for cell_id, found in seen.items():
        where = [f"RUN {s.view.run_id} ({s.machine})" for s, _ in found]
        reasons = []
        for what, value in (("model sha256", lambda r: r.model_sha256), ("IMAGE content (tag)", lambda r: r.image_tag)):
            values = [value(r) for _, r in found]
            if len(set(values)) > 1:
                reasons.append(f"{what} differs: " + ", ".join(f"{v} in {w}" for v, w in zip(values, where)))
        machines = [s.machine for s, _ in found]
        for machine in dict.fromkeys(m for m in machines if machines.count(m) > 1):
            runs = [s.view.run_id for s, _ in found if s.machine == machine]
            reasons.append(f"ran {len(runs)} times on {machine} (RUNs {', '.join(runs)})")
        if reasons:
            refused[cell_id] = "; ".join(reasons)
    return refused


# What a RUN measured with, besides its CELLs: RUNs that differ in any of these measured different things.
def settings_of(source: Source) -> dict[str, str]:
    """The measurement settings of a RUN, as text (pure): from its records and its sampling policy."""
    found: dict[str, set] = {"warm-up runs": set(), "repetitions": set(), "memory limit (bytes)": set(),
                             "timeout (s)": set()}
    sampling = source.view.sampling
    for record in source.views:
        found["warm-up runs"].add(record.cell.warmup)
        found["memory limit (bytes)"].add(record.memory_bytes)
        found["timeout (s)"].add(record.timeout_s)
        if not sampling:
            found["repetitions"].add(record.cell.repetitions)
    settings = {name: ", ".join(map(str, sorted(values))) for name, values in found.items() if values}
    for key, name in (("min", "repetitions (min)"), ("max", "repetitions (max)"), ("cv_target", "CV target"),
                      ("rounds", "rounds")):
        if key in sampling:
            settings[name] = str(sampling[key])
    return settings


def mixed_settings(sources: list[Source]) -> list[str]:
    """One line per setting whose value differs between the RUNs, naming each RUN's value (pure)."""
    each = [(s.view.run_id, settings_of(s)) for s in sources]
    lines = []
    for name in dict.fromkeys(k for _, found in each for k in found):
        values = {run_id: found.get(name, "not recorded") for run_id, found in each}
        if len(set(values.values())) > 1:
            lines.append(f"{name}: " + "; ".join(f"{v} in RUN {r}" for r, v in values.items()))
    return lines


def _run_facts(source: Source) -> dict:
    run, host = source.view, source.host
    shard = run.shard
    return {"machine": source.machine, "arch": host.machine, "cpu_model": host.cpu_brand,
            "run_id": run.run_id, "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "ci_runner": run.ci.get("runner_name"), "runner_labels": run.ci.get("runner_labels"),
            "host_fingerprint": host.fingerprint, "logical_cpus": host.logical_cpus, "kernel": host.kernel,
            "cgroup_version": run.host.get("cgroup_version"), "docker_version": host.docker_version,
            "frequency_ghz": host.frequency_ghz, "frequency_source": run.frequency.get("source"),
            "run_dir": str(source.run_dir)}


def combine(sources: list[Source], allow_mixed: bool = False, include_emulated: bool = False) -> Merged:
    """The merged TABLEs of several RUNs: one row per CELL and machine (pure).

    RUNs measured with different settings (warm-up, repetitions, memory limit, timeout, rounds) are refused
    unless ``allow_mixed``; then the differences are kept in the result and every row names its RUN's settings.
    """
    if not sources:
        raise UsageError("merge needs at least one RUN folder")
    emulated = [s for s in sources if s.emulated_architecture]
    if emulated and len(emulated) < len(sources) and not include_emulated:
        raise ResultError("RUN(s) " + ", ".join(s.view.run_id for s in emulated) + " ran under emulation (IMAGEs "
                          "built for another architecture than their host's): their speed is no architecture's "
                          "speed, so they are not merged with native RUNs; pass --include-emulated to merge them "
                          "anyway (they stay a machine of their own, marked EMULATED)")
    mixed = mixed_settings(sources)
    if mixed and not allow_mixed:
        raise ResultError("these RUNs measured with different settings, so their figures are not comparable:\n  "
                          + "\n  ".join(mixed) + "\nmerge RUNs of one MATRIX, or pass --allow-mixed-settings to merge "
                          "them anyway (the TABLE and report then say so)")
    run_ids = [s.view.run_id for s in sources]
    twice = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if twice:
        raise UsageError(f"RUN {', '.join(twice)} is in more than one folder: "
                         + ", ".join(str(s.run_dir) for s in sources if s.view.run_id in twice))
    refused = conflicts(sources)
    keep = {id(s): [r for r in s.views if r.cell_id not in refused] for s in sources}
    machines = sorted({s.machine for s in sources})
    agreed = {m: agreement.agreement([r for s in sources if s.machine == m for r in keep[id(s)]]) for m in machines}
    cell_frames, rep_frames = [], []
    for source in sources:
        records = keep[id(source)]
        if not records:
            continue
        facts = _run_facts(source)
        table = frames.cells(records, source.view.frequency)
        mine = agreed[source.machine]
        for column in [c for c in table.columns if c.startswith("agreement") or c == "token_ids_stable"]:
            table[column] = [mine.get(r.cell_id, {}).get(column) for r in records]
        labels = {k: facts[k] for k in ("machine", "arch", "cpu_model", "run_id", "shard", "ci_runner",
                                        "host_fingerprint", "logical_cpus")}
        if mixed:
            labels["run_settings"] = "; ".join(f"{k} {v}" for k, v in settings_of(source).items())
        cell_frames.append(table.assign(**labels))
        rep_frames.append(frames.repetitions(records).assign(machine=source.machine, run_id=source.view.run_id))
    order = _plan_order(sources)
    cells = _ordered(cell_frames, order, machines)
    reps = _ordered(rep_frames, order, machines, ["repetition"])
    recorded = {r.cell_id for s in sources for r in s.views}
    facts = {m: [_run_facts(s) for s in sources if s.machine == m] for m in machines}
    return Merged(cells, reps, facts, refused, tuple(c for c in order if c not in recorded),
                  tuple(s.run for s in sources), tuple(mixed))


def _plan_order(sources: list[Source]) -> list[str]:
    """Every CELL id of the RUNs' PLANs (each RUN keeps its whole PLAN), first seen first."""
    order: dict[str, None] = {}
    for source in sources:
        order.update(dict.fromkeys(source.view.expanded_cell_ids))
        order.update(dict.fromkeys(r.cell_id for r in source.views))
    return list(order)


def _ordered(frames: list[pd.DataFrame], order: list[str], machines: list[str], extra=()) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame()
    with warnings.catch_warnings():  # all-null columns (no CI runner, say) keep their object dtype: intended
        warnings.simplefilter("ignore", FutureWarning)
        frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "machine", frame.pop("machine"))
    rank = {c: i for i, c in enumerate(order)}
    frame["_cell"] = frame["cell_id"].map(rank)
    frame["_machine"] = frame["machine"].map({m: i for i, m in enumerate(machines)})
    frame = frame.sort_values(["_cell", "_machine", *extra], kind="stable")
    return frame.drop(columns=["_cell", "_machine"]).reset_index(drop=True)


def unmeasured(cells: pd.DataFrame) -> list[str]:
    """ok CELLs whose peak memory or CPU time was not read from their cgroup (the smoke check)."""
    if cells.empty:
        return []
    ok = cells[cells["status"] == "ok"]
    return [f"{r.machine}: {r.cell_id} {r.engine} {r.model}/{r.format} t{r.threads}: no "
            + " and no ".join(n for n, v in (("peak memory", r.peak_memory_mib_median), ("CPU time", r.cpu_seconds_median))
                              if v != v)
            for r in ok.itertuples() if r.peak_memory_mib_median != r.peak_memory_mib_median
            or r.cpu_seconds_median != r.cpu_seconds_median]


def side_by_side(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per CELL, one column per machine: the metric, or the status of a CELL that did not end ok."""
    shown = cells.assign(value=[f"{v:.4g}" if s == "ok" and v == v else (s if s != "ok" else "-")
                                for v, s in zip(cells[metric], cells["status"])])
    wide = shown.pivot(index="cell_id", columns="machine", values="value")
    keys = cells.drop_duplicates("cell_id").set_index("cell_id")[CELL_COLUMNS]
    wide = keys.join(wide).fillna("-")
    return wide.reset_index(drop=True)
