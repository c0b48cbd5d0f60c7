"""Statistics, normalisation and merging of RESULTs into TABLEs."""

import math

import numpy as np
import pandas as pd
import pytest

from orchestrator import schemas
from orchestrator.merge import agreement, frames
from tests.unit.records import record

FREQ = {"ghz": 2.0, "source": "test"}


def test_made_up_records_match_the_schema():
    assert schemas.problems("record", record()) == []
    assert schemas.problems("record", record(status="oom", reason="killed")) == []


def test_summarise_statistics():
    stats = frames.summarise(pd.Series([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert stats["median"] == 3.0
    assert stats["min"] == 1.0 and stats["max"] == 100.0 and stats["n"] == 5
    assert stats["p90"] == pytest.approx(61.6)  # linear interpolation between 4 and 100
    assert stats["std"] == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1))


def test_summarise_one_value_and_none():
    one = frames.summarise(pd.Series([5.0]))
    assert one["median"] == 5.0 and one["n"] == 1 and math.isnan(one["std"])
    empty = frames.summarise(pd.Series([np.nan]))
    assert empty["n"] == 0 and math.isnan(empty["median"])


def test_repetition_rates_come_from_measured_times():
    reps = frames.repetitions([record(decode=(0.04,))])
    row = reps.iloc[0]
    assert row["gen_tps"] == pytest.approx(4 / 0.04)  # (5 generated - 1) / decode time
    assert row["prompt_tps"] == pytest.approx(4 / 0.01)
    assert row["ttft_ms"] == pytest.approx(11.0)
    assert row["itl_p50_ms"] == pytest.approx(10.0)


def test_itl_percentiles():
    rec = record(decode=(0.1,))
    rec["result"]["repetitions"][0]["inter_token_latencies_s"] = [0.01, 0.02, 0.03, 0.04]
    row = frames.repetitions([rec]).iloc[0]
    assert row["itl_p50_ms"] == pytest.approx(25.0)
    assert row["itl_p99_ms"] == pytest.approx(39.7)


def test_cells_table_has_stats_and_normalisation():
    table = frames.cells([record(threads=2, decode=(0.04, 0.05, 0.08))], FREQ)
    row = table.iloc[0]
    assert row["gen_tps_median"] == pytest.approx(80.0)  # 4 / 0.05
    assert row["gen_tps_n"] == 3
    assert row["gen_tps_per_core"] == pytest.approx(40.0)
    assert row["gen_tps_per_ghz_per_core"] == pytest.approx(20.0)
    assert row["cycles_per_token"] == pytest.approx(2 * 2e9 / 80.0)
    assert row["frequency_source"] == "test"
    assert row["peak_memory_mib_median"] == pytest.approx(50.0)
    assert row["cpu_seconds_median"] == pytest.approx(1.5)


def test_unknown_frequency_gives_null_with_reason():
    row = frames.cells([record()], {"ghz": None, "source": None, "reason": "no cpufreq"}).iloc[0]
    assert math.isnan(row["gen_tps_per_ghz_per_core"]) and math.isnan(row["cycles_per_token"])
    assert row["frequency_source"] == "unknown: no cpufreq"
    assert row["gen_tps_per_core"] > 0


def test_failed_cells_stay_in_the_table_without_numbers():
    table = frames.cells([record(), record(cell_id="c-000000000002", status="oom", reason="killed")], FREQ)
    assert list(table["status"]) == ["ok", "oom"]
    failed = table.iloc[1]
    assert failed["reason"] == "killed" and failed["gen_tps_n"] == 0 and math.isnan(failed["gen_tps_median"])
    assert math.isnan(failed["peak_memory_mib_median"])


def test_unmeasured_outside_values_are_null_not_zero():
    rec = record()
    rec["outside"]["peak_memory_bytes"] = None
    row = frames.cells([rec], FREQ).iloc[0]
    assert math.isnan(row["peak_memory_mib_median"]) and row["peak_memory_mib_n"] == 0


def with_ids(rec, ids):
    for rep in rec["result"]["repetitions"]:
        rep["token_ids"] = list(ids)
        rep["generated_tokens"] = len(ids)
        rep["inter_token_latencies_s"] = [0.01] * (len(ids) - 1)
    return rec


def test_agreement_of_f32_engines_and_quantized_formats():
    base = list(range(40))
    records = [
        with_ids(record("c-000000000001", fmt="gguf-f32"), base),
        with_ids(record("c-000000000002", fmt="safetensors", engine="transformers"), base[:35] + [99] * 5),
        with_ids(record("c-000000000003", fmt="safetensors", engine="candle"), base[:10] + [7] * 30),
        with_ids(record("c-000000000004", fmt="gguf-q8_0"), base[:20] + [5] * 20),
    ]
    found = agreement.agreement(records)
    assert found["c-000000000001"]["agreement"] == "reference"
    assert found["c-000000000002"] == {"token_ids_stable": True, "agreement_of": 40,
                                       "agreement_reference": "c-000000000001", "agreement_tokens": 35,
                                       "agreement": "ok"}
    assert found["c-000000000003"]["agreement"] == "DISAGREE" and found["c-000000000003"]["agreement_tokens"] == 10
    assert found["c-000000000004"]["agreement"] == "info" and found["c-000000000004"]["agreement_tokens"] == 20
    table = frames.cells(records, FREQ)
    assert list(table["agreement"]) == ["reference", "ok", "DISAGREE", "info"]


def test_agreement_needs_all_tokens_when_fewer_than_32():
    records = [with_ids(record("c-000000000001"), [1, 2, 3, 4, 5]),
               with_ids(record("c-000000000002", engine="onnxruntime", fmt="onnx"), [1, 2, 3, 4, 6])]
    assert agreement.agreement(records)["c-000000000002"]["agreement"] == "DISAGREE"


def test_quantized_without_parent_and_unstable_ids():
    rec = record("c-000000000009", fmt="gguf-q4_0")
    rec["result"]["repetitions"][1]["token_ids"] = [9, 9, 9, 9, 9]
    found = agreement.agreement([rec])["c-000000000009"]
    assert found["agreement"] == "no F32 parent in this RUN" and found["token_ids_stable"] is False


def test_common_prefix():
    assert agreement.common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert agreement.common_prefix([], [1]) == 0


def test_llama_cpp_f32_is_the_reference_even_when_it_comes_later():
    base = list(range(40))
    records = [with_ids(record("c-000000000001", fmt="safetensors", engine="transformers"), base),
               with_ids(record("c-000000000002", fmt="onnx", engine="onnxruntime"), base),
               with_ids(record("c-000000000003", fmt="gguf-f32"), base),
               with_ids(record("c-000000000004", fmt="gguf-q8_0", engine="candle"), base[:3] + [0] * 37)]
    found = agreement.agreement(records)
    assert found["c-000000000003"]["agreement"] == "reference"
    assert found["c-000000000001"]["agreement_reference"] == "c-000000000003"
    assert found["c-000000000004"]["agreement_reference"] == "c-000000000003"  # any engine's F32 parent


def test_agreement_groups_by_model_and_workload():
    a = with_ids(record("c-000000000001"), list(range(40)))
    b = with_ids(record("c-000000000002", fmt="safetensors", engine="transformers"), [7] * 40)
    b["cell"]["workload"]["name"] = "other"
    found = agreement.agreement([a, b])
    assert found["c-000000000002"]["agreement"] == "reference"  # alone in its group


def test_tables_equal_cells_and_repetitions():
    records = [record(), record("c-000000000002", threads=2), record("c-000000000003", status="oom", reason="x")]
    cells, reps = frames.tables(records, FREQ)
    pd.testing.assert_frame_equal(cells, frames.cells(records, FREQ))
    pd.testing.assert_frame_equal(reps, frames.repetitions(records))
    assert len(reps) == 6
