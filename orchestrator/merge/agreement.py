"""Greedy-token agreement: which CELL is each CELL's reference, and how long their token ids agree (pure).

F32 CELLs (gguf-f32, safetensors, onnx) are compared with the first llama.cpp gguf-f32 CELL of
the same model and workload (else the first F32 CELL) and must agree on the first
MIN_AGREEMENT tokens; quantized CELLs are compared with their F32 parent, for information.
``references`` is the one rule of which CELL is whose reference, for tokens and perplexity alike.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.models.catalogue import FULL_PRECISION
from orchestrator.results.reader import Record, as_records

MIN_AGREEMENT = 32  # F32 engines must agree on at least this many greedy tokens


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share."""
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def agreement(records: list[Record]) -> dict[str, dict]:
    """Greedy-token agreement of every ok CELL with its reference (pure, linear in the records).

    F32 CELLs (gguf-f32, safetensors, onnx) are compared with the first F32 llama.cpp CELL
    of the same model and workload (else the first F32 CELL): they must share at least
    the first 32 tokens (or all, if fewer were generated), else 'DISAGREE'. Quantized
    CELLs are compared with their F32 parent (gguf-f32) of the same engine, else of
    any engine; their length of agreement is reported ('info').
    """
    ok = [r for r in as_records(records) if r.ok and not r.is_perplexity]
    reference_of = references(ok, group)
    out = {}
    for record in ok:
        ids, result = record.first_token_ids or [], record.result
        assert result is not None, "only ok records are compared"
        reference = reference_of(record)
        row: dict[str, object] = {"token_ids_stable": all(rep.token_ids == ids for rep in result.repetitions),
                                  "agreement_of": len(ids)}
        full = record.cell.format in FULL_PRECISION
        if reference is None:
            row.update(agreement_reference=None, agreement_tokens=None,
                       agreement="reference" if full else "no F32 parent in this RUN")
        else:
            length = common_prefix(ids, reference.first_token_ids or [])
            need = min(MIN_AGREEMENT, len(ids))
            verdict = ("ok" if length >= need else "DISAGREE") if full else "info"
            row.update(agreement_reference=reference.cell_id, agreement_tokens=length, agreement=verdict)
        out[record.cell_id] = row
    return out


def references(ok: list[Record], group: Callable[[Record], tuple]) -> Callable[[Record], Record | None]:
    """Each ok record's reference among ``ok`` (records of one kind), None for a group's reference itself.

    ``group(record)`` says which CELLs are compared. An F32 CELL (gguf-f32, safetensors, onnx)
    is compared with its group's first llama.cpp gguf-f32 CELL, else its first F32 CELL; a
    quantized CELL with its F32 parent: the group's first gguf-f32 CELL of the same engine,
    else of any engine (None when there is none).
    """
    anchors: dict = {}  # group -> (reference of its F32 CELLs, is it llama.cpp gguf-f32)
    parents: dict = {}  # (group, engine or None) -> first gguf-f32 CELL
    for record in ok:
        cell, key = record.cell, group(record)
        if cell.format in FULL_PRECISION:
            preferred = cell.engine == "llama.cpp" and cell.format == "gguf-f32"
            current = anchors.get(key)
            if current is None or (preferred and not current[1]):
                anchors[key] = (record, preferred)
        if cell.format == "gguf-f32":
            parents.setdefault((key, cell.engine), record)
            parents.setdefault((key, None), record)

    def reference_of(record: Record) -> Record | None:
        cell, key = record.cell, group(record)
        if cell.format in FULL_PRECISION:
            anchor = anchors[key][0]
            return None if anchor is record else anchor
        return parents.get((key, cell.engine)) or parents.get((key, None))
    return reference_of


def group(record: Record) -> tuple[str, str]:
    """CELLs compared with each other: same model and workload."""
    return record.cell.model, record.cell.workload.key()
