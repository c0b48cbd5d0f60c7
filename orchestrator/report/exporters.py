"""The TABLE's exporters: pure DataFrame -> text functions, one per format (CSV, Markdown, JSON), and the Markdown
page of a RUN; light to import (pandas only for types), so the command line names the formats from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.host import noise
from orchestrator.merge.scores import MAX_RELATIVE
from orchestrator.report import csvtext, quality
from orchestrator.report.mdtable import pipe_table
from orchestrator.results.runreader import RunDocument
from orchestrator.stats import certainty, describe

if TYPE_CHECKING:
    import pandas as pd


# The per-CELL columns shown in the Markdown TABLE (CSV and JSON carry every column).
SUMMARY_COLUMNS = {
    "engine": "engine", "model": "model", "format": "format", "threads": "threads", "workload": "workload",
    "status": "status", "prompt_tps_median": "prompt tok/s", "gen_tps_median": "gen tok/s",
    "gen_tps_std": "gen sd", "gen_tps_n": "n", "gen_tps_cv": "gen CV", "gen_tps_ci_low": "gen CI low",
    "gen_tps_ci_high": "gen CI high", "noise_flags": "noise", "ttft_ms_median": "TTFT ms", "itl_p50_ms_median": "ITL p50 ms",
    "itl_p95_ms_median": "ITL p95 ms", "itl_p99_ms_median": "ITL p99 ms", "peak_memory_mib_median": "cgroup peak MiB",
    "peak_rss_mib": "peak RSS MiB",
    "cpu_seconds_median": "CPU s", "gen_tps_per_core": "gen tok/s/core", "per_core_threads": "per-core threads",
    "frequency_ghz": "GHz", "frequency_from": "GHz from",
    "gen_tps_per_ghz_per_core": "gen tok/s/GHz/core", "cycles_per_token": "cycles/token",
    "perplexity": "PPL", "ppl_scored_tokens": "PPL ids", "ppl_tps_median": "PPL ids/s",
}


def to_csv(frame: pd.DataFrame) -> str:

    return csvtext.to_csv(frame)  # what frame.to_csv(index=False) writes, faster


def to_json(frame: pd.DataFrame) -> str:
    """Records as a JSON array, numbers to 6 decimal places, missing values as null (pandas' C writer)."""
    if frame.empty:
        return "[]\n"
    # pandas writes "/" as "\\/" (valid JSON, hard to read); it never writes a bare "/", so this is exact.
    return frame.to_json(orient="records", double_precision=6, indent=2).replace("\\/", "/") + "\n"


def to_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no rows)\n"
    # The CELL TABLE shows its summary columns; other frames (repetitions) every column.
    columns = [c for c in SUMMARY_COLUMNS if c in frame.columns] if "status" in frame.columns else list(frame.columns)
    shown = frame[columns].rename(columns=SUMMARY_COLUMNS).copy()
    if "test_double" in frame.columns:
        shown["engine"] = [f"{e} (TEST DOUBLE)" if t else e for e, t in zip(frame["engine"], frame["test_double"])]
    if "emulated" in frame.columns:
        shown["engine"] = [f"{e} (EMULATED)" if m is True else e for e, m in zip(shown["engine"], frame["emulated"])]
    if "engine_options" in frame.columns and (frame["engine_options"] != "{}").any():
        shown.insert(1, "options", [o if o != "{}" else "" for o in frame["engine_options"]])
    if "agreement" in frame.columns:
        shown.insert(shown.columns.get_loc("status") + 1, "agree", [agree_text(r) for r in frame.itertuples()])
    if "ppl_agreement" in frame.columns:
        shown.insert(shown.columns.get_loc("PPL") + 1, "PPL vs ref", [ppl_text(r) for r in frame.itertuples()])
    return markdown(shown)  # empty cells print as '-', not 'nan'


def markdown(frame: pd.DataFrame) -> str:
    """A frame as a Markdown pipe table (floats .4g, missing as '-'), tabulate's text in linear time."""

    columns = [[None if type(v) is float and v != v else v for v in frame[c].tolist()] for c in frame.columns]
    text = pipe_table([str(c) for c in frame.columns], columns)
    if text is None:
        text = frame.astype(object).where(frame.notna(), None).to_markdown(index=False, floatfmt=".4g", missingval="-")
    return text + "\n"


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


def ppl_text(row) -> str:
    """'ref', '+0.08%', '+1.2% DISAGREE' (F32 against its reference) or '+6.1% vs F32' (quantized), else '-'."""
    verdict = row.ppl_agreement
    if verdict is None or verdict != verdict:
        return "-"
    if verdict == "reference":
        return "ref"
    if row.ppl_vs_reference != row.ppl_vs_reference:  # no F32 parent in this RUN
        return verdict
    change = f"{row.ppl_vs_reference:+.2%}"
    return {"DISAGREE": f"{change} DISAGREE", "info": f"{change} vs F32"}.get(verdict, change)


EXPORTERS = {"csv": to_csv, "md": to_markdown, "json": to_json}


