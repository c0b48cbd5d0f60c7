"""PLAN expansion: order, include/exclude rules and stable CELL ids."""

import json
import subprocess
import sys

from orchestrator.matrix import matrixfile
from orchestrator.plan import planner


def test_expands_the_cross_product_in_matrix_order(good_matrix):
    cells = planner.expand(matrixfile.parse(good_matrix))
    assert [(c.format, c.threads) for c in cells] == [("gguf-f32", 1), ("gguf-f32", 2), ("gguf-q8_0", 1),
                                                      ("gguf-q8_0", 2)]
    assert len({c.cell_id for c in cells}) == 4


def test_cell_ids_depend_on_coordinates_only(good_matrix):
    first = planner.expand(matrixfile.parse(good_matrix))
    # Repetitions, warm-up and limits do not change which CELL it is.
    second = planner.expand(matrixfile.parse(good_matrix + "repetitions: 9\nwarmup: 0\nmemory_limit: 1g\n"))
    assert [c.cell_id for c in first] == [c.cell_id for c in second]
    changed = planner.expand(matrixfile.parse(good_matrix.replace("gen_tokens: 8", "gen_tokens: 9")))
    assert not {c.cell_id for c in first} & {c.cell_id for c in changed}


def test_cell_id_is_a_known_value():
    # Pinned: the same coordinates give this id on every machine and every Python.
    coordinates = {"engine": "llama.cpp", "engine_options": {}, "model": "tinystories-15m", "format": "gguf-f32",
                   "threads": 1, "workload": {"name": "w", "prompt": "Once upon a time", "gen_tokens": 64,
                                              "prompt_tokens": 64}}
    assert planner.cell_id(coordinates) == planner.cell_id(json.loads(json.dumps(coordinates)))
    assert planner.cell_id(coordinates).startswith("c-") and len(planner.cell_id(coordinates)) == 14
    assert planner.cell_id(coordinates) == "c-" + __import__("hashlib").sha256(json.dumps(
        coordinates, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def test_ids_are_identical_in_a_fresh_interpreter(good_matrix, tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(good_matrix)
    runs = [subprocess.run([sys.executable, "-m", "orchestrator", "plan", str(path), "--json"], capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
            for seed in ("1", "2")]
    assert runs[0] == runs[1]
    assert [c["cell_id"] for c in json.loads(runs[0])] == [c.cell_id for c in planner.expand(matrixfile.parse(good_matrix))]


def test_exclude_and_include_rules(good_matrix):
    excluded = planner.expand(matrixfile.parse(good_matrix + "exclude:\n  - {format: gguf-f32, threads: 2}\n"))
    assert [(c.format, c.threads) for c in excluded] == [("gguf-f32", 1), ("gguf-q8_0", 1), ("gguf-q8_0", 2)]
    included = planner.expand(matrixfile.parse(good_matrix + "include:\n  - {threads: [2]}\n"))
    assert [c.threads for c in included] == [2, 2]


def test_engines_only_get_formats_they_read(good_matrix):
    text = good_matrix.replace("  - name: llama.cpp\n", "  - name: llama.cpp\n  - name: testengine\n")
    text = text.replace("[gguf-f32, gguf-q8_0]", "[gguf-f32, safetensors]")
    cells = planner.expand(matrixfile.parse(text))
    assert {(c.engine, c.format) for c in cells} == {("llama.cpp", "gguf-f32"), ("testengine", "gguf-f32"),
                                                     ("testengine", "safetensors")}


def test_rule_matching():
    values = {"engine": "llama.cpp", "model": "m", "format": "gguf-f32", "threads": 2, "workload": "w"}
    assert planner.matches({"threads": 2}, values)
    assert planner.matches({"threads": [1, 2], "engine": "llama.cpp"}, values)
    assert not planner.matches({"threads": 2, "format": "gguf-q4_0"}, values)
