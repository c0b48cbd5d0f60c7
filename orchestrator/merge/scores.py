"""Perplexity CELLs in the TABLE: their columns, and their agreement with their reference CELL (pure).

Pure functions over plain data. The contract (docs/contract.md): windows ``[b, min(b + C, N))``
for ``b = 0, S, 2S, ...`` up to the first that ends at ``N``; each scores the ids after the
previous window's end, so ids 1..N-1 are each scored once. F32 CELLs (gguf-f32, safetensors,
onnx) must give a perplexity within 0.5 % of their reference (llama.cpp's gguf-f32 CELL of the
same model and workload, else the first F32 CELL); quantized CELLs show their increase over
their F32 parent (gguf-f32 of the same engine, else of any engine).
"""

from __future__ import annotations

from orchestrator.models.catalogue import FULL_PRECISION
from orchestrator.results.reader import Record
from orchestrator.stats import describe

NAN = float("nan")
MAX_RELATIVE = 0.005  # F32 engines agree within 0.5 % relative


COLUMNS = ("perplexity", "ppl_mean_nll", "ppl_scored_tokens", "ppl_windows", "ppl_time_s_median", "ppl_tps_median",
           "ppl_reference", "ppl_vs_reference", "ppl_agreement")


def cell_columns(record: Record) -> dict:
    """The perplexity columns of one CELL's row (agreement filled in by ``agreement``); NaN/None otherwise."""
    out: dict[str, object] = {c: None for c in COLUMNS}
    out.update(perplexity=NAN, ppl_mean_nll=NAN, ppl_time_s_median=NAN, ppl_tps_median=NAN, ppl_vs_reference=NAN)
    result = record.ok_result
    figures = result.perplexity if result is not None else None
    if result is None or figures is None:
        return out
    median = describe.median(sorted(rep.time_s for rep in result.repetitions))
    out.update(perplexity=figures.perplexity, ppl_mean_nll=figures.mean_nll,
               ppl_scored_tokens=figures.scored_tokens, ppl_windows=figures.windows, ppl_time_s_median=median,
               ppl_tps_median=figures.scored_tokens / median if median > 0 else NAN)
    return out


def agreement(ok: list[Record], reference_of) -> dict[str, dict]:
    """cell id -> {ppl_reference, ppl_vs_reference, ppl_agreement} for ok perplexity records (linear).

    ``reference_of(record)`` is agreement.references over them: an F32 CELL's reference, a quantized
    CELL's F32 parent, None for the reference itself. F32 CELLs: 'ok' within 0.5 % of the
    reference, else 'DISAGREE'; quantized CELLs: 'info', with their relative increase.
    """
    out = {}
    for record in ok:
        full = record.cell.format in FULL_PRECISION
        reference = reference_of(record)
        if reference is None:
            out[record.cell_id] = {"ppl_reference": None, "ppl_vs_reference": NAN,
                                   "ppl_agreement": "reference" if full else "no F32 parent in this RUN"}
            continue
        relative = _perplexity(record) / _perplexity(reference) - 1
        verdict = ("ok" if abs(relative) <= MAX_RELATIVE else "DISAGREE") if full else "info"
        out[record.cell_id] = {"ppl_reference": reference.cell_id, "ppl_vs_reference": relative,
                               "ppl_agreement": verdict}
    return out


def _perplexity(record: Record) -> float:
    figures = record.result.perplexity if record.result is not None else None
    assert figures is not None, "only ok perplexity records are scored"
    return figures.perplexity
