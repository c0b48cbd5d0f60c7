"""The report's files are the same whether one process or several read and write them."""

import copy

from orchestrator.report import fanout, writer
from tests.unit.runfolder import made_up_records, write_run


def test_chunks_are_contiguous_nearly_equal_and_in_order():
    items = list(range(10))
    assert fanout.chunks(items, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert fanout.chunks(items, 1) == [items] and fanout.chunks([1], 4) == [[1]]


def test_run_keeps_the_order_of_tasks_in_forked_workers():
    assert fanout.run(abs, [-3, 2, -1, 0], 2) == [3, 2, 1, 0]


def test_several_workers_write_the_same_files_as_one(tmp_path, monkeypatch):
    records = []
    for index in range(30):  # 30 copies of the made-up RUN's records: several agreement groups and failures
        for rec in made_up_records():
            rec = copy.deepcopy(rec)
            rec["cell_id"] = f"c-{index:06x}{rec['cell_id'][-6:]}"
            rec["cell"]["workload"]["name"] += f"-{index % 4}"
            if index % 7 == 1:  # what the page reads besides the rows: notes, unmeasured fields, decoded text
                rec["placement"]["note"] = f"note {index}"
                rec["outside"]["unmeasured"] = {"cpu_seconds": f"no cgroup {index}"}
            if rec["result"] is not None:
                rec["result"].setdefault("extra", {})["generated_text"] = {"text": f"text {index}", "how": "test"}
            records.append(rec)
    one, many = write_run(tmp_path / "one", records), write_run(tmp_path / "many", records)
    monkeypatch.setattr(fanout, "MIN_ITEMS", 10**9)
    writer.write(one)
    monkeypatch.setattr(fanout, "MIN_ITEMS", 1)
    monkeypatch.setattr(fanout, "workers", lambda items: 3)
    writer.write(many)
    assert "note 1" in (one / "report.html").read_text() and "no cgroup 8" in (one / "report.html").read_text()
    for name in writer.WRITTEN:
        where = "" if name in writer.AT_TOP else "tables/"
        assert (one / f"{where}{name}").read_bytes() == (many / f"{where}{name}").read_bytes(), name
