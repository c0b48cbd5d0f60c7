"""Hostile MATRIX files (issue 8, classes 2, 5, 6, 8): each ends with exit 2 and a line, never a traceback."""

import os
from pathlib import Path

import pytest

from orchestrator.errors import CatalogueError, InputError, PlacementError
from orchestrator.files import yamlsafe
from orchestrator.host import cpuset
from orchestrator.matrix import bounds, matrixfile
from orchestrator.models import catalogue
from orchestrator.plan import planner
from orchestrator.run import place
from tests.conftest import GOOD_MATRIX
from tests.unit.hostile_cases import MATRIX_CASES, matrix_outcome


@pytest.mark.parametrize("case", MATRIX_CASES, ids=[c.name for c in MATRIX_CASES])
def test_each_hostile_matrix_ends_with_its_exit_code_and_message(case, tmp_path):
    code, stderr = matrix_outcome(case, tmp_path)
    assert "Traceback" not in stderr
    assert code == case.exit_code, stderr
    assert case.words in stderr, stderr


def test_a_bomb_is_refused_before_it_is_expanded(tmp_path):
    laughs = [c for c in MATRIX_CASES if c.name == "billion-laughs"][0]
    assert len(laughs.content) < 1000  # 9**9 = 387 million strings once expanded
    with pytest.raises(InputError, match="expands to"):
        yamlsafe.load(laughs.content, "m.yaml")


def test_the_limits_are_stated_where_they_apply():
    assert yamlsafe.MAX_BYTES == 1 << 20 and yamlsafe.MAX_NODES == 100_000
    assert bounds.MAX_CELLS == 10_000 and bounds.MIN_MEMORY_BYTES == 16 * 2**20
    schema = matrixfile.schemas.validator("matrix").schema
    assert schema["properties"]["timeout_s"]["maximum"] == bounds.MAX_TIMEOUT_S


def test_a_memory_limit_is_exact_for_any_length():
    assert matrixfile.parse_size("1.5k") == 1536 and matrixfile.parse_size("16m") == bounds.MIN_MEMORY_BYTES
    assert matrixfile.parse_size("9" * 30) == int("9" * 30)  # no float overflow, no traceback
    with pytest.raises(ValueError):
        matrixfile.parse_size("1e3")


def test_the_smallest_allowed_memory_limit_passes():
    loaded = matrixfile.parse(GOOD_MATRIX + "memory_limit: 16m\n", "m.yaml")
    assert loaded.memory_limit_bytes() == 16 * 2**20


def test_a_misspelled_key_is_reported_at_its_own_line_not_the_mapping():
    problems = _problems(GOOD_MATRIX.replace("    gen_tokens: 8", "    gen_tokns: 8"))
    assert any(p.line == 12 and p.path == "workloads[0].gen_tokns" and "did you mean 'gen_tokens'" in p.message
               for p in problems), problems


def test_duplicate_keys_name_both_lines():
    problems = _problems(GOOD_MATRIX + "threads: [4]\n")
    assert len(problems) == 1 and problems[0].line == 13 and "at line 7 and line 13" in problems[0].message


def test_rules_matching_nothing_warn_but_load():
    loaded = matrixfile.parse(GOOD_MATRIX + "exclude: [{threads: 8}, {workload: [long], format: gguf-f32}]\n", "m.yaml")
    assert len(loaded.warnings) == 2
    assert "exclude[0].threads value 8 matches no threads" in loaded.warnings[0]
    assert "exclude[1].workload value 'long'" in loaded.warnings[1]
    assert len(planner.expand(loaded)) == 4


def test_validate_and_run_refuse_absent_cpus_with_the_same_function():
    loaded = matrixfile.parse(GOOD_MATRIX + "placement: {cpus: '0,7'}\n", "m.yaml")
    host = tuple(cpuset.Cpu(i, i) for i in range(4))
    with pytest.raises(PlacementError, match=r"names CPU\(s\) 7 that this host does not offer \(usable: 0-3\)"):
        place(planner.expand(loaded), loaded, host)


def test_the_catalogue_goes_through_the_same_safe_loader(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - id: a\n  - id: a\nmodels: []\n")
    with pytest.raises(CatalogueError, match="'models' appears twice in one mapping: at line 1 and line 4"):
        catalogue.load.__wrapped__(path)
    path.write_bytes(b"models: [\xff]\n")
    with pytest.raises(CatalogueError, match="not UTF-8"):
        catalogue.load.__wrapped__(path)


def test_the_repository_matrices_still_load():
    root = Path(__file__).resolve().parents[2]
    for path in [root / "matrix.yaml", *sorted((root / "matrices").glob("*.yaml"))]:
        loaded = matrixfile.load(path)
        assert planner.expand(loaded), path


def _problems(text: str):
    with pytest.raises(InputError) as caught:
        planner.expand(matrixfile.parse(text, "m.yaml"))
    return caught.value.problems


def test_an_unreadable_matrix_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "m.yaml"
    path.write_text(GOOD_MATRIX)
    real_open = os.open

    def denied(target, flags, *args, **kwargs):  # as for a file without read permission (root reads any)
        if str(target) == str(path):
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError, match="cannot read the file"):
        matrixfile.load(path)
