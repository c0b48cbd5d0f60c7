"""Engine.supports: a MATRIX asking an ENGINE for a model or format it cannot run is refused at validation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from orchestrator.engines import ENGINES, smallmind
from orchestrator.engines.base import runs_everything
from orchestrator.errors import InputError
from orchestrator.matrix import matrixfile
from orchestrator.models import catalogue
from orchestrator.plan import planner
from tests.unit.test_cli import orchestrate

SMALLMIND = ENGINES["smallmind"]
TINY = catalogue.get("tinystories-15m")
GPT2_SMALL_ARCH = {**smallmind.GPT2_SMALL, "rope_theta": 10000.0, "norm_eps": 1e-5, "tied_output": True}


def entry(family, **arch) -> catalogue.Entry:
    """A made-up catalogue entry of this family and shapes (the catalogue has no GPT-2 entry today)."""
    return catalogue.Entry(id="made-up", formats=("gguf-f32",), family=family,
                           architecture_json=json.dumps(arch, sort_keys=True))


MATRIX = """\
version: 1
engines:
  - name: smallmind{OPTIONS}
models:
  - id: tinystories-15m
    formats: [{FORMATS}]
threads: [1]
workloads:
  - name: short
    prompt: "Once upon a time"
    gen_tokens: 8
"""


def smallmind_matrix(formats="gguf-f32", options="", extra=""):
    return MATRIX.replace("{OPTIONS}", options).replace("{FORMATS}", formats) + extra


def test_every_other_engine_runs_whatever_it_reads():
    for name, engine in ENGINES.items():
        if name != "smallmind":
            assert engine.supports is runs_everything
            assert engine.supports(TINY, "gguf-f32", {}) is None


def test_the_public_path_refuses_a_llama_model_and_names_the_path_that_runs_it():
    reason = SMALLMIND.supports(TINY, "gguf-f32", {})
    assert "builds a GPT-2-shaped model" in reason and "path: run-gguf" in reason
    assert SMALLMIND.supports(TINY, "gguf-f32", {"path": "public"}) == reason


@pytest.mark.parametrize("fmt", ["gguf-f32", "gguf-f16", "gguf-q8_0"])
def test_the_run_gguf_path_runs_llama_models_in_f32_f16_and_q8_0(fmt):
    for model_id in ("tinystories-15m", "smollm2-135m", "tinyllama-1.1b"):
        assert SMALLMIND.supports(catalogue.get(model_id), fmt, {"path": "run-gguf"}) is None


@pytest.mark.parametrize("path", ["public", "run-gguf"])
def test_q4_formats_are_refused_on_both_paths_with_the_reason(path):
    assert "offset by 8" in SMALLMIND.supports(TINY, "gguf-q4_0", {"path": path})
    q4_1 = SMALLMIND.supports(catalogue.get("smollm2-135m-instruct"), "gguf-q4_1", {"path": path})
    assert ("no Q4_1 decoder" if path == "run-gguf" else "out of place") in q4_1


def test_the_public_path_runs_gpt2_small_only():
    assert SMALLMIND.supports(entry("gpt2", **GPT2_SMALL_ARCH), "gguf-q8_0", {"path": "public"}) is None
    medium = entry("gpt2", **{**GPT2_SMALL_ARCH, "hidden_size": 1024, "num_layers": 24, "num_heads": 16,
                              "num_kv_heads": 16, "ffn_size": 4096})
    reason = SMALLMIND.supports(medium, "gguf-f32", {"path": "public"})
    assert "always builds GPT-2 small" in reason and "hidden_size 1024 (builds 768)" in reason
    assert "num_layers 24 (builds 12)" in reason


def test_the_run_gguf_path_refuses_gpt2_and_shapes_its_config_rejects():
    assert "leaves the fused QKV" in SMALLMIND.supports(entry("gpt2", **GPT2_SMALL_ARCH), "gguf-f32",
                                                        {"path": "run-gguf"})
    odd = entry("llama", **{**json.loads(TINY.architecture_json), "num_kv_heads": 4})  # 6 heads, 4 KV heads
    assert "6 heads and 4 KV heads" in SMALLMIND.supports(odd, "gguf-f32", {"path": "run-gguf"})


def test_a_model_without_a_declared_architecture_is_refused():
    unknown = catalogue.Entry(id="downloaded", formats=("gguf-f32",))
    assert "gives no architecture" in SMALLMIND.supports(unknown, "gguf-f32", {"path": "run-gguf"})


def test_validation_refuses_the_unsupported_cell_at_the_engine_line_with_the_reason():
    with pytest.raises(InputError) as caught:
        planner.expand(matrixfile.parse(smallmind_matrix(), "m.yaml"))
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == ("engines[0]", 3)
    assert problem.message.startswith("engine smallmind cannot run model 'tinystories-15m' as gguf-f32: ")
    assert "GPT-2-shaped" in problem.message
    assert "{engine: smallmind, model: tinystories-15m, format: gguf-f32}" in problem.allowed


def test_each_refused_format_is_named_once_and_a_supported_one_passes():
    options = "\n    options: {path: run-gguf}"
    with pytest.raises(InputError) as caught:
        planner.expand(matrixfile.parse(smallmind_matrix("gguf-f32, gguf-q4_0, gguf-q8_0", options), "m.yaml"))
    (problem,) = caught.value.problems
    assert "as gguf-q4_0:" in problem.message
    assert len(planner.expand(matrixfile.parse(smallmind_matrix("gguf-f32, gguf-q8_0", options), "m.yaml"))) == 2


def test_an_exclude_rule_removes_the_refused_cell():
    options = "\n    options: {path: run-gguf}"
    kept = matrixfile.parse(smallmind_matrix("gguf-f32, gguf-q4_0", options,
                                             "exclude:\n  - {engine: smallmind, format: gguf-q4_0}\n"), "m.yaml")
    assert kept.models[0].formats == ("gguf-f32", "gguf-q4_0")
    assert [c.format for c in planner.expand(kept)] == ["gguf-f32"]


def test_the_hook_serves_any_engine(monkeypatch):
    refusing = replace(ENGINES["candle"], supports=lambda e, fmt, opts: "no" if fmt == "gguf-f16" else None)
    monkeypatch.setitem(ENGINES, "candle", refusing)
    text = smallmind_matrix().replace("name: smallmind", "name: candle").replace("gguf-f32", "gguf-f32, gguf-f16")
    with pytest.raises(InputError, match="engine candle cannot run model 'tinystories-15m' as gguf-f16: no"):
        planner.expand(matrixfile.parse(text, "m.yaml"))


def test_orchestrate_validate_exits_2_with_the_reason(tmp_path):
    path = tmp_path / "smallmind.yaml"
    path.write_text(smallmind_matrix())
    done = orchestrate("validate", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert f"{path}:3: engines[0]: engine smallmind cannot run model 'tinystories-15m' as gguf-f32" in done.stderr
    assert "GPT-2-shaped model" in done.stderr
    path.write_text(smallmind_matrix(options="\n    options: {path: run-gguf}"))
    done = orchestrate("validate", str(path))
    assert done.returncode == 0 and "valid MATRIX, 1 cells" in done.stdout
