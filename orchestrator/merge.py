"""Merge the RESULTs of a RUN into TABLEs: one row per repetition, one row per CELL.

Pure functions over plain records (pandas out). Rates are derived from measured times
only: prompt tokens/s = prompt tokens / prefill time; generation tokens/s = (generated
tokens - 1) / decode time, since the first generated token is part of the time to first
token. Work grows linearly with the number of records: statistics are plain Python over
each CELL's own repetitions (orchestrator/stats.py) and agreement looks references up by key.
"""

from __future__ import annotations

import json
import operator
from typing import TYPE_CHECKING, Callable

from orchestrator import certainty, perplexity, sampling, stats
from orchestrator.catalogue import FULL_PRECISION

if TYPE_CHECKING:
    import pandas as pd

NAN = float("nan")
KEYS = ["cell_id", "engine", "model", "format", "threads", "workload"]
MIN_AGREEMENT = 32  # F32 engines must agree on at least this many greedy tokens
STATS = ["median", "p90", "std", "min", "max", "n"]
# Metrics measured once per repetition, summarised over repetitions.
REPETITION_METRICS = ["prompt_tps", "gen_tps", "ttft_ms", "itl_p50_ms", "itl_p95_ms", "itl_p99_ms"]
# Metrics measured once per CELL from outside the container.
CELL_METRICS = ["peak_memory_mib", "cpu_seconds"]
REPETITION_COLUMNS = KEYS + ["repetition", "batch", "round", "position", "prompt_tokens", "generated_tokens",
                             "prefill_s", "decode_s"] + REPETITION_METRICS
_STAT_NAMES = {m: [f"{m}_{s}" for s in STATS] for m in REPETITION_METRICS + CELL_METRICS}  # summary()'s order
PERPLEXITY_AGREEMENT = ("ppl_reference", "ppl_vs_reference", "ppl_agreement")
AGREEMENT_COLUMNS = ("agreement_reference", "agreement_tokens", "agreement_of", "agreement", "token_ids_stable")


def repetitions(records: list[dict]) -> pd.DataFrame:
    """One row per timed repetition of every ok CELL."""
    import pandas as pd  # here, not at the top: the command line imports this module for rates only

    rows = [row for record in records for row in _repetition_rows(record)]
    return pd.DataFrame({c: [r[c] for r in rows] for c in REPETITION_COLUMNS}, columns=REPETITION_COLUMNS)


def _repetition_rows(record: dict) -> list[dict]:
    """The generation repetitions' rows (a perplexity CELL's evaluations are summarised in its CELL row)."""
    if record["status"] != "ok" or perplexity.is_perplexity(record["result"]):
        return []
    keys = _keys(record)
    rows = []
    placed = _batch_of(record)
    for rep in record["result"]["repetitions"]:
        itl_s = sorted(rep["inter_token_latencies_s"])  # x 1000 keeps the order: scale only what is used
        rows.append({
            **keys,
            "repetition": rep["index"],
            **placed.get(rep["index"], {"batch": 1, "round": 1, "position": None}),
            "prompt_tokens": rep["prompt_tokens"],
            "generated_tokens": rep["generated_tokens"],
            "prefill_s": rep["prefill_s"],
            "decode_s": rep["decode_s"],
            "ttft_ms": rep["ttft_s"] * 1000,
            "prompt_tps": rep["prompt_tokens"] / rep["prefill_s"] if rep["prefill_s"] > 0 else NAN,
            "gen_tps": generation_rate(rep),
            "itl_p50_ms": stats.scaled_percentile(itl_s, 50, 1000),
            "itl_p95_ms": stats.scaled_percentile(itl_s, 95, 1000),
            "itl_p99_ms": stats.scaled_percentile(itl_s, 99, 1000),
        })
    return rows


def _batch_of(record: dict) -> dict[int, dict]:
    """Repetition index -> its batch, round and position in the RUN (records with sampling; else empty)."""
    sampling_ = record.get("sampling") or {}
    meta = {b["batch"]: b for b in sampling_.get("batches", [])}
    return {i: {"batch": k, "round": meta.get(k, {}).get("round"), "position": meta.get(k, {}).get("position")}
            for i, k in enumerate(sampling_.get("repetition_batch", []))}


def generation_rate(rep: dict) -> float:
    """Generation tokens/s of one repetition: (generated - 1) / decode time; NaN without decode time."""
    return (rep["generated_tokens"] - 1) / rep["decode_s"] if rep["decode_s"] > 0 else NAN


def _keys(record: dict) -> dict:
    cell = record["cell"]
    return {"cell_id": record["cell_id"], "engine": cell["engine"], "model": cell["model"], "format": cell["format"],
            "threads": cell["threads"], "workload": cell["workload"]["name"]}


def summarise(values) -> dict:
    """median, p90, standard deviation (sample), min, max and n of a series or list (NaNs dropped)."""
    return stats.summary([float(v) for v in values if v is not None])


