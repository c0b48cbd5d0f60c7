"""Merge the RESULTs of a RUN into TABLEs: one row per repetition, one row per CELL.

Pure functions over plain records (pandas in, pandas out). Rates are derived from
measured times only: prompt tokens/s = prompt tokens / prefill time; generation
tokens/s = (generated tokens - 1) / decode time, since the first generated token is
part of the time to first token.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KEYS = ["cell_id", "engine", "model", "format", "threads", "workload"]
STATS = ["median", "p90", "std", "min", "max", "n"]
# Metrics measured once per repetition, summarised over repetitions.
REPETITION_METRICS = ["prompt_tps", "gen_tps", "ttft_ms", "itl_p50_ms", "itl_p95_ms", "itl_p99_ms"]
# Metrics measured once per CELL from outside the container.
CELL_METRICS = ["peak_memory_mib", "cpu_seconds"]


def repetitions(records: list[dict]) -> pd.DataFrame:
    """One row per timed repetition of every ok CELL."""
    rows = []
    for record in records:
        if record["status"] != "ok":
            continue
        result = record["result"]
        for rep in result["repetitions"]:
            itl_ms = np.asarray(rep["inter_token_latencies_s"], dtype=float) * 1000
            rows.append({
                **_keys(record),
                "repetition": rep["index"],
                "prompt_tokens": rep["prompt_tokens"],
                "generated_tokens": rep["generated_tokens"],
                "prefill_s": rep["prefill_s"],
                "decode_s": rep["decode_s"],
                "ttft_ms": rep["ttft_s"] * 1000,
                "prompt_tps": rep["prompt_tokens"] / rep["prefill_s"] if rep["prefill_s"] > 0 else np.nan,
                "gen_tps": (rep["generated_tokens"] - 1) / rep["decode_s"] if rep["decode_s"] > 0 else np.nan,
                "itl_p50_ms": _percentile(itl_ms, 50),
                "itl_p95_ms": _percentile(itl_ms, 95),
                "itl_p99_ms": _percentile(itl_ms, 99),
            })
    columns = KEYS + ["repetition", "prompt_tokens", "generated_tokens", "prefill_s", "decode_s"] + REPETITION_METRICS
    return pd.DataFrame(rows, columns=columns)


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else np.nan


def _keys(record: dict) -> dict:
    cell = record["cell"]
    return {"cell_id": record["cell_id"], "engine": cell["engine"], "model": cell["model"], "format": cell["format"],
            "threads": cell["threads"], "workload": cell["workload"]["name"]}


def summarise(values: pd.Series) -> dict:
    """median, p90, standard deviation (sample), min, max and n of a series (NaNs dropped)."""
    values = values.dropna().astype(float)
    if values.empty:
        return {s: (0 if s == "n" else np.nan) for s in STATS}
    return {"median": values.median(), "p90": values.quantile(0.9), "std": values.std(ddof=1) if len(values) > 1
            else np.nan, "min": values.min(), "max": values.max(), "n": int(len(values))}


def cells(records: list[dict], frequency: dict) -> pd.DataFrame:
    """One row per CELL: status, statistics of every metric, and normalised generation speed.

    ``frequency`` is the host's {'ghz', 'source'} (or ghz None with a reason); per-GHz
    figures and cycles per token are null when it is unknown, never guessed.
    """
    reps = repetitions(records)
    rows = []
    for record in records:
        row = {**_keys(record), "status": record["status"], "reason": record["reason"],
               "test_double": record["test_double"], "cpus": record["placement"]["cpus"],
               "engine_version": record["provenance"]["engine_version"],
               "model_sha256": record["provenance"]["model"]["sha256"],
               "image_id": record["provenance"]["image"]["id"]}
        mine = reps[reps["cell_id"] == record["cell_id"]]
        for metric in REPETITION_METRICS:
            for stat, value in summarise(mine[metric]).items():
                row[f"{metric}_{stat}"] = value
        outside = record["outside"]
        peak = outside["peak_memory_bytes"]
        cell_values = {"peak_memory_mib": peak / 2**20 if peak is not None else np.nan,
                       "cpu_seconds": outside["cpu_seconds"] if outside["cpu_seconds"] is not None else np.nan}
        for metric in CELL_METRICS:
            for stat, value in summarise(pd.Series([cell_values[metric]])).items():
                row[f"{metric}_{stat}"] = value
        result = record.get("result") or {}
        row["load_time_s"] = result.get("load_time_s", np.nan) if record["status"] == "ok" else np.nan
        rss = result.get("peak_rss_bytes") if record["status"] == "ok" else None
        row["peak_rss_mib"] = rss / 2**20 if rss is not None else np.nan
        row["threads_used"] = result.get("threads", {}).get("used") if result else None
        row.update(normalise(row["gen_tps_median"], record["cell"]["threads"], frequency))
        rows.append(row)
    return pd.DataFrame(rows)


def normalise(gen_tps: float, threads: int, frequency: dict) -> dict:
    """Generation tokens/s per core, per GHz per core, and cycles per token (pure)."""
    ghz = frequency.get("ghz")
    per_core = gen_tps / threads if gen_tps == gen_tps else np.nan
    out = {"gen_tps_per_core": per_core, "frequency_ghz": ghz,
           "frequency_source": frequency.get("source") or f"unknown: {frequency.get('reason', 'not read')}"}
    if ghz:
        out["gen_tps_per_ghz_per_core"] = per_core / ghz
        # Cycles the cell's cores spent per generated token: cores x Hz / (tokens/s).
        out["cycles_per_token"] = threads * ghz * 1e9 / gen_tps if gen_tps == gen_tps and gen_tps > 0 else np.nan
    else:
        out["gen_tps_per_ghz_per_core"] = np.nan
        out["cycles_per_token"] = np.nan
    return out
