"""ENGINE options declared as JSON Schemas: validation, messages and the `engines` listing."""

import pytest

from orchestrator.engines import ENGINES, options
from orchestrator.errors import InputError, UsageError
from orchestrator.matrix import matrixfile

LLAMA = ENGINES["llama.cpp"].options


def test_every_adapter_declares_a_closed_object_schema():
    for engine in ENGINES.values():
        assert engine.options["type"] == "object" and engine.options["additionalProperties"] is False
        for prop in engine.options["properties"].values():
            assert prop.get("description") and "default" in prop


def test_valid_options_have_no_problems():
    assert options.problems(LLAMA, {"llama_bench": True, "kv_cache_type": "f32"}) == []
    assert options.problems(LLAMA, {}) == []


def test_unknown_option_names_every_allowed_one():
    (found,) = options.problems(LLAMA, {"kv_cache": "f32"})
    assert found.option == "kv_cache" and "unknown option 'kv_cache'" in found.message
    assert "llama_bench (a boolean)" in found.allowed and "kv_cache_type (one of f16, f32)" in found.allowed


def test_wrong_type_names_the_type():
    (found,) = options.problems(LLAMA, {"llama_bench": "yes"})
    assert found.message == "option 'llama_bench' must be a boolean, got \"yes\" (a string)"
    (found,) = options.problems(LLAMA, {"load_mode": "fast"})
    assert "one of auto, none, mmap" in found.message


def test_an_engine_without_options_refuses_any():
    (found,) = options.problems(ENGINES["candle"].options, {"threads": 2})
    assert "unknown option" in found.message and "takes none" in found.allowed


def test_check_raises_a_usage_error():
    with pytest.raises(UsageError, match="unknown option 'x'"):
        options.check("llama.cpp", LLAMA, {"x": 1})


def test_onnxruntime_declares_graph_optimization_level():
    assert options.problems(ENGINES["onnxruntime"].options, {"graph_optimization_level": "basic"}) == []


def test_describe_lists_type_default_and_meaning():
    rows = dict(options.describe(LLAMA))
    assert rows["llama_bench"].startswith("a boolean, default false: also run llama-bench")


MATRIX = """\
version: 1
engines:
  - name: llama.cpp
    options: {OPTIONS}
models:
  - id: tinystories-15m
    formats: [gguf-f32]
threads: [1]
workloads:
  - name: short
    prompt: "Once upon a time"
    gen_tokens: 8
"""


@pytest.mark.parametrize("given,words,allowed", [
    ("{kv_cache: f32}", "unknown option 'kv_cache'", "llama_bench (a boolean); load_mode (one of auto"),
    ('{llama_bench: "yes"}', "must be a boolean, got \"yes\" (a string)", "a boolean"),
])
def test_validate_names_line_and_allowed_options(given, words, allowed):
    with pytest.raises(InputError) as caught:
        matrixfile.parse(MATRIX.replace("{OPTIONS}", given), "m.yaml")
    (problem,) = caught.value.problems
    assert problem.line == 4 and words in problem.message and problem.allowed.startswith(allowed)


def test_every_declared_options_schema_is_a_valid_json_schema():
    import jsonschema

    from orchestrator.engines import ENGINES

    for engine in ENGINES.values():  # declare() does not check at import: the command line starts faster
        jsonschema.Draft202012Validator.check_schema(engine.options)
