"""Per-core and per-GHz figures divide by what each CELL used, and say so; the ITL percentile method is named
(known answers)."""

import pytest

from orchestrator.merge import frames
from orchestrator.report import exporters, htmlreport
from orchestrator.stats import describe
from tests.unit import records, runfolder

HOST = {"ghz": 2.5, "source": "cpufreq cpuinfo_max_freq (sysfs)"}
SAMPLED = {"ghz": 3.0, "source": "sampled: mean of 40 readings of scaling_cur_freq over CPUs 1 during the CELL's "
                                 "batches", "samples": 40}


def test_each_row_uses_its_own_frequency_and_names_it():
    measured = records.with_rounds(records.record("c-000000000001", decode=(0.04, 0.04, 0.04)), [1, 1, 1], SAMPLED)
    plain = records.record("c-000000000002", decode=(0.04, 0.04, 0.04))  # no sampling: the host's frequency
    table = frames.cells([measured, plain], HOST)
    first, second = table.to_dict("records")
    assert first["gen_tps_median"] == pytest.approx(100.0)  # 4 tokens / 0.04 s
    assert (first["frequency_ghz"], first["frequency_from"]) == (3.0, "sampled")
    assert first["gen_tps_per_ghz_per_core"] == pytest.approx(100 / 3.0)
    assert first["cycles_per_token"] == pytest.approx(1 * 3.0e9 / 100)
    assert (second["frequency_ghz"], second["frequency_from"]) == (2.5, "host")
    assert second["gen_tps_per_ghz_per_core"] == pytest.approx(40.0)
    text = exporters.to_markdown(table)
    head, rule, row1, row2 = text.splitlines()[:4]
    columns = [c.strip() for c in head.strip("|").split("|")]
    assert [c.strip() for c in row1.strip("|").split("|")][columns.index("GHz")] == "3"
    assert [c.strip() for c in row1.strip("|").split("|")][columns.index("GHz from")] == "sampled"
    assert [c.strip() for c in row2.strip("|").split("|")][columns.index("GHz from")] == "host"


def test_the_page_header_names_no_frequency_the_rows_did_not_use():
    lines = "\n".join(exporters.normalisation_lines(HOST))
    assert "each row divides by its own frequency" in lines
    assert "The host's own frequency at the start of the RUN: 2.5 GHz" in lines
    page = exporters.markdown_page(runfolder.run_document([]), frames.cells([records.record()], HOST))
    assert "frequency for per-GHz figures" not in page and "each row divides by its own frequency" in page


def test_per_core_divides_by_the_threads_used_where_they_differ():
    rec = records.record("c-000000000001", threads=4, decode=(0.04, 0.04, 0.04))
    rec["threads"]["used"] = 2  # the engine ran two of the four threads it was given
    (row,) = frames.cells([rec], HOST).to_dict("records")
    assert row["per_core_threads"] == 2 and row["per_core_basis"] == "threads used (2 of 4 requested)"
    assert row["gen_tps_per_core"] == pytest.approx(50.0)
    assert row["gen_tps_per_ghz_per_core"] == pytest.approx(20.0)
    assert row["cycles_per_token"] == pytest.approx(2 * 2.5e9 / 100)
    same = records.record("c-000000000002", threads=2, decode=(0.04, 0.04, 0.04))
    (row,) = frames.cells([same], HOST).to_dict("records")
    assert (row["per_core_threads"], row["per_core_basis"]) == (2, "threads requested (= used)")
    assert frames.per_core_divisor(3, None) == (3, "threads requested (threads used unknown)")
    assert frames.per_core_divisor(3, 0) == (3, "threads requested (threads used unknown)")


def test_itl_percentiles_are_numpy_linear_and_the_method_is_named_where_the_columns_are_defined():
    ordered = [1.0, 2.0, 3.0, 4.0]
    # type 7: rank (n - 1) q = 3 x 0.95 = 2.85 -> 3 + 0.85 x (4 - 3)
    assert describe.percentile(ordered, 95) == pytest.approx(3.85)
    assert describe.percentile(ordered, 50) == pytest.approx(2.5)
    assert describe.percentile(ordered, 99) == pytest.approx(3.97)
    assert "Hyndman and Fan's type 7" in describe.PERCENTILE_METHOD
    rec = records.record("c-000000000001", decode=(0.04,))
    rec["result"]["repetitions"][0]["inter_token_latencies_s"] = [0.001, 0.002, 0.003, 0.004]
    (row,) = frames.cells([rec], HOST).to_dict("records")
    assert row["itl_p95_ms_median"] == pytest.approx(3.85) and row["itl_p99_ms_median"] == pytest.approx(3.97)
    assert row["itl_percentile_method"] == describe.PERCENTILE_METHOD
    page = exporters.markdown_page(runfolder.run_document([rec]), frames.cells([rec], HOST))
    assert f"ITL p50/p95/p99: percentiles of each repetition's inter-token latencies by {describe.PERCENTILE_METHOD}" \
        in page
    assert describe.PERCENTILE_METHOD in htmlreport.TABLE_NOTE
