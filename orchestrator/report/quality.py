"""Output validation beside speed: the reference CELLs' greedy continuations, decoded to text (pure).

merge.agreement says which CELL is each model-and-workload group's reference (the first
llama.cpp F32 CELL); its runner decodes the greedy token ids it generated
(``result.extra.generated_text``, llama.cpp's own detokenizer), so the report can show
what the model actually wrote next to how fast it wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.merge.agreement import agreement
from orchestrator.results.reader import as_records


@dataclass(frozen=True)
class Continuation:
    """The decoded greedy continuation of one reference CELL."""

    model: str
    workload: str
    prompt: str
    cell_id: str
    engine: str
    format: str
    tokens: int
    text: str | None  # None: the reference runner does not decode its tokens
    how: str | None


def generated_text(result: dict) -> tuple[str | None, str | None]:
    """(text, how it was decoded) from a RESULT, where its runner decoded its tokens."""
    item = (result.get("extra") or {}).get("generated_text")
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return None, None
    return item["text"], item.get("how")


def reference_continuations(records: list[dict], found: dict | None = None) -> list[Continuation]:
    """One Continuation per reference CELL (ok records only), in record order.

    ``found`` is ``merge.agreement(records)`` when the caller has it already.
    """

    records = as_records(records)
    found = agreement(records) if found is None else found
    out = []
    for record in records:
        if found.get(record.cell_id, {}).get("agreement") != "reference":
            continue
        cell = record.cell
        text, how = generated_text(record.result.doc)
        out.append(Continuation(model=cell.model, workload=cell.workload.name, prompt=cell.workload.prompt,
                                cell_id=record.cell_id, engine=cell.engine, format=cell.format,
                                tokens=len(record.first_token_ids), text=text, how=how))
    return out


def markdown(continuations: list[Continuation]) -> list[str]:
    """Report lines: each reference continuation as a quoted block (nothing when there are none)."""
    if not continuations:
        return []
    lines = ["## Reference continuations", "",
             "The greedy tokens of each reference CELL, decoded by its engine's own tokenizer. Every F32 CELL "
             "of the same model and workload must agree with these tokens on at least the first 32 (`agree`).", ""]
    for item in continuations:
        lines.append(f"- {item.model} / {item.workload} (`{item.cell_id}`, {item.engine} {item.format}, "
                     f"{item.tokens} tokens after the prompt {item.prompt!r}):")
        if item.text is None:
            lines += ["", "  (this engine's runner does not decode its tokens)", ""]
            continue
        lines.append("")
        lines += ["  > " + (line if line.strip() else "") for line in item.text.replace("\r", "").split("\n")]
        lines.append("")
    return lines
