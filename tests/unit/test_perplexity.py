"""The perplexity workload on the orchestrator's side: MATRIX, PLAN, job, judging and the TABLE's columns."""

import copy
import json
import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import schemas
from orchestrator.errors import InputError
from orchestrator.execute import cellrun
from orchestrator.matrix import matrixfile
from orchestrator.matrix.matrixfile import Workload
from orchestrator.merge import frames
from orchestrator.models.texts import EvalIds
from orchestrator.plan import planner
from orchestrator.report import exporters, writer
from orchestrator.results import perplexity
from orchestrator.results.judge import consistency_problems
from tests.unit import records
from tests.unit.test_execute import INFO, FakeDocker, settings

PPL = Workload("ppl", None, None, kind="perplexity", text="kjv-genesis-1", context=8, stride=4)

MATRIX = """\
version: 1
engines: [{name: llama.cpp}, {name: llama-server}, {name: candle}]
models: [{id: tinystories-15m, formats: [gguf-f32]}]
threads: [1]
workloads:
  - {name: p4-g4, prompt: "Once upon a time", prompt_tokens: 4, gen_tokens: 4}
  - {name: ppl, kind: perplexity, text: kjv-genesis-1, context: 256, stride: 128}
"""


@given(st.integers(2, 400), st.integers(2, 64), st.data())
def test_every_id_after_the_first_is_scored_once_with_enough_history(n, context, data):
    stride = data.draw(st.integers(1, context - 1))
    found = perplexity.windows(n, context, stride)
    scored = [i for start, end, first in found for i in range(first, end)]
    assert scored == list(range(1, n))
    assert found[-1][1] == n and all(end < n for _, end, _ in found[:-1])
    for start, end, first in found[1:]:
        assert end - start <= context and first - start >= context - stride


def test_known_windows():
    assert perplexity.windows(10, 4, 2) == [(0, 4, 1), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    assert perplexity.windows(3, 8, 4) == [(0, 3, 1)]
    assert perplexity.windows(5, 2, 1) == [(0, 2, 1), (1, 3, 2), (2, 4, 3), (3, 5, 4)]


def test_a_perplexity_workload_gets_only_the_engines_that_run_it():
    parsed = matrixfile.parse(MATRIX)
    cells = planner.expand(parsed)
    kinds = {(c.engine, c.workload.kind) for c in cells}
    assert ("llama-server", "perplexity") not in kinds and ("llama-server", "generate") in kinds
    assert {("llama.cpp", "perplexity"), ("candle", "perplexity")} <= kinds
    ppl = next(c for c in cells if c.workload.kind == "perplexity")
    assert ppl.coordinates()["workload"] == {"name": "ppl", "kind": "perplexity", "text": "kjv-genesis-1",
                                             "context": 256, "stride": 128}


def test_a_generation_workload_keeps_its_coordinates_and_cell_id():
    # The shape (and so the CELL id) of a generation workload is what it was before perplexity existed.
    generate = Workload("w", "Once upon a time", 5, 4)
    assert generate.to_json() == {"name": "w", "prompt": "Once upon a time", "gen_tokens": 5, "prompt_tokens": 4}
    assert Workload.from_json(generate.to_json()) == generate
    assert Workload.from_json(PPL.to_json()) == PPL


@pytest.mark.parametrize("line, needle", [
    ("  - {name: ppl, kind: perplexity, text: no-such-text, context: 256, stride: 128}", "unknown evaluation text"),
    ("  - {name: ppl, kind: perplexity, text: kjv-genesis-1, context: 64, stride: 64}", "is not below context"),
    ("  - {name: ppl, kind: perplexity, text: kjv-genesis-1, context: 100000, stride: 128}", "exceeds the context"),
    ("  - {name: ppl, kind: perplexity, text: kjv-genesis-1, context: 64}", "'stride' is a required property"),
    ("  - {name: ppl, kind: perplexity, text: kjv-genesis-1, context: 64, stride: 8, gen_tokens: 4}", "workloads[1]"),
    ("  - {name: ppl, prompt: x, gen_tokens: 4, text: kjv-genesis-1}", "workloads[1]"),
])
def test_bad_perplexity_workloads_are_refused_with_their_line(line, needle):
    text = MATRIX.rsplit("\n", 2)[0] + "\n" + line + "\n"
    with pytest.raises(InputError) as caught:
        matrixfile.parse(text, "m.yaml")
    message = str(caught.value)
    assert needle in message and "m.yaml:7" in message


def test_a_matrix_without_an_engine_for_perplexity_is_refused():
    text = MATRIX.replace("engines: [{name: llama.cpp}, {name: llama-server}, {name: candle}]",
                          "engines: [{name: llama-server}]")
    with pytest.raises(InputError, match="no engine in this MATRIX runs a perplexity workload"):
        matrixfile.parse(text, "m.yaml")


def ppl_settings(tmp_path):
    base = settings(tmp_path)
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"text": "kjv-genesis-1", "tokenizer": "t", "ids": list(range(10))}))
    return replace(base, cell=replace(base.cell, workload=PPL),
                   eval_ids=EvalIds("kjv-genesis-1", ids, "a" * 64, 10))


