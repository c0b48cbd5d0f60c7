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
from collections.abc import Mapping
from typing import TYPE_CHECKING

from orchestrator.merge import sampling, scores
from orchestrator.merge.agreement import agreement, group, references
from orchestrator.results.reader import Record, as_records
from orchestrator.stats import certainty, describe

if TYPE_CHECKING:
    import pandas as pd

NAN = float("nan")
KEYS = ["cell_id", "engine", "model", "format", "threads", "workload"]
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


def repetitions(records: list[Record]) -> pd.DataFrame:
    """One row per timed repetition of every ok CELL."""
    import pandas as pd  # here, not at the top: the command line imports this module for rates only

    rows = [row for record in as_records(records) for row in _repetition_rows(record)]
    return pd.DataFrame({c: [r[c] for r in rows] for c in REPETITION_COLUMNS}, columns=REPETITION_COLUMNS)


def _repetition_rows(record: Record) -> list[dict]:
    """The generation repetitions' rows (a perplexity CELL's evaluations are summarised in its CELL row)."""
    result = record.ok_result
    if result is None or result.is_perplexity:
        return []
    keys = _keys(record)
    rows = []
    placed = _batch_of(record)
    for rep in result.repetitions:
        itl_s = sorted(rep.inter_token_latencies_s)  # x 1000 keeps the order: scale only what is used
        rows.append({
            **keys,
            "repetition": rep.index,
            **placed.get(rep.index, {"batch": 1, "round": 1, "position": None}),
            "prompt_tokens": rep.prompt_tokens,
            "generated_tokens": rep.generated_tokens,
            "prefill_s": rep.prefill_s,
            "decode_s": rep.decode_s,
            "ttft_ms": rep.ttft_s * 1000,
            "prompt_tps": rep.prompt_rate,
            "gen_tps": rep.generation_rate,
            "itl_p50_ms": describe.scaled_percentile(itl_s, 50, 1000),
            "itl_p95_ms": describe.scaled_percentile(itl_s, 95, 1000),
            "itl_p99_ms": describe.scaled_percentile(itl_s, 99, 1000),
        })
    return rows


def _batch_of(record: Record) -> dict[int, dict]:
    """Repetition index -> its batch, round and position in the RUN (records with sampling; else empty)."""
    meta = {b.number: b for b in record.sampling.batches}
    return {i: {"batch": k, "round": meta[k].round if k in meta else None,
                "position": meta[k].position if k in meta else None}
            for i, k in enumerate(record.sampling.repetition_batch)}





def _keys(record: Record) -> dict:
    cell = record.cell
    return {"cell_id": record.cell_id, "engine": cell.engine, "model": cell.model, "format": cell.format,
            "threads": cell.threads, "workload": cell.workload.name}


def summarise(values) -> dict:
    """median, p90, standard deviation (sample), min, max and n of a series or list (NaNs dropped)."""
    return describe.summary([float(v) for v in values if v is not None])


def cells(records: list[Record], frequency: Mapping) -> pd.DataFrame:
    """One row per CELL: status, statistics of every metric, and normalised generation speed.

    ``frequency`` is the host's {'ghz', 'source'} (or ghz None with a reason); per-GHz
    figures and cycles per token are null when it is unknown, never guessed.
    """
    return tables(records, frequency)[0]


