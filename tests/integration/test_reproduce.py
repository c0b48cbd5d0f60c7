"""bundle -> reproduce against the real Docker engine: a small RUN is bundled, run again here and compared."""

import json
import tarfile

from orchestrator import reproduce
from orchestrator.compare import bundle, comparereport, ratios
from orchestrator.matrix import matrixfile
from orchestrator.run import execute_run
from tests import matrices

MATRIX = matrices.tiny(["testengine"], repetitions=5, timeout_s=60)


def test_a_bundled_run_reproduces_here_with_every_cell_the_same(tmp_path, tinystories, no_leftovers):
    first = execute_run(matrixfile.parse(MATRIX, "reproduce.yaml"), tmp_path / "results", lambda _: None)
    packed = bundle.write(first, tmp_path / "run.orchestrate.tar.gz", progress=lambda _: None)
    with tarfile.open(packed) as tar:
        manifest = json.load(tar.extractfile("bundle.json"))
        names = tar.getnames()
    assert manifest["images"]["testengine"]["context_matches_run"]
    assert any(name.startswith("models/tinystories-15m-") and name.endswith("/manifest.json") for name in names)

    done = reproduce.reproduce(packed, tmp_path / "again", progress=lambda _: None)
    assert done.forced == ()
    assert [c.cell_a for c in done.compared] == [c.cell_b for c in done.compared]  # the same CELL ids
    report = done.report.read_text()
    if comparereport.warnings(done.original, done.new):
        # Other work shared the cores (a busy CI runner or workstation): the verdict then measures that too,
        # and the report must say so rather than pass it off as the engine's speed.
        assert "other work ran on those cores" in report
    else:
        assert [c.verdict for c in done.compared] == [ratios.SAME], report
    run = json.loads((done.run_dir / "run.json").read_text())
    assert run["reproduces"]["run_id"] == first.name
    assert "| CPU model |" in report
