"""The server-boundary ENGINEs in the orchestrator: llama-server shares llama.cpp's IMAGE with its own
program, Ollama gets room for its model store, and unbuildable IMAGEs leave unavailable CELL records."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.engines import ENGINES
from orchestrator.execute import cellrun, smoke
from orchestrator.images import imagebuild
from orchestrator.results.judge import CellStatus
from tests.unit.test_execute import settings


def test_llama_server_runs_its_own_program_in_the_llama_cpp_image(tmp_path):
    server = ENGINES["llama-server"]
    assert server.image_dir == ENGINES["llama.cpp"].image_dir and server.formats == ENGINES["llama.cpp"].formats
    spec = cellrun.container_spec(settings(tmp_path, engine="llama-server"), tmp_path, "parent")
    assert (spec.entrypoint, spec.command) == ("python3", ("/opt/server/server_runner.py",))
    native = cellrun.container_spec(settings(tmp_path), tmp_path, "parent")
    assert native.entrypoint is None and native.command is None  # the image's own ENTRYPOINT
    assert native.tmpfs_size == "256m"


def test_ollama_cells_get_a_tmpfs_large_enough_for_its_model_store(tmp_path):
    spec = cellrun.container_spec(settings(tmp_path, engine="ollama", threads=1), tmp_path, "parent")
    assert spec.tmpfs_size == "3g" and spec.network == "none" and spec.read_only


def test_a_cell_of_an_unbuildable_image_is_recorded_unavailable_with_the_reason(tmp_path):
    image = imagebuild.unavailable("ollama")
    assert image.tag == imagebuild.tag_for("ollama") and image.id == ""
    base = settings(tmp_path, engine="ollama", threads=1)
    document = smoke.write_not_run(replace(base, image=image), tmp_path / "cell",
                                   "not run: the IMAGE cannot be built here: no registry")
    assert document["status"] == CellStatus.UNAVAILABLE.value and "no registry" in document["reason"]
    assert document["result"] is None and (tmp_path / "cell" / "record.json").is_file()
