"""Merge RUN folders from several machines (or shards) into one TABLE keyed by machine.

A machine is its architecture and CPU model, as each RUN's host snapshot says, and the runner
labels its CI job asked for where run.json records them (two label sets on one CPU model, say
SMT on and off, stay two machines). Every
row keeps its own RUN's frequency and host facts; agreement is recomputed over all the
CELLs of one machine (a shard's reference CELL may have run in another shard). A CELL
whose model sha256 or IMAGE content (the content-hash tag) differs between RUNs, or that
ran twice on one machine, is refused with the reason instead of being merged. The
per-RUN statistics come from merge.py and the exporters from report.py, unchanged.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from orchestrator import merge, report
from orchestrator.errors import ResultError, UsageError
from orchestrator.results import read_run
from orchestrator.files import writing

# Metrics shown side by side, one column per machine, at the top of the merged page.
SIDE_BY_SIDE = {"gen_tps_median": "gen tok/s", "prompt_tps_median": "prompt tok/s", "ttft_ms_median": "TTFT ms",
                "peak_memory_mib_median": "cgroup peak MiB"}
CELL_COLUMNS = ["engine", "model", "format", "threads", "workload"]


@dataclass(frozen=True)
class Source:
    """One RUN folder as read for a merge."""

    run_dir: Path
    run: dict
    records: tuple[dict, ...]

    @property
    def machine(self) -> str:
        return machine_key(self.run["host"], (self.run.get("ci") or {}).get("runner_labels"))


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
    seen: dict[str, list[tuple[Source, dict]]] = {}
    for source in sources:
        for record in source.records:
            seen.setdefault(record["cell_id"], []).append((source, record))
    refused = {}
    for cell_id, found in seen.items():
        where = [f"RUN {s.run['run_id']} ({s.machine})" for s, _ in found]
        reasons = []
        for what, value in (("model sha256", lambda r: r["provenance"]["model"]["sha256"]),
                            ("IMAGE content (tag)", lambda r: r["provenance"]["image"]["tag"])):
            values = [value(r) for _, r in found]
            if len(set(values)) > 1:
                reasons.append(f"{what} differs: " + ", ".join(f"{v} in {w}" for v, w in zip(values, where)))
        machines = [s.machine for s, _ in found]
        for machine in dict.fromkeys(m for m in machines if machines.count(m) > 1):
            runs = [s.run["run_id"] for s, _ in found if s.machine == machine]
            reasons.append(f"ran {len(runs)} times on {machine} (RUNs {', '.join(runs)})")
        if reasons:
            refused[cell_id] = "; ".join(reasons)
    return refused


# What a RUN measured with, besides its CELLs: RUNs that differ in any of these measured different things.
def settings_of(source: Source) -> dict[str, str]:
    """The measurement settings of a RUN, as text (pure): from its records and its sampling policy."""
    found: dict[str, set] = {"warm-up runs": set(), "repetitions": set(), "memory limit (bytes)": set(),
                             "timeout (s)": set()}
    for record in source.records:
        found["warm-up runs"].add(record["cell"]["warmup"])
        found["memory limit (bytes)"].add(record["limits"]["memory_bytes"])
        found["timeout (s)"].add(record["limits"]["timeout_s"])
        if not source.run.get("sampling"):
            found["repetitions"].add(record["cell"]["repetitions"])
    settings = {name: ", ".join(map(str, sorted(values))) for name, values in found.items() if values}
    sampling = source.run.get("sampling") or {}
    for key, name in (("min", "repetitions (min)"), ("max", "repetitions (max)"), ("cv_target", "CV target"),
                      ("rounds", "rounds")):
        if key in sampling:
            settings[name] = str(sampling[key])
    return settings


def mixed_settings(sources: list[Source]) -> list[str]:
    """One line per setting whose value differs between the RUNs, naming each RUN's value (pure)."""
    each = [(s.run["run_id"], settings_of(s)) for s in sources]
    lines = []
    for name in dict.fromkeys(k for _, found in each for k in found):
        values = {run_id: found.get(name, "not recorded") for run_id, found in each}
        if len(set(values.values())) > 1:
            lines.append(f"{name}: " + "; ".join(f"{v} in RUN {r}" for r, v in values.items()))
    return lines