def normalisation_lines(host_frequency) -> list[str]:
    """What the per-core and per-GHz columns divide by: each row its own frequency and threads (the header names
    no frequency the rows did not use)."""
    host = (f"{host_frequency['ghz']} GHz ({host_frequency.get('source')})" if host_frequency.get("ghz")
            else f"unknown ({host_frequency.get('reason')})")
    return ["- per GHz: each row divides by its own frequency, shown in `GHz` with `GHz from`: sampled (on the CELL's "
            "CPUs while it ran), advertised (nothing sampled during the CELL: the host's), host (run.json's snapshot, "
            "for records without their own) or unknown (per-GHz columns empty); the full source is `frequency_source` "
            f"in the CSV and JSON. The host's own frequency at the start of the RUN: {host}",
            "- per core: divided by `per-core threads`, the threads the engine was seen to use where that differs "
            "from the threads requested, else the threads requested (`per_core_basis` in the CSV and JSON says which); "
            "cycles/token = per-core threads x GHz / gen tok/s"]


def markdown_page(run: dict, table: pd.DataFrame, continuations: list | None = None,
                  machine: list[str] | None = None) -> str:
    """The Markdown TABLE with a header saying what, where and how it was measured."""
    view = RunDocument(run)  # run.json as read and validated (recordfiles.read_run_file)
    host, freq = view.host, view.frequency
    lines = [
        f"# RUN {view.run_id}",
        "",
        f"- MATRIX: `{view.matrix_path}`; status: {view.status}; started {view.started_at}",
        f"- host: {host.get('cpu', {}).get('brand')} ({host.get('cpu', {}).get('logical_cpus')} logical CPUs), "
        f"fingerprint {host['fingerprint']}, Docker {host['docker'].get('version')}, cgroup v{host['cgroup_version']}",
        *normalisation_lines(freq),
        "- rates: prompt tok/s = prompt tokens / prefill time; gen tok/s = (generated - 1) / decode time; "
        "medians over repetitions; peak MiB and CPU s are read from the cell's cgroup outside the container",
        f"- ITL p50/p95/p99: percentiles of each repetition's inter-token latencies by {describe.PERCENTILE_METHOD}; "
        "the TABLE shows their median over the repetitions",
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
    if not table.empty and "ppl_agreement" in table.columns:
        lines += _perplexity_lines(table)

    if machine:  # the machine's own probes moved while the RUN ran (merge/sampling.machine_drift)
        lines += ["## The machine's own speed moved during the RUN", "",
                  *[f"- {line}: CELLs run at different times met different machines; compare them with care"
                    for line in machine], ""]
    lines += _certainty_lines(table)
    lines += quality.markdown(continuations or [])
    if not table.empty and "emulated" in table.columns and (table["emulated"] == True).any():  # noqa: E712 (column)
        lines += ["Rows marked EMULATED ran an IMAGE built for another architecture than this host's, under "
                  "emulation (qemu-user): their tokens and perplexity are that architecture's, their speed is not "
                  "(docs/arm64.md). They are left out of comparisons and merges with native RUNs unless asked for.",
                  ""]
    notes = table[table["test_double"]] if not table.empty else table
    if not notes.empty:
        lines += ["Rows marked TEST DOUBLE come from the pipeline-test engine: they measure no inference engine.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _perplexity_lines(table: pd.DataFrame) -> list[str]:
    """What the perplexity columns mean, and every F32 CELL whose perplexity is off its reference."""

    lines = ["Perplexity (`PPL`): exp of the mean negative log-likelihood of the evaluation text's ids (scored in "
             "windows from an empty KV cache; docs/contract.md); `PPL vs ref`: F32 CELLs against the reference "
             f"(llama.cpp gguf-f32 of the same model and workload), which they must match within {MAX_RELATIVE:.1%}; "
             "quantized formats: their increase over the F32 parent. `PPL ids/s`: scored ids / median evaluation time.",
             ""]
    off = table[table["ppl_agreement"] == "DISAGREE"]
    if not off.empty:
        lines += ["## Cells whose perplexity disagrees with their reference", ""]
        lines += [f"- `{r.cell_id}` {r.engine} {r.model}/{r.format} t{r.threads}: perplexity {r.perplexity:.4f}, "
                  f"{r.ppl_vs_reference:+.2%} from `{r.ppl_reference}`" for r in off.itertuples()]
        lines.append("")
    return lines


def _certainty_lines(table: pd.DataFrame) -> list[str]:
    """The TABLE's note on its intervals, and a warning with what to do for each uncertain or noisy CELL."""

    if table.empty or "gen_tps_cv" not in table.columns:
        return []
    lines = ["gen CI low/high: 95 % confidence interval of the median gen tok/s from order statistics (exact "
             "binomial, no resampling); gen CV: standard deviation / mean over the repetitions. `noise` names the "
             f"guards a CELL tripped: steal > {noise.STEAL_LIMIT:.0%} or other processes > {noise.OTHER_LIMIT:.0%} "
             "of its cores' time, any swap-in, any thermal throttling.", ""]
    found = []
    for row in table[table["status"] == "ok"].to_dict("records"):
        label = f"`{row['cell_id']}` {row['engine']} {row['model']}/{row['format']} t{row['threads']}"
        found += [f"- {label}: {text}" for text in certainty.warnings(row)]
        if isinstance(row.get("noise_flags"), str):
            found.append(f"- {label}: noise guards tripped ({row['noise_flags']}): rerun it on a quieter host or on "
                         "isolated cores (placement.cpus), and compare with care")
    return lines + (["## Cells whose figures are uncertain", "", *found, ""] if found else [])