def ppl_result(job, nll=(2.0, 2.0), windows=2, scored=9):
    workload = job["workload"]
    return {"schema_version": 1, "cell_id": job["cell_id"],
            "engine": {"name": "llama.cpp", "version": "v9", "build": {}}, "measurement_boundary": "in-process",
            "threads": {"requested": job["threads"], "how": "t", "engine_reported": job["threads"],
                        "per_thread": records.per_thread(busy=job["threads"])},
            "load_time_s": 0.1, "peak_rss_bytes": 1000,
            "perplexity": {"text": workload["text"], "ids_sha256": workload["ids_sha256"], "tokens": 10,
                           "context": workload["context"], "stride": workload["stride"], "windows": windows,
                           "scored_tokens": scored, "mean_nll": nll[0], "perplexity": math.exp(nll[0])},
            "repetitions": [{"index": i, "time_s": 0.5, "windows": windows, "scored_tokens": scored, "mean_nll": v}
                            for i, v in enumerate(nll)],
            "extra": {}, "unmeasured": {}}


def test_the_job_names_the_ids_copied_into_the_job_folder(tmp_path):
    docker = FakeDocker(lambda job: ppl_result(job))
    done = cellrun.run_cell(docker, INFO, ppl_settings(tmp_path), tmp_path / "cell")
    job = json.loads(docker.jobs[0])
    assert schemas.problems("cell", job) == []
    assert job["workload"] == {"name": "ppl", "kind": "perplexity", "text": "kjv-genesis-1", "ids_path": "/job/ids.json",
                               "ids_sha256": "a" * 64, "context": 8, "stride": 4}
    assert json.loads((tmp_path / "cell" / "job" / "ids.json").read_text())["ids"] == list(range(10))
    assert done["status"] == "ok", done["reason"]
    assert schemas.problems("record", done) == []


@pytest.mark.parametrize("change, needle", [
    (lambda r: r["perplexity"].update(windows=3), "give 2 windows and 9 scored ids"),
    (lambda r: r["repetitions"][1].update(mean_nll=2.1), "differs from repetition 0"),
    (lambda r: r["perplexity"].update(perplexity=5.0), "is not exp(mean_nll)"),
    (lambda r: r["perplexity"].update(ids_sha256="b" * 64), "perplexity.ids_sha256"),
])
def test_an_inconsistent_perplexity_result_is_named(tmp_path, change, needle):
    job = cellrun.job_document(ppl_settings(tmp_path))
    good = ppl_result(job)
    assert consistency_problems(job, good) == []
    bad = copy.deepcopy(good)
    change(bad)
    assert any(needle in p for p in consistency_problems(job, bad))


def ppl_record(cell_id, engine, fmt, value):
    record = records.record(cell_id=cell_id, engine=engine, fmt=fmt)
    record["cell"]["workload"] = PPL.to_json()
    nll = math.log(value)
    result = record["result"]
    del result["prompt_token_ids"]
    result["perplexity"] = {"text": "kjv-genesis-1", "ids_sha256": "a" * 64, "tokens": 10, "context": 8, "stride": 4,
                            "windows": 2, "scored_tokens": 9, "mean_nll": nll, "perplexity": value}
    result["repetitions"] = [{"index": i, "time_s": t, "windows": 2, "scored_tokens": 9, "mean_nll": nll}
                             for i, t in enumerate((0.5, 0.3, 0.4))]
    return record