def _run_facts(source: Source) -> dict:
    run, host = source.run, source.run["host"]
    shard, ci = run.get("shard"), run.get("ci") or {}
    return {"machine": source.machine, "arch": host.get("machine"), "cpu_model": (host.get("cpu") or {}).get("brand"),
            "run_id": run["run_id"], "shard": f"{shard['index']}/{shard['count']}" if shard else None,
            "ci_runner": ci.get("runner_name"), "runner_labels": ci.get("runner_labels"),
            "host_fingerprint": host["fingerprint"],
            "logical_cpus": (host.get("cpu") or {}).get("logical_cpus"), "kernel": host.get("kernel"),
            "cgroup_version": host.get("cgroup_version"), "docker_version": (host.get("docker") or {}).get("version"),
            "frequency_ghz": host["frequency"].get("ghz"), "frequency_source": host["frequency"].get("source"),
            "run_dir": str(source.run_dir)}


def combine(sources: list[Source], allow_mixed: bool = False) -> Merged:
    """The merged TABLEs of several RUNs: one row per CELL and machine (pure).

    RUNs measured with different settings (warm-up, repetitions, memory limit, timeout, rounds) are refused
    unless ``allow_mixed``; then the differences are kept in the result and every row names its RUN's settings.
    """
    if not sources:
        raise UsageError("merge needs at least one RUN folder")
    mixed = mixed_settings(sources)
    if mixed and not allow_mixed:
        raise ResultError("these RUNs measured with different settings, so their figures are not comparable:\n  "
                          + "\n  ".join(mixed) + "\nmerge RUNs of one MATRIX, or pass --allow-mixed-settings to merge "
                          "them anyway (the TABLE and report then say so)")
    run_ids = [s.run["run_id"] for s in sources]
    twice = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if twice:
        raise UsageError(f"RUN {', '.join(twice)} is in more than one folder: "
                         + ", ".join(str(s.run_dir) for s in sources if s.run["run_id"] in twice))
    refused = conflicts(sources)
    keep = {id(s): [r for r in s.records if r["cell_id"] not in refused] for s in sources}
    machines = sorted({s.machine for s in sources})
    agreement = {m: merge.agreement([r for s in sources if s.machine == m for r in keep[id(s)]]) for m in machines}
    cell_frames, rep_frames = [], []
    for source in sources:
        records = keep[id(source)]
        if not records:
            continue
        facts = _run_facts(source)
        table = merge.cells(records, source.run["host"]["frequency"])
        mine = agreement[source.machine]
        for column in [c for c in table.columns if c.startswith("agreement") or c == "token_ids_stable"]:
            table[column] = [mine.get(r["cell_id"], {}).get(column) for r in records]
        labels = {k: facts[k] for k in ("machine", "arch", "cpu_model", "run_id", "shard", "ci_runner",
                                        "host_fingerprint", "logical_cpus")}
        if mixed:
            labels["run_settings"] = "; ".join(f"{k} {v}" for k, v in settings_of(source).items())
        cell_frames.append(table.assign(**labels))
        rep_frames.append(merge.repetitions(records).assign(machine=source.machine, run_id=source.run["run_id"]))
    order = _plan_order(sources)
    cells = _ordered(cell_frames, order, machines)
    reps = _ordered(rep_frames, order, machines, ["repetition"])
    recorded = {r["cell_id"] for s in sources for r in s.records}
    facts = {m: [_run_facts(s) for s in sources if s.machine == m] for m in machines}
    return Merged(cells, reps, facts, refused, tuple(c for c in order if c not in recorded),
                  tuple(s.run for s in sources), tuple(mixed))


def _plan_order(sources: list[Source]) -> list[str]:
    """Every CELL id of the RUNs' PLANs (each RUN keeps its whole PLAN), first seen first."""
    order: dict[str, None] = {}
    for source in sources:
        order.update(dict.fromkeys(c["cell_id"] for c in source.run["matrix"]["expanded"]))
        order.update(dict.fromkeys(r["cell_id"] for r in source.records))
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


