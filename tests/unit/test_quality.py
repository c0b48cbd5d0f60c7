"""Output validation: the reference CELL's decoded continuation reaches the report."""

from orchestrator.merge import frames
from orchestrator.report import exporters, quality
from tests.unit.records import record

FREQ = {"ghz": 2.5, "source": "test frequency"}


def records_with_text(text="Once upon a time there was a fox.\nThe end."):
    reference = record("c-000000000001")
    reference["result"]["extra"] = {"generated_text": {"text": text, "how": "llama_detokenize"}}
    other = record("c-000000000002", engine="onnxruntime", fmt="onnx")
    quantized = record("c-000000000003", fmt="gguf-q8_0")
    return [reference, other, quantized]


def test_only_the_reference_cell_is_shown_with_its_decoded_text():
    found = quality.reference_continuations(records_with_text())
    assert [(c.cell_id, c.engine, c.format, c.tokens) for c in found] == [("c-000000000001", "llama.cpp", "gguf-f32", 5)]
    assert found[0].text == "Once upon a time there was a fox.\nThe end." and found[0].how == "llama_detokenize"


def test_a_reference_whose_runner_does_not_decode_says_so():
    records = records_with_text()
    del records[0]["result"]["extra"]
    lines = quality.markdown(quality.reference_continuations(records))
    assert any("does not decode" in line for line in lines)


def test_the_markdown_page_quotes_every_line_of_the_continuation():
    records = records_with_text()
    run = {"run_id": "r", "matrix": {"path": "m.yaml"}, "status": "finished", "started_at": "t",
           "host": {"cpu": {"brand": "cpu", "logical_cpus": 2}, "fingerprint": "f", "docker": {"version": "1"},
                    "cgroup_version": 1, "frequency": FREQ}}
    page = exporters.markdown_page(run, frames.cells(records, FREQ), quality.reference_continuations(records))
    assert "## Reference continuations" in page
    assert "  > Once upon a time there was a fox.\n  > The end." in page
    assert "## Reference continuations" not in exporters.markdown_page(run, frames.cells(records, FREQ))
