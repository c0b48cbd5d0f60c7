"""MATRIX loading and validation: every problem reported with its path and line."""

import pytest

from orchestrator.errors import InputError
from orchestrator.matrix import matrixfile


def problems_of(text: str):
    with pytest.raises(InputError) as caught:
        matrixfile.parse(text, "m.yaml")
    return caught.value.problems


def test_good_matrix_parses_with_defaults(good_matrix):
    loaded = matrixfile.parse(good_matrix, "m.yaml")
    assert loaded.threads == (1, 2)
    assert loaded.engines[0].name == "llama.cpp"
    assert loaded.models[0].formats == ("gguf-f32", "gguf-q8_0")
    assert loaded.repetitions == 5 and loaded.warmup == 1
    assert loaded.placement.policy == "reserve-one"
    assert loaded.memory_limit_bytes() == 4 * 1024**3


def test_repository_default_matrix_is_valid():
    from tests.conftest import ROOT

    loaded = matrixfile.load(ROOT / "matrix.yaml")
    assert set(loaded.threads) == {1, 2}
    assert {"gguf-f32", "gguf-q8_0", "gguf-q4_0"} <= set(loaded.models[0].formats)
    assert {e.name for e in loaded.engines} == {"llama.cpp", "onnxruntime", "transformers", "candle"}


@pytest.mark.parametrize("old,new,path,line,words", [
    ("version: 1", "version: 2", "version", 1, "1 was expected"),
    ("  - name: llama.cpp", "  - name: vllm", "engines[0].name", 3, "unknown engine 'vllm'"),
    ("  - id: tinystories-15m", "  - id: gpt-7", "models[0].id", 5, "unknown model 'gpt-7'"),
    ("[gguf-f32, gguf-q8_0]", "[gguf-f32, gguf-q5_k]", "models[0].formats[1]", 6, "no format 'gguf-q5_k'"),
    ("threads: [1, 2]", "threads: [1, 0]", "threads[1]", 7, "less than the minimum"),
    ("threads: [1, 2]", "threads: [1, two]", "threads[1]", 7, "not of type 'integer'"),
    ("threads: [1, 2]", "threads: []", "threads", 7, "should be non-empty"),
    ("threads: [1, 2]", "threads: [1, 1]", "threads", 7, "non-unique"),
    ('    prompt: "Once upon a time"', '    prompt: ""', "workloads[0].prompt", 10, "should be non-empty"),
    ("    gen_tokens: 8", "    gen_tokens: 1", "workloads[0].gen_tokens", 12, "less than the minimum of 2"),
    ("    gen_tokens: 8", "    gen_tokens: 300", "workloads[0]", 9, "exceeds the context length 256"),
    ("    prompt_tokens: 16", "    prompt_tokens: many", "workloads[0].prompt_tokens", 11, "not of type"),
    ("  - name: short", "  - name: 'bad name'", "workloads[0].name", 9, "does not match"),
])
def test_each_bad_value_is_reported_with_path_and_line(good_matrix, old, new, path, line, words):
    assert old in good_matrix
    found = problems_of(good_matrix.replace(old, new))
    match = [p for p in found if p.path == path]
    assert match, f"no problem at {path}: {found}"
    assert match[0].line == line
    assert words in match[0].message
    assert str(match[0]).startswith(f"m.yaml:{line}: {path}: ")


@pytest.mark.parametrize("extra,path,words", [
    ("warmup: -1\n", "warmup", "less than the minimum"),
    ("repetitions: 0\n", "repetitions", "less than the minimum"),
    ("placement: {policy: pack}\n", "placement.policy", "is not one of"),
    ("placement: {cpus: 'a-b'}\n", "placement.cpus", "does not match"),
    ("memory_limit: lots\n", "memory_limit", "does not match"),
    ("timeout_s: 0\n", "timeout_s", "less than or equal to the minimum"),
    ("exclude: [{color: red}]\n", "exclude[0].color", "Additional properties"),
    ("include: [{}]\n", "include[0]", "should be non-empty"),
    ("flavour: x\n", "flavour", "Additional properties are not allowed"),
])
def test_bad_top_level_settings(good_matrix, extra, path, words):
    found = problems_of(good_matrix + extra)
    assert any(p.path == path and words in p.message for p in found), found
    assert all(p.line for p in found)


def test_every_problem_is_reported_at_once(good_matrix):
    text = good_matrix.replace("version: 1", "version: 3").replace("threads: [1, 2]", "threads: [0]")
    text = text.replace("  - name: llama.cpp", "  - name: nope")
    found = problems_of(text)
    assert {p.path for p in found} >= {"version", "threads[0]", "engines[0].name"}
    assert [p.line for p in found] == sorted(p.line for p in found)


def test_missing_required_keys_are_named():
    found = problems_of("version: 1\nengines: [{name: llama.cpp}]\n")
    messages = " ".join(p.message for p in found)
    for key in ("models", "threads", "workloads"):
        assert f"'{key}' is a required property" in messages


def test_duplicate_engine_and_workload_names(good_matrix):
    text = good_matrix.replace("  - name: llama.cpp\n", "  - name: llama.cpp\n  - name: llama.cpp\n")
    text += "  - name: short\n    prompt: x\n    gen_tokens: 4\n"
    found = problems_of(text)
    assert any("listed twice with the same options" in p.message for p in found)
    assert any("used twice" in p.message for p in found)


def test_an_engine_may_appear_again_with_other_options(good_matrix):
    text = good_matrix.replace("  - name: llama.cpp\n", "  - name: llama.cpp\n  - name: llama.cpp\n"
                                                       "    options: {llama_bench: true}\n")
    loaded = matrixfile.parse(text)
    assert [e.options for e in loaded.engines] == [{}, {"llama_bench": True}]


def test_yaml_syntax_error_has_a_line():
    found = problems_of("version: 1\nengines: [\n  - x\n")
    assert found[0].line is not None and "not valid YAML" in found[0].message


def test_not_a_mapping():
    found = problems_of("- just\n- a list\n")
    assert "must be a YAML mapping" in found[0].message


def test_unreadable_file(tmp_path):
    with pytest.raises(InputError) as caught:
        matrixfile.load(tmp_path / "missing.yaml")
    assert "cannot read the file" in str(caught.value)


@pytest.mark.parametrize("text,expected", [("2g", 2 * 1024**3), ("512m", 512 * 1024**2), ("1.5k", 1536),
                                           ("100", 100), ("3G", 3 * 1024**3)])
def test_parse_size(text, expected):
    assert matrixfile.parse_size(text) == expected


def test_a_baseline_names_an_engine_and_optionally_a_format_of_the_matrix(good_matrix):
    assert matrixfile.parse(good_matrix, "m.yaml").baseline is None
    assert matrixfile.parse(good_matrix + "baseline: llama.cpp\n", "m.yaml").baseline == "llama.cpp"
    assert matrixfile.parse(good_matrix + "baseline: llama.cpp/gguf-q8_0\n", "m.yaml").baseline == "llama.cpp/gguf-q8_0"
    (wrong,) = problems_of(good_matrix + "baseline: candle\n")
    assert (wrong.path, wrong.line) == ("baseline", good_matrix.count("\n") + 1)
    assert "baseline engine 'candle' is not an engine of this MATRIX" in wrong.message
    (fmt,) = problems_of(good_matrix + "baseline: llama.cpp/gguf-q4_0\n")
    assert "baseline format 'gguf-q4_0' is not a format of this MATRIX" in fmt.message
    spaced = problems_of(good_matrix + "baseline: 'a b'\n")
    assert any(p.path == "baseline" and "does not match" in p.message for p in spaced)