def test_the_table_has_perplexity_and_its_agreement():
    found = [ppl_record("c-000000000001", "llama.cpp", "gguf-f32", 20.0),
             ppl_record("c-000000000002", "candle", "safetensors", 20.05),
             ppl_record("c-000000000003", "onnxruntime", "onnx", 20.5),
             ppl_record("c-000000000004", "llama.cpp", "gguf-q4_0", 22.0),
             records.record(cell_id="c-000000000005")]
    for record in found[:4]:
        assert schemas.problems("record", record) == []
    table = frames.cells(found, {"ghz": None, "reason": "test"}).set_index("cell_id")
    assert table.loc["c-000000000001", "ppl_agreement"] == "reference"
    assert table.loc["c-000000000002", "ppl_agreement"] == "ok"
    assert table.loc["c-000000000002", "ppl_vs_reference"] == pytest.approx(0.0025)
    assert table.loc["c-000000000003", "ppl_agreement"] == "DISAGREE"
    assert table.loc["c-000000000004", "ppl_agreement"] == "info"
    assert table.loc["c-000000000004", "ppl_vs_reference"] == pytest.approx(0.1)
    assert table.loc["c-000000000001", "ppl_tps_median"] == pytest.approx(9 / 0.4)
    assert math.isnan(table.loc["c-000000000001", "gen_tps_median"])
    assert table.loc["c-000000000005", "agreement"] == "reference"  # the generation CELL keeps its own agreement
    text = exporters.to_markdown(table.reset_index())
    header = [h.strip() for h in text.splitlines()[0].split("|")]
    assert header.index("PPL vs ref") == header.index("PPL") + 1
    assert "+2.50% DISAGREE" in text and "+10.00% vs F32" in text and "+0.25%" in text
    assert frames.repetitions(found).shape[0] == 3  # only the generation CELL's repetitions


def test_report_html_charts_perplexity_and_names_a_disagreement():
    from orchestrator.report import htmlreport

    found = [ppl_record("c-000000000001", "llama.cpp", "gguf-f32", 20.0),
             ppl_record("c-000000000003", "onnxruntime", "onnx", 20.5), records.record(cell_id="c-000000000005")]
    frequency = {"ghz": None, "reason": "test"}
    table = frames.tables(writer.slimmed(found), frequency, frames.derived_columns(found, frequency))[0]
    rows = table.to_dict("records")
    figures = {f.id for f in htmlreport.charts.perplexity_figure(rows)}
    assert figures == {"chart-perplexity"}
    assert [f.id for f in htmlreport.charts.speed_figures(rows)]  # the generation CELL still has its charts
    assert any("+2.50% from c-000000000001" in w for w in htmlreport.warnings(
        {"host": {"frequency": {}}, "counts": {}}, writer.slimmed(found), rows))


def test_a_finished_perplexity_cell_has_a_headline():
    from orchestrator.execute import progress

    assert progress.headline(ppl_record("c-000000000001", "llama.cpp", "gguf-f32", 20.0)) == \
        "perplexity 20 over 9 ids"


def test_report_html_table_shows_perplexity_once_with_its_verdict():
    from orchestrator.report import htmlreport

    found = [ppl_record("c-000000000001", "llama.cpp", "gguf-f32", 20.0),
             ppl_record("c-000000000003", "onnxruntime", "onnx", 20.5), records.record(cell_id="c-000000000005")]
    frequency = {"ghz": None, "reason": "test"}
    table = frames.tables(writer.slimmed(found), frequency, frames.derived_columns(found, frequency))[0]
    html = htmlreport._table(htmlreport._rows(table))
    heads = html[:html.index("</thead>")]
    assert heads.count(">PPL<") == 1 and heads.index(">PPL<") < heads.index(">PPL vs ref<")
    assert heads.index(">status<") < heads.index(">agree<")
    assert '<td class="agree-DISAGREE">+2.50% DISAGREE</td>' in html and '<td class="agree-reference">ref</td>' in html


def test_an_evaluation_time_no_cell_can_run_is_implausible(tmp_path):
    from orchestrator.results.judge import plausibility_problems

    result = ppl_result(cellrun.job_document(ppl_settings(tmp_path)))
    assert plausibility_problems(result) == []
    result["repetitions"][1]["time_s"] = 10 ** 9
    assert any("repetition 1: time_s is 1000000000 s, longer than any cell may run" in p
               for p in plausibility_problems(result))


def test_a_text_needs_its_packages_for_this_architecture():
    from orchestrator.errors import ModelError
    from orchestrator.models import texts

    text = texts.get("kjv-genesis-1")
    assert [p.arch for p in text.packages_for("amd64")] == ["all", "amd64"]
    assert [p.arch for p in text.packages_for("arm64")] == ["all", "arm64"]
    with pytest.raises(ModelError, match="no package for this machine's architecture riscv64"):
        text.packages_for("riscv64")