def cells(records: list[dict], frequency: dict) -> pd.DataFrame:
    """One row per CELL: status, statistics of every metric, and normalised generation speed.

    ``frequency`` is the host's {'ghz', 'source'} (or ghz None with a reason); per-GHz
    figures and cycles per token are null when it is unknown, never guessed.
    """
    return tables(records, frequency)[0]


def tables(records: list[dict], frequency: dict, columns: tuple[dict, dict] | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CELL TABLE and the repetition TABLE together, each repetition computed once.

    ``columns`` is ``derived_columns(records, frequency)`` when the caller has it already
    (report.py computes it beside reading, in several processes). Both TABLEs are built
    from columns, so the same records give the same frames however they were computed.
    """
    import pandas as pd

    if not records:
        return pd.DataFrame(), pd.DataFrame(columns=REPETITION_COLUMNS)
    cell_columns, rep_columns = columns if columns is not None else derived_columns(records, frequency)
    found = agreement(records)
    scored = [r for r in records if r["status"] == "ok" and perplexity.is_perplexity(r["result"])]
    scores = perplexity.agreement(scored, references(scored, _group))
    ids = list(cell_columns["cell_id"])
    cell_columns = {**cell_columns, **{c: [found.get(i, {}).get(c) for i in ids] for c in AGREEMENT_COLUMNS}}
    if scores:  # a RUN with perplexity CELLs: the reference and the relative difference of each
        cell_columns.update({c: [scores.get(i, {}).get(c, NAN if c == "ppl_vs_reference" else None) for i in ids]
                             for c in PERPLEXITY_AGREEMENT})
    return pd.DataFrame(cell_columns), pd.DataFrame(rep_columns, columns=REPETITION_COLUMNS)


def derived_columns(records: list[dict], frequency: dict) -> tuple[dict[str, list], dict[str, list]]:
    """The CELL rows (less agreement) and the repetition rows of ``records``, as columns (pure)."""
    rows, reps = [], []
    for record in records:
        row, mine = cell_rows(record, frequency)
        rows.append(row)
        reps += mine
    by_name = operator.itemgetter(*REPETITION_COLUMNS)  # each row's values in column order, in C
    rep_values = list(zip(*map(by_name, reps))) or [[] for _ in REPETITION_COLUMNS]
    return ({k: packed(v) for k, v in columns_of(rows).items()},
            {c: packed(list(v)) for c, v in zip(REPETITION_COLUMNS, rep_values)})


def packed(values: list):
    """A column of only floats, only ints or only bools as a numpy array (what pandas would make of the
    list, made once, and cheap to send between processes); any other column as the list it is."""
    import numpy as np

    kinds = set(map(type, values))
    if kinds == {float}:
        return np.array(values, dtype=np.float64)
    if kinds == {bool}:
        return np.array(values, dtype=np.bool_)
    if kinds == {int} and all(-2**63 <= v < 2**63 for v in (min(values), max(values))):
        return np.array(values, dtype=np.int64)
    return values


def columns_of(rows: list[dict]) -> dict[str, list]:
    """Rows as columns, keys in the order they first appear; a row without a key has None there."""
    keys = list(rows[0]) if rows else []
    if all(list(row) == keys for row in rows):
        return {k: list(v) for k, v in zip(keys, zip(*(row.values() for row in rows)))} if rows else {}
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def join_columns(parts: list[dict]) -> dict:
    """Columns of consecutive parts of one TABLE joined in order (a key a part lacks is None there);
    arrays of one dtype stay an array, anything else becomes a list (as one part would have it)."""
    import numpy as np

    keys = list(dict.fromkeys(k for part in parts for k in part))
    lengths = [len(next(iter(part.values()))) if part else 0 for part in parts]
    joined = {}
    for key in keys:
        pieces = [part.get(key, [None] * length) for part, length in zip(parts, lengths)]
        if all(isinstance(p, np.ndarray) for p in pieces) and len({p.dtype for p in pieces}) == 1:
            joined[key] = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        else:
            joined[key] = packed([v for p in pieces for v in (p.tolist() if isinstance(p, np.ndarray) else p)])
    return joined


def cell_rows(record: dict, frequency: dict) -> tuple[dict, list[dict]]:
    """One record's CELL row (all but its agreement columns) and its repetition rows (pure)."""
    row = {**_keys(record), "status": record["status"], "reason": record["reason"],
           "test_double": record["test_double"], "cpus": record["placement"]["cpus"],
           "engine_version": record["provenance"]["engine_version"],
           "model_sha256": record["provenance"]["model"]["sha256"],
           "image_id": record["provenance"]["image"]["id"]}
    mine = _repetition_rows(record)
    for metric in REPETITION_METRICS:
        row.update(zip(_STAT_NAMES[metric], stats.summary([r[metric] for r in mine]).values()))
    row.update(certainty.columns([r["gen_tps"] for r in mine]))  # CV and interval of the median
    row.update(sampling.columns(record))
    outside = record["outside"]
    peak = outside["peak_memory_bytes"]
    cell_values = {"peak_memory_mib": peak / 2**20 if peak is not None else NAN,
                   "cpu_seconds": float(outside["cpu_seconds"]) if outside["cpu_seconds"] is not None else NAN}
    for metric in CELL_METRICS:
        row.update(zip(_STAT_NAMES[metric], stats.summary([cell_values[metric]]).values()))
    result = record.get("result") or {}
    row["load_time_s"] = result.get("load_time_s", NAN) if record["status"] == "ok" else NAN
    rss = result.get("peak_rss_bytes") if record["status"] == "ok" else None
    row["peak_rss_mib"] = rss / 2**20 if rss is not None else NAN
    row["threads_used"] = threads_used(record)
    measured = (record.get("sampling") or {}).get("frequency")  # sampled on the CELL's CPUs while it ran
    row.update(normalise(row["gen_tps_median"], record["cell"]["threads"],
                         measured if measured and measured.get("ghz") else frequency))
    row["engine_options"] = json.dumps(record["cell"]["engine_options"], sort_keys=True)
    if record["cell"]["workload"].get("kind") == "perplexity":
        row.update({k: v for k, v in perplexity.cell_columns(record).items() if k not in PERPLEXITY_AGREEMENT})
    return row, mine


def threads_used(record: dict) -> int | None:
    """The threads a CELL ran with: the orchestrator's verdict when the record has one, else the runner's."""
    verdict = record.get("threads")
    if isinstance(verdict, dict) and "used" in verdict:
        return verdict["used"]
    result = record.get("result")
    return result.get("threads", {}).get("used") if result else None


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
    """Greedy-token agreement of every ok CELL with its reference (pure, linear in the records).

    F32 CELLs (gguf-f32, safetensors, onnx) are compared with the first F32 llama.cpp CELL
    of the same model and workload (else the first F32 CELL): they must share at least
    the first 32 tokens (or all, if fewer were generated), else 'DISAGREE'. Quantized
    CELLs are compared with their F32 parent (gguf-f32) of the same engine, else of
    any engine; their length of agreement is reported ('info').
    """
    ok = [r for r in records if r["status"] == "ok" and not perplexity.is_perplexity(r["result"])]
    reference_of = references(ok, _group)
    out = {}
    for record in ok:
        cell, ids = record["cell"], _token_ids(record)
        reference = reference_of(record)
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


def references(ok: list[dict], group) -> Callable[[dict], dict | None]:
    """Each ok record's reference among ``ok`` (records of one kind), None for a group's reference itself.

    ``group(record)`` says which CELLs are compared. An F32 CELL (gguf-f32, safetensors, onnx)
    is compared with its group's first llama.cpp gguf-f32 CELL, else its first F32 CELL; a
    quantized CELL with its F32 parent: the group's first gguf-f32 CELL of the same engine,
    else of any engine (None when there is none).
    """
    anchors: dict = {}  # group -> (reference of its F32 CELLs, is it llama.cpp gguf-f32)
    parents: dict = {}  # (group, engine or None) -> first gguf-f32 CELL
    for record in ok:
        cell, key = record["cell"], group(record)
        if cell["format"] in FULL_PRECISION:
            preferred = cell["engine"] == "llama.cpp" and cell["format"] == "gguf-f32"
            current = anchors.get(key)
            if current is None or (preferred and not current[1]):
                anchors[key] = (record, preferred)
        if cell["format"] == "gguf-f32":
            parents.setdefault((key, cell["engine"]), record)
            parents.setdefault((key, None), record)

    def reference_of(record: dict) -> dict | None:
        cell, key = record["cell"], group(record)
        if cell["format"] in FULL_PRECISION:
            anchor = anchors[key][0]
            return None if anchor is record else anchor
        return parents.get((key, cell["engine"])) or parents.get((key, None))
    return reference_of


def _group(record: dict) -> tuple[str, str]:
    """CELLs compared with each other: same model and workload."""
    return record["cell"]["model"], json.dumps(record["cell"]["workload"], sort_keys=True)


def normalise(gen_tps: float, threads: int, frequency: dict) -> dict:
    """Generation tokens/s per core, per GHz per core, and cycles per token (pure)."""
    ghz = frequency.get("ghz")
    per_core = gen_tps / threads if gen_tps == gen_tps else NAN
    out = {"gen_tps_per_core": per_core, "frequency_ghz": ghz,
           "frequency_source": frequency.get("source") or f"unknown: {frequency.get('reason', 'not read')}"}
    if ghz:
        out["gen_tps_per_ghz_per_core"] = per_core / ghz
        # Cycles the cell's cores spent per generated token: cores x Hz / (tokens/s).
        out["cycles_per_token"] = threads * ghz * 1e9 / gen_tps if gen_tps == gen_tps and gen_tps > 0 else NAN
    else:
        out["gen_tps_per_ghz_per_core"] = NAN
        out["cycles_per_token"] = NAN
    return out
