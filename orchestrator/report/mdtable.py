"""Markdown pipe tables, written the way ``tabulate`` writes them, in linear time.

``tabulate`` guesses each cell's type by trying to parse it (tens of microseconds a
value): a TABLE of 10,000 CELLs and 50,000 repetitions took about a minute. Columns here
hold values of known types (str, int, float, None), so the same text is made directly:
strings left-aligned, numbers right-aligned on their decimal point, floats with
``floatfmt``, None as ``missingval``. Anything outside that (bools, strings that read as
numbers, non-ASCII text) is handed to ``tabulate`` itself, so the output never differs.
"""

from __future__ import annotations

import re

_NUMERIC_TEXT = re.compile(r"^\s*[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|infinity|nan)\s*$", re.I)
MIN_PADDING = 2  # tabulate's minimum padding of a column beyond its heading


def _kind(values: list) -> str | None:
    """'str', 'int', 'float' or 'empty' for a column, or None when only tabulate knows."""
    types = set(map(type, values)) - {type(None)}
    if types - {str, int, float}:
        return None  # bool, numpy scalars, dates...: tabulate decides
    if str in types:
        texts = {v for v in values if type(v) is str} - {""}
        if any(not t.isascii() or _NUMERIC_TEXT.match(t) or "\x1b" in t or "\n" in t for t in texts):
            return None
        if texts:
            return "str" if types == {str} else None
        types.discard(str)  # only empty strings: they do not decide the type
    if not types:
        return "empty"
    return "float" if float in types else "int"


def _afterpoint(text: str) -> int:
    """Characters after the decimal point (or exponent mark) of a number we formatted, -1 for none.

    Only for text made here (``format(float, floatfmt)``, ``str(int)`` or ``missingval``), where
    tabulate's rule reduces to this. Integers (``str(int)``) have neither: -1, the same for all,
    so pipe_table skips them unless ``missingval`` has a point.
    """
    pos = text.rfind(".")
    if pos < 0:
        pos = text.rfind("e")
    return len(text) - pos - 1 if pos >= 0 else -1


def pipe_table(headers: list[str], columns: list[list], floatfmt: str = ".4g", missingval: str = "-") -> str | None:
    """The pipe table of ``columns`` (one list of values per column), or None if tabulate must decide."""
    texts, aligns = [], []
    for header, values in zip(headers, columns):
        kind = _kind(values)
        if kind is None or not str(header).isascii():
            return None
        if kind in ("int", "float") and str in set(map(type, values)):
            return None  # an empty string among numbers: tabulate's own rules
        if _NUMERIC_TEXT.match(missingval):
            return None
        if kind == "float":
            cells = [missingval if v is None else format(v if type(v) is float else float(v), floatfmt)
                     for v in values]
        else:
            cells = [missingval if v is None else str(v) for v in values]
        width = max([len(str(header)) + MIN_PADDING] + [len(c) for c in cells])
        if kind in ("int", "float"):
            if kind == "float" or _afterpoint(missingval) >= 0:  # str(int) has no point: nothing to pad
                points = [_afterpoint(c) for c in cells]
                most = max(points)
                cells = [c + " " * (most - p) for c, p in zip(cells, points)]
            width = max([width] + [len(c) for c in cells])
            cells = [c.rjust(width) for c in cells]
            aligns.append("right")
        else:
            cells = [c.ljust(width) for c in cells]
            aligns.append("left")
        texts.append(cells)
    widths = [len(cells[0]) if cells else len(str(h)) + MIN_PADDING for cells, h in zip(texts, headers)]
    head = "| " + " | ".join(str(h).rjust(w) if a == "right" else str(h).ljust(w)
                             for h, w, a in zip(headers, widths, aligns)) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "right" else (":" + "-" * (w + 1))
                          for w, a in zip(widths, aligns)) + "|"
    body = ["| " + " | ".join(row) + " |" for row in zip(*texts)]
    return "\n".join([head, rule] + body)
