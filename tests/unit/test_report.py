"""TABLE exporters, checked against golden files."""

import json
import os
from pathlib import Path

import pandas as pd

from orchestrator.merge import frames
from orchestrator.report import exporters
from tests.unit.records import record

GOLDEN = Path(__file__).parent / "golden"
FREQ = {"ghz": 2.5, "source": "test frequency"}


def table() -> pd.DataFrame:
    rows = [record("c-000000000001", threads=1, decode=(0.04, 0.05, 0.06)),
            record("c-000000000002", threads=2, fmt="gguf-q8_0", decode=(0.02, 0.025, 0.03), peak=30 * 2**20),
            record("c-000000000003", status="oom", reason="killed by the kernel's OOM killer", engine="testengine",
                   test_double=True)]
    return frames.cells(rows, FREQ)


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_markdown_table_matches_golden():
    check("cells.md", exporters.to_markdown(table()))


def test_csv_matches_golden():
    check("cells.csv", exporters.to_csv(table()))


def test_json_export_is_valid_and_null_for_missing():
    rows = json.loads(exporters.to_json(table()))
    assert len(rows) == 3
    assert rows[2]["status"] == "oom" and rows[2]["gen_tps_median"] is None
    assert rows[0]["gen_tps_median"] == 80.0


def test_every_exporter_is_in_the_table():
    assert set(exporters.EXPORTERS) == {"csv", "md", "json"}
    assert exporters.to_markdown(pd.DataFrame()) == "(no rows)\n"
