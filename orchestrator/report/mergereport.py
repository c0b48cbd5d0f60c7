"""The files of a merged TABLE (`orchestrate merge`): merge.json, cells.*/repetitions.* and report.html, with
the machines side by side; and the terminal's one-line summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.files import writing
from orchestrator.merge import scaling, standings
from orchestrator.merge.machines import SIDE_BY_SIDE, Merged, side_by_side
from orchestrator.report import document, exporters, htmlreport, summaries, summarymd, views
from orchestrator.results.runreader import RunDocument


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
            + (f"host frequency {f['frequency_ghz']} GHz from {f['frequency_source']}" if f["frequency_ghz"]
               else "host frequency unknown")
            + f", cgroup v{f['cgroup_version']}, Docker {f['docker_version']}, fingerprint {f['host_fingerprint']})"
            for f in facts))
    lines += ["", "Each machine is an architecture and CPU model (and the runner labels its CI job asked for, in "
              "brackets); every row keeps its own RUN's host facts, and its per-GHz figures divide by its own "
              "frequency (`GHz`, `GHz from`: sampled on the CELL's CPUs while it ran where the host allows), not by "
              "the host frequency above. Agreement is computed within each machine.", ""]
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
                lines += [f"## {machine}", "", exporters.to_markdown(mine).rstrip("\n"), ""]
    if merged.refused:
        lines += ["## Cells refused (not merged)", ""]
        lines += [f"- `{cell_id}`: {reason}" for cell_id, reason in merged.refused.items()] + [""]
    if merged.missing:
        lines += ["## Cells of the PLAN that no RUN recorded", ""]
        lines += [f"- `{cell_id}`" for cell_id in merged.missing] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def summary_of(merged: Merged, baseline: str | None = None) -> standings.Summary:
    """The merge's summary: every machine's groups, against ``baseline`` or the first MATRIX's that names one."""
    return summaries.summarise(merged.cells, merged.repetitions, baseline,
                               [RunDocument.read(run).matrix_text for run in merged.runs])


def report_document(merged: Merged, summary: standings.Summary) -> str:
    """report.md of a merge: the same sections as a RUN's, per machine."""
    sizes: dict[str, int] = {}
    for run in merged.runs:
        sizes.update(htmlreport.parameters(run))
    title = f"Report of {sum(len(v) for v in merged.machines.values())} merged RUN(s) on {len(merged.machines)} machine(s)"
    return document.report(title, summary.rows, list(merged.runs), summary,
                           scaling.scalings(summary.rows, summary.samples, summary), sizes)


def write(merged: Merged, out: Path, baseline: str | None = None) -> dict[str, Path]:
    """Write frames.json, tables/cells.*, repetitions.* and summary.md (as for a single RUN), report.md and
    report.html under ``out``; ``baseline`` overrides the MATRIX's for the summary."""
    out = Path(out)
    summary = summary_of(merged, baseline)  # an unknown --baseline is refused before anything is written
    if os.path.lexists(out) and (out.is_symlink() or not out.is_dir()):
        raise UsageError(f"{out} exists and is not a folder; merge into a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; merge into a new folder")
    tables = writing.make_folder(out) / "tables"
    writing.write_json(out / "frames.json", {"schema_version": 1, "machines": merged.machines,
                                           "refused": merged.refused, "missing": list(merged.missing),
                                           "mixed_settings": list(merged.mixed)}, out)
    written = {"frames.json": out / "frames.json"}
    for name, frame in (("cells", merged.cells), ("repetitions", merged.repetitions)):
        for fmt, exporter in exporters.EXPORTERS.items():
            path = tables / f"{name}.{fmt}"
            writing.write_text(path, markdown_page(merged) if (name, fmt) == ("cells", "md") else exporter(frame), out)
            written[f"{name}.{fmt}"] = path
    title = f"Summary of {sum(len(v) for v in merged.machines.values())} merged RUN(s)"
    writing.write_text(tables / "summary.md", summarymd.markdown(summary, title), out)
    written["summary.md"] = tables / "summary.md"
    writing.write_text(out / "report.md", report_document(merged, summary), out)
    written["report.md"] = out / "report.md"
    writing.write_text(out / "report.html", views.merged_page(merged, summary), out)
    written["report.html"] = out / "report.html"
    return written


def summary(merged: Merged) -> str:
    """One line for the terminal."""
    counts = json.dumps({m: int((merged.cells["machine"] == m).sum()) if not merged.cells.empty else 0
                         for m in merged.machines})
    return (f"merged {sum(len(v) for v in merged.machines.values())} RUN(s): rows per machine {counts}; "
            f"{len(merged.refused)} cell(s) refused, {len(merged.missing)} not recorded")
