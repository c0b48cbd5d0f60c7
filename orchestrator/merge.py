"""Merge the RESULTs of a RUN into TABLEs: one row per repetition, one row per CELL.

Pure functions over plain records (pandas in, pandas out). Rates are derived from
measured times only: prompt tokens/s = prompt tokens / prefill time; generation
tokens/s = (generated tokens - 1) / decode time, since the first generated token is
part of the time to first token.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

KEYS = ["cell_id", "engine", "model", "format", "threads", "workload"]
FULL_PRECISION = ("gguf-f32", "safetensors", "onnx")  # formats holding the F32 weights themselves
MIN_AGREEMENT = 32  # F32 engines must agree on at least this many greedy tokens
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
                "gen_tps": generation_rate(rep),
                "itl_p50_ms": _percentile(itl_ms, 50),
                "itl_p95_ms": _percentile(itl_ms, 95),
                "itl_p99_ms": _percentile(itl_ms, 99),
            })
    columns = KEYS + ["repetition", "prompt_tokens", "generated_tokens", "prefill_s", "decode_s"] + REPETITION_METRICS
    return pd.DataFrame(rows, columns=columns)


def generation_rate(rep: dict) -> float:
    """Generation tokens/s of one repetition: (generated - 1) / decode time; NaN without decode time."""
    return (rep["generated_tokens"] - 1) / rep["decode_s"] if rep["decode_s"] > 0 else np.nan


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
        row["engine_options"] = json.dumps(record["cell"]["engine_options"], sort_keys=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    agreement_rows = agreement(records)
    for column in ("agreement_reference", "agreement_tokens", "agreement_of", "agreement", "token_ids_stable"):
        table[column] = [agreement_rows.get(r["cell_id"], {}).get(column) for r in records]
    return table


def _token_ids(record: dict) -> list[int] | None:
    if record["status"] != "ok":
        return None
    return record["result"]["repetitions"][0]["token_ids"]


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share."""
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def agreement(records: list[dict]) -> dict[str, dict]:
    """Greedy-token agreement of every ok CELL with its reference (pure).

    F32 CELLs (gguf-f32, safetensors, onnx) are compared with the first F32 llama.cpp CELL
    of the same model and workload (else the first F32 CELL): they must share at least
    the first 32 tokens (or all, if fewer were generated), else 'DISAGREE'. Quantized
    CELLs are compared with their F32 parent (gguf-f32) of the same engine, else of
    any engine; their length of agreement is reported ('info').
    """
    ok = [r for r in records if r["status"] == "ok"]

    def group(r):
        return r["cell"]["model"], json.dumps(r["cell"]["workload"], sort_keys=True)

    def anchor(members):
        full = [r for r in members if r["cell"]["format"] in FULL_PRECISION]
        preferred = [r for r in full if r["cell"]["engine"] == "llama.cpp" and r["cell"]["format"] == "gguf-f32"]
        return (preferred or full or [None])[0]

    out = {}
    for record in ok:
        cell, ids = record["cell"], _token_ids(record)
        members = [r for r in ok if group(r) == group(record)]
        if cell["format"] in FULL_PRECISION:
            reference = anchor(members)
            reference = None if reference is record else reference
        else:
            parents = [r for r in members if r["cell"]["format"] == "gguf-f32"]
            own = [r for r in parents if r["cell"]["engine"] == cell["engine"]]
            reference = (own or parents or [None])[0]
        reps = record["result"]["repetitions"]
        row = {"token_ids_stable": all(rep["token_ids"] == ids for rep in reps), "agreement_of": len(ids)}
        if reference is None:
            row.update(agreement_reference=None, agreement_tokens=None,
                       agreement="reference" if cell["format"] in FULL_PRECISION else "no F32 parent in this RUN")
        else:
            length = common_prefix(ids, _token_ids(reference))
            need = min(MIN_AGREEMENT, len(ids))
            verdict = ("ok" if length >= need else "DISAGREE") if cell["format"] in FULL_PRECISION else "info"
            row.update(agreement_reference=reference["cell_id"], agreement_tokens=length, agreement=verdict)
        out[record["cell_id"]] = row
    return out


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
