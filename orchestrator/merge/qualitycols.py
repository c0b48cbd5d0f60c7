"""The quality columns of the summary beside speed: which TABLE column each reads, and from which CELL (pure).

Quality is measured by other CELLs than speed: greedy-token agreement by the generation CELL
itself, perplexity (and, once runners measure them, its divergence from F32) by the
perplexity CELL of the same engine, options, model and format. Each column names the TABLE
column it reads; a column the TABLE does not have, or a CELL that did not measure it, is
null, never guessed. A new measurement (KL divergence, top-token agreement, ...) appears in
the summary by adding its TABLE column here; the three below that no runner writes yet are
shown as soon as one does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENERATION, PERPLEXITY = "generation", "perplexity"


@dataclass(frozen=True)
class QualityColumn:
    """One quality column: its key in the summary, its heading, which CELL measures it, the TABLE column it reads,
    how it is written, and whether a lower value is better (for charts and conclusions)."""

    key: str
    heading: str
    measured_by: str  # GENERATION: the CELL itself; PERPLEXITY: its engine x format's perplexity CELL
    column: str
    text: Callable[[Any, Mapping[str, Any]], str]
    lower_better: bool = True


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _percent(value, _row) -> str:
    return f"{value:+.2%}" if _number(value) else "-"


def _plain(value, _row) -> str:
    return f"{value:.5g}" if _number(value) else "-"


def _agreement(value, row) -> str:
    """'ref', '64/64', '12/64 DISAGREE' (as the TABLE's `agree` column), '-' when not measured."""
    if not isinstance(value, str):
        return "-"
    if value == "reference":
        return "ref"
    tokens, of = row.get("agreement_tokens"), row.get("agreement_of")
    if not _number(tokens) or not _number(of):
        return value
    text = f"{int(tokens)}/{int(of)}"
    return f"{text} DISAGREE" if value == "DISAGREE" else text


def _share(value, _row) -> str:
    return f"{value:.1%}" if _number(value) else "-"


COLUMNS = (
    QualityColumn("ppl", "PPL", PERPLEXITY, "perplexity", _plain),
    QualityColumn("ppl_vs_f32", "PPL vs F32", PERPLEXITY, "ppl_vs_reference", _percent),
    # Not measured by any runner yet (issue 28): read when the TABLE has them, null until then.
    QualityColumn("kl_mean", "KL mean", PERPLEXITY, "ppl_kl_mean", _plain),
    QualityColumn("kl_p99", "KL p99", PERPLEXITY, "ppl_kl_p99", _plain),
    QualityColumn("top_token", "top-token agree", PERPLEXITY, "ppl_top_token_agreement", _share, lower_better=False),
    QualityColumn("agree", "agree", GENERATION, "agreement", _agreement, lower_better=False),
)
BY_KEY = {c.key: c for c in COLUMNS}


def loss_over_f32(perplexity_row: Mapping[str, Any] | None) -> float | None:
    """A perplexity CELL's increase over F32: its relative difference from its reference or F32 parent; 0 for the
    reference itself (it is the F32 figure); None when not measured."""
    if perplexity_row is None:
        return None
    if perplexity_row.get("ppl_agreement") == "reference":
        return 0.0
    value = perplexity_row.get("ppl_vs_reference")
    return float(value) if isinstance(value, (int, float)) and _number(value) else None


def values(generation_row: Mapping[str, Any], perplexity_row: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every quality column's raw value for one generation CELL (None where not measured)."""
    out: dict[str, Any] = {}
    for column in COLUMNS:
        source = generation_row if column.measured_by == GENERATION else perplexity_row
        value = source.get(column.column) if source is not None else None
        out[column.key] = value if isinstance(value, str) or _number(value) else None
    out["ppl_vs_f32"] = loss_over_f32(perplexity_row)
    return out


def texts(found: Mapping[str, Any], generation_row: Mapping[str, Any]) -> dict[str, str]:
    """Every quality column as the summary writes it."""
    return {c.key: c.text(found.get(c.key), generation_row) for c in COLUMNS}


def shown(rows_values: Sequence[Mapping[str, Any]]) -> tuple[QualityColumn, ...]:
    """The columns some CELL measured (a column no CELL measured is left out, not shown empty)."""
    return tuple(c for c in COLUMNS if any(v.get(c.key) is not None for v in rows_values))
