"""The command line starts fast: help, validate and plan do not load pandas or the Docker SDK."""

import json
import subprocess
import sys


def loaded_after(code: str) -> dict:
    probe = (f"import sys\n{code}\n"
             "import json; print(json.dumps({m: m in sys.modules for m in ('pandas', 'docker', 'plotly', 'rich.live')}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_help_loads_no_heavy_library():
    loaded = loaded_after("from orchestrator import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass")
    assert loaded == {"pandas": False, "docker": False, "plotly": False, "rich.live": False}


def test_plan_loads_no_heavy_library(tmp_path, good_matrix):
    path = tmp_path / "m.yaml"
    path.write_text(good_matrix)
    loaded = loaded_after(f"from orchestrator import cli\ncli.main(['plan', {str(path)!r}])")
    assert not loaded["pandas"] and not loaded["docker"]


def test_validate_loads_no_heavy_library(tmp_path, good_matrix):
    path = tmp_path / "m.yaml"
    path.write_text(good_matrix)
    loaded = loaded_after(f"from orchestrator import cli\ncli.main(['validate', {str(path)!r}])")
    assert not loaded["pandas"] and not loaded["docker"]


def test_cell_ids_are_the_hash_of_the_cells_own_coordinates(good_matrix, tmp_path):
    from orchestrator.matrix import matrixfile as matrix_module
    from orchestrator.plan import planner

    path = tmp_path / "m.yaml"
    path.write_text(good_matrix)
    for cell in planner.expand(matrix_module.load(path)):
        assert cell.cell_id == planner.cell_id(cell.coordinates())