def tables(records: list[Record], frequency: Mapping, columns: tuple[dict, dict] | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CELL TABLE and the repetition TABLE together, each repetition computed once.

    ``columns`` is ``derived_columns(records, frequency)`` when the caller has it already
    (report.py computes it beside reading, in several processes). Both TABLEs are built
    from columns, so the same records give the same frames however they were computed.
    """
    import pandas as pd

    if not records:
        return pd.DataFrame(), pd.DataFrame(columns=REPETITION_COLUMNS)
    records = as_records(records)
    cell_columns, rep_columns = columns if columns is not None else derived_columns(records, frequency)
    found = agreement(records)
    scored = [r for r in records if r.ok and r.is_perplexity]
    agreed = scores.agreement(scored, references(scored, group))
    ids = list(cell_columns["cell_id"])
    cell_columns = {**cell_columns, **{c: [found.get(i, {}).get(c) for i in ids] for c in AGREEMENT_COLUMNS}}
    if agreed:  # a RUN with perplexity CELLs: the reference and the relative difference of each
        cell_columns.update({c: [agreed.get(i, {}).get(c, NAN if c == "ppl_vs_reference" else None) for i in ids]
                             for c in PERPLEXITY_AGREEMENT})
    return pd.DataFrame(cell_columns), pd.DataFrame(rep_columns, columns=REPETITION_COLUMNS)


def derived_columns(records: list[Record], frequency: Mapping) -> tuple[dict[str, list], dict[str, list]]:
    """The CELL rows (less agreement) and the repetition rows of ``records``, as columns (pure)."""
    rows, reps = [], []
    for record in as_records(records):
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


def cell_rows(record: Record, frequency: Mapping) -> tuple[dict, list[dict]]:
    """One record's CELL row (all but its agreement columns) and its repetition rows (pure)."""
    row = {**_keys(record), "status": record.status, "reason": record.reason,
           "test_double": record.test_double, "cpus": record.cpus, "engine_version": record.engine_version,
           "model_sha256": record.model_sha256, "image_id": record.image_id, "emulated": record.emulated}
    mine = _repetition_rows(record)
    for metric in REPETITION_METRICS:
        row.update(zip(_STAT_NAMES[metric], describe.summary([r[metric] for r in mine]).values()))
    row.update(certainty.columns([r["gen_tps"] for r in mine]))  # CV and interval of the median
    row["itl_percentile_method"] = describe.PERCENTILE_METHOD
    row.update(sampling.columns(record))
    peak, cpu = record.outside.peak_memory_bytes, record.outside.cpu_seconds
    cell_values = {"peak_memory_mib": peak / 2**20 if peak is not None else NAN,
                   "cpu_seconds": float(cpu) if cpu is not None else NAN}
    for metric in CELL_METRICS:
        row.update(zip(_STAT_NAMES[metric], describe.summary([cell_values[metric]]).values()))
    result = record.ok_result
    row["load_time_s"] = result.load_time_s if result is not None else NAN
    rss = result.peak_rss_bytes if result is not None else None
    row["peak_rss_mib"] = rss / 2**20 if rss is not None else NAN
    row["threads_used"] = record.threads_used
    measured = record.sampling.frequency  # sampled on the CELL's CPUs while it ran
    row.update(normalise(row["gen_tps_median"], record.cell.threads,
                         measured if measured and measured.get("ghz") else frequency, record.threads_used))
    row["engine_options"] = json.dumps(record.cell.engine_options, sort_keys=True)
    if record.cell.workload.kind == "perplexity":
        row.update({k: v for k, v in scores.cell_columns(record).items() if k not in PERPLEXITY_AGREEMENT})
    return row, mine





def normalise(gen_tps: float, threads: int, frequency: Mapping, used: int | None = None) -> dict:
    """Generation tokens/s per core, per GHz per core, and cycles per token (pure).

    Per core divides by the threads the engine was seen to use (``used``) where that is known and differs from the
    threads requested, else by the threads requested; ``per_core_threads`` is the divisor and ``per_core_basis``
    says which. Per GHz divides by ``frequency`` (the CELL's own: sampled on its CPUs while it ran, else the
    host's), named in ``frequency_ghz``, ``frequency_from`` and ``frequency_source``.
    """
    ghz = frequency.get("ghz")
    divisor, basis = per_core_divisor(threads, used)
    per_core = gen_tps / divisor if gen_tps == gen_tps else NAN
    source = frequency.get("source")
    out = {"gen_tps_per_core": per_core, "per_core_threads": divisor, "per_core_basis": basis, "frequency_ghz": ghz,
           "frequency_from": frequency_from(ghz, source),
           "frequency_source": source or f"unknown: {frequency.get('reason', 'not read')}"}
    if ghz:
        out["gen_tps_per_ghz_per_core"] = per_core / ghz
        # Cycles the engine's cores spent per generated token: cores x Hz / (tokens/s).
        out["cycles_per_token"] = divisor * ghz * 1e9 / gen_tps if gen_tps == gen_tps and gen_tps > 0 else NAN
    else:
        out["gen_tps_per_ghz_per_core"] = NAN
        out["cycles_per_token"] = NAN
    return out


def per_core_divisor(threads: int, used: int | None) -> tuple[int, str]:
    """(divisor, why) of the per-core figures: the threads used where known and different, else those requested."""
    if used is not None and 1 <= used != threads:
        return used, f"threads used ({used} of {threads} requested)"
    return threads, "threads requested (= used)" if used == threads else "threads requested (threads used unknown)"


def frequency_from(ghz: float | None, source: str | None) -> str:
    """Where a CELL's frequency came from, in a word: sampled (on its CPUs while it ran), advertised (the host's,
    nothing sampled during the CELL), host (run.json's snapshot: a record without its own) or unknown."""
    if not ghz:
        return "unknown"
    text = source or ""
    return "sampled" if text.startswith("sampled") else "advertised" if text.startswith("advertised") else "host"
