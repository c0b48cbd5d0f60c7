"""Write a RUN's TABLEs: exporters are pure DataFrame -> text functions, one per format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from orchestrator import merge
from orchestrator.results import read_run

# The per-CELL columns shown in the Markdown TABLE (CSV and JSON carry every column).
SUMMARY_COLUMNS = {
    "engine": "engine", "model": "model", "format": "format", "threads": "threads", "workload": "workload",
    "status": "status", "prompt_tps_median": "prompt tok/s", "gen_tps_median": "gen tok/s",
    "gen_tps_std": "gen sd", "gen_tps_n": "n", "ttft_ms_median": "TTFT ms", "itl_p50_ms_median": "ITL p50 ms",
    "itl_p95_ms_median": "ITL p95 ms", "itl_p99_ms_median": "ITL p99 ms", "peak_memory_mib_median": "cgroup peak MiB", "peak_rss_mib": "peak RSS MiB",
    "cpu_seconds_median": "CPU s", "gen_tps_per_core": "gen tok/s/core",
    "gen_tps_per_ghz_per_core": "gen tok/s/GHz/core", "cycles_per_token": "cycles/token",
}


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def to_json(frame: pd.DataFrame) -> str:
    records = json.loads(frame.to_json(orient="records", double_precision=6))
    return json.dumps(records, indent=2) + "\n"


def to_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no rows)\n"
    columns = [c for c in SUMMARY_COLUMNS if c in frame.columns] or list(frame.columns)
    shown = frame[columns].rename(columns=SUMMARY_COLUMNS).copy()
    if "test_double" in frame.columns:
        shown["engine"] = [f"{e} (TEST DOUBLE)" if t else e for e, t in zip(frame["engine"], frame["test_double"])]
    if "engine_options" in frame.columns and (frame["engine_options"] != "{}").any():
        shown.insert(1, "options", [o if o != "{}" else "" for o in frame["engine_options"]])
    if "agreement" in frame.columns:
        shown.insert(shown.columns.get_loc("status") + 1, "agree", [agree_text(r) for r in frame.itertuples()])
    shown = shown.astype(object).where(shown.notna(), None)  # empty cells print as '-', not 'nan'
    return shown.to_markdown(index=False, floatfmt=".4g", missingval="-") + "\n"


def agree_text(row) -> str:
    """'ref', '64/64', '12/64 DISAGREE' or '-' for one CELL row."""
    if row.agreement is None or row.agreement != row.agreement:
        return "-"
    if row.agreement == "reference":
        return "ref"
    if row.agreement_tokens is None or row.agreement_tokens != row.agreement_tokens:
        return row.agreement
    text = f"{int(row.agreement_tokens)}/{int(row.agreement_of)}"
    return f"{text} DISAGREE" if row.agreement == "DISAGREE" else text


EXPORTERS = {"csv": to_csv, "md": to_markdown, "json": to_json}


def markdown_page(run: dict, table: pd.DataFrame) -> str:
    """The Markdown TABLE with a header saying what, where and how it was measured."""
    host = run["host"]
    freq = host["frequency"]
    lines = [
        f"# RUN {run['run_id']}",
        "",
        f"- MATRIX: `{run['matrix']['path']}`; status: {run['status']}; started {run['started_at']}",
        f"- host: {host.get('cpu', {}).get('brand')} ({host.get('cpu', {}).get('logical_cpus')} logical CPUs), "
        f"fingerprint {host['fingerprint']}, Docker {host['docker'].get('version')}, cgroup v{host['cgroup_version']}",
        f"- frequency for per-GHz figures: " + (f"{freq['ghz']} GHz ({freq['source']})" if freq.get("ghz")
                                               else f"unknown ({freq.get('reason')}): per-GHz columns are empty"),
        "- rates: prompt tok/s = prompt tokens / prefill time; gen tok/s = (generated - 1) / decode time; "
        "medians over repetitions; peak MiB and CPU s are read from the cell's cgroup outside the container",
        "",
        to_markdown(table),
    ]
    failed = table[table["status"] != "ok"] if not table.empty else table
    if not failed.empty:
        lines += ["## Cells that did not finish ok", ""]
        lines += [f"- `{r.cell_id}` {r.engine} {r.model}/{r.format} t{r.threads}: **{r.status}**: {r.reason}"
                  for r in failed.itertuples()]
        lines.append("")
    if not table.empty and "agreement" in table.columns:
        lines += ["Agreement (`agree`): greedy token ids compared with the reference CELL (`ref`, the first llama.cpp "
                  "F32 CELL of the same model and workload); quantized formats with their F32 parent. F32 engines "
                  "must agree on the first 32 tokens.", ""]
        disagree = table[table["agreement"] == "DISAGREE"]
        if not disagree.empty:
            lines += ["## Cells that disagree with their reference", ""]
            lines += [f"- `{r.cell_id}` {r.engine} {r.model}/{r.format} t{r.threads}: {int(r.agreement_tokens)} of "
                      f"{int(r.agreement_of)} tokens agree with `{r.agreement_reference}`" for r in disagree.itertuples()]
            lines.append("")
    notes = table[table["test_double"]] if not table.empty else table
    if not notes.empty:
        lines += ["Rows marked TEST DOUBLE come from the pipeline-test engine: they measure no inference engine.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write(run_dir: Path) -> dict[str, Path]:
    """(Re)generate every TABLE of a RUN from its stored, validated records."""
    run, records = read_run(run_dir)
    table = merge.cells(records, run["host"]["frequency"])
    reps = merge.repetitions(records)
    out = Path(run_dir) / "tables"
    out.mkdir(exist_ok=True)
    written = {}
    for name, frame in (("cells", table), ("repetitions", reps)):
        for fmt, exporter in EXPORTERS.items():
            path = out / f"{name}.{fmt}"
            text = markdown_page(run, frame) if (name, fmt) == ("cells", "md") else exporter(frame)
            path.write_text(text)
            written[f"{name}.{fmt}"] = path
    return written
