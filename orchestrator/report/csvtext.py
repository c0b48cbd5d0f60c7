"""CSV of a TABLE, byte for byte as ``DataFrame.to_csv(index=False)`` writes it, in a third of the time.

pandas turns every float into text with numpy's ``repr`` one value at a time and writes
object columns row by row; for 10,000 CELLs x 86 columns that is most of a report's time.
Here the numbers of a column are turned into text at once by orjson (the shortest text that
reads back as the same float, as ``repr`` gives), and the rows are written by the standard
``csv`` module with pandas' own settings (minimal quoting, ``\\n``). Where the two could
differ, pandas' text is used: floats whose ``repr`` is in exponent form (below 1e-4 or from
1e16 up), and any column type other than float64, int64, bool and Python objects (the whole
frame then goes to pandas). tests/unit/test_csvtext.py compares the two on hostile values.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from orchestrator.files import terminal

if TYPE_CHECKING:
    import pandas as pd


def to_csv(frame: pd.DataFrame) -> str:
    """``frame.to_csv(index=False)``, made faster for the column types of this project's TABLEs; a text field
    a spreadsheet would read as a formula ('=', '+', '-', '@' first) gets a quote before it (terminal.cell)."""
    import numpy as np

    if not all(dtype in (np.float64, np.int64, np.bool_, object) for dtype in frame.dtypes):
        safe = frame.copy()
        for column in [c for c, kind in safe.dtypes.items() if kind == np.dtype(object)]:
            safe[column] = [terminal.cell(v) if isinstance(v, str) else v for v in safe[column]]
        safe.columns = [terminal.cell(str(c)) for c in safe.columns]
        return safe.to_csv(index=False)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([terminal.cell(str(c)) for c in frame.columns])
    writer.writerows(zip(*(_texts(frame.iloc[:, i]) for i in range(frame.shape[1]))))
    return buffer.getvalue()


def _texts(column: pd.Series) -> list[str]:
    import numpy as np
    import orjson

    values = column.to_numpy()
    if values.dtype == np.float64:
        texts = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",") if len(values) else []
        magnitude = np.abs(values)
        unusual = np.flatnonzero(((magnitude < 1e-4) & (magnitude > 0)) | (magnitude >= 1e16))
        for index in unusual.tolist():
            texts[index] = repr(float(values[index]))  # repr's exponent form ('1e-05'), as numpy writes it
        return ["" if text == "null" else text for text in texts]  # NaN: an empty field
    if values.dtype == np.int64:
        return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",") if len(values) else []
    if values.dtype == np.bool_:
        return ["True" if v else "False" for v in values.tolist()]
    return [_object_text(v) for v in values.tolist()]


def _object_text(value) -> str:
    kind = type(value)
    if kind is str:
        return terminal.cell(value)
    if value is None or (kind is float and value != value):
        return ""
    return terminal.cell(str(value))  # pandas writes other objects with str()