def markdown_page(merged: Merged) -> str:
    """The merged TABLE page: machines, then metrics side by side, then each machine's full TABLE."""
    cells = merged.cells
    runs = sum(len(v) for v in merged.machines.values())
    lines = [f"# Merged TABLE: {runs} RUN(s) on {len(merged.machines)} machine(s)", ""]
    for machine, facts in merged.machines.items():
        lines.append(f"- **{machine}**: " + "; ".join(
            f"RUN {f['run_id']}" + (f" shard {f['shard']}" if f["shard"] else "")
            + (f" on runner {f['ci_runner']}" if f["ci_runner"] else "")
            + f" ({f['logical_cpus']} logical CPUs, "
            + (f"{f['frequency_ghz']} GHz from {f['frequency_source']}" if f["frequency_ghz"] else "frequency unknown")
            + f", cgroup v{f['cgroup_version']}, Docker {f['docker_version']}, fingerprint {f['host_fingerprint']})"
            for f in facts))
    lines += ["", "Each machine is an architecture and CPU model (and the runner labels its CI job asked for, in "
              "brackets); every row keeps its own RUN's frequency and host facts. Agreement is computed within each "
              "machine.", ""]
    if merged.mixed:
        lines += ["## Warning: the RUNs measured with different settings (merged with --allow-mixed-settings)", "",
                  *[f"- {line}" for line in merged.mixed],
                  "", "Each row's `run_settings` (CSV and JSON) names its RUN's settings; compare rows with care.", ""]
    if not cells.empty:
        for metric, title in SIDE_BY_SIDE.items():
            lines += [f"## {title} (median), machines side by side", "",
                      side_by_side(cells, metric).to_markdown(index=False, disable_numparse=True), ""]
        for machine in merged.machines:
            mine = cells[cells["machine"] == machine].reset_index(drop=True)
            if not mine.empty:
                lines += [f"## {machine}", "", report.to_markdown(mine).rstrip("\n"), ""]
    if merged.refused:
        lines += ["## Cells refused (not merged)", ""]
        lines += [f"- `{cell_id}`: {reason}" for cell_id, reason in merged.refused.items()] + [""]
    if merged.missing:
        lines += ["## Cells of the PLAN that no RUN recorded", ""]
        lines += [f"- `{cell_id}`" for cell_id in merged.missing] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write(merged: Merged, out: Path) -> dict[str, Path]:
    """Write merge.json, tables/cells.* and repetitions.* (as for a single RUN) and report.html under ``out``."""
    from orchestrator import htmlviews

    out = Path(out)
    if os.path.lexists(out) and (out.is_symlink() or not out.is_dir()):
        raise UsageError(f"{out} exists and is not a folder; merge into a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; merge into a new folder")
    tables = writing.make_folder(out) / "tables"
    writing.write_json(out / "merge.json", {"schema_version": 1, "machines": merged.machines,
                                           "refused": merged.refused, "missing": list(merged.missing),
                                           "mixed_settings": list(merged.mixed)}, out)
    written = {"merge.json": out / "merge.json"}
    for name, frame in (("cells", merged.cells), ("repetitions", merged.repetitions)):
        for fmt, exporter in report.EXPORTERS.items():
            path = tables / f"{name}.{fmt}"
            writing.write_text(path, markdown_page(merged) if (name, fmt) == ("cells", "md") else exporter(frame), out)
            written[f"{name}.{fmt}"] = path
    writing.write_text(out / "report.html", htmlviews.merged_page(merged), out)
    written["report.html"] = out / "report.html"
    return written


def summary(merged: Merged) -> str:
    """One line for the terminal."""
    counts = json.dumps({m: int((merged.cells["machine"] == m).sum()) if not merged.cells.empty else 0
                         for m in merged.machines})
    return (f"merged {sum(len(v) for v in merged.machines.values())} RUN(s): rows per machine {counts}; "
            f"{len(merged.refused)} cell(s) refused, {len(merged.missing)} not recorded")
