"""Write a RUN's TABLEs and its report.html from its stored, validated records (`orchestrate report`, the end
of a RUN); large RUNs are read and written by several processes (fanout.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from orchestrator.files import writing
from orchestrator.merge import frames, sampling, scaling, standings
from orchestrator.report import charts, document, fanout, htmlreport, quality, summaries, summarymd
from orchestrator.report.exporters import EXPORTERS, markdown_page
from orchestrator.results.reader import as_records
from orchestrator.results.recordfiles import read_records, read_run_file, recorded_cells
from orchestrator.results.runreader import RunDocument


def write(run_dir: Path, broken: list | None = None, baseline: str | None = None) -> dict[str, Path]:
    """(Re)generate every TABLE, summary.md, report.md and report.html of a RUN from its stored, validated records.

    ``baseline`` (ENGINE or ENGINE/FORMAT) overrides the MATRIX's ``baseline:`` for the summary.

    With a ``broken`` list, records that cannot be read are listed there and left out of
    the TABLEs instead of stopping the report (results.read_records). Large RUNs are read
    and written by several processes (orchestrator/fanout.py); the files are the same.
    """

    run_dir = Path(run_dir)
    run = read_run_file(run_dir)
    frequency = RunDocument.read(run).frequency
    ids = recorded_cells(run_dir, run)
    processes = fanout.workers(len(ids))
    records, cell_parts, rep_parts = [], [], []
    with fanout.paused_gc():
        for part_records, (part_cells, part_reps), part_broken in fanout.run(
                partial(_read_part, run_dir, frequency, broken is not None, processes > 1),
                fanout.chunks(ids, processes), processes):
            records += part_records
            cell_parts.append(part_cells)
            rep_parts.append(part_reps)
            if broken is not None:
                broken += part_broken
        table, reps = frames.tables(records, frequency, (frames.join_columns(cell_parts), frames.join_columns(rep_parts)))
        found = ({cell_id: {"agreement": verdict} for cell_id, verdict in zip(table["cell_id"], table["agreement"])}
                 if "agreement" in table.columns else {})  # agreement.agreement's verdicts, already in the TABLE
        continuations = quality.reference_continuations(records, found)
        summary = summaries.summarise(table, reps, baseline, [RunDocument.read(run).matrix_text])
        _JOB.update(run=run, records=records, table=table, reps=reps, continuations=continuations,
                    broken=broken or [], run_dir=run_dir, summary=summary)
        try:
            names = fanout.run(_write_one, WRITTEN, fanout.workers(len(records)))
        finally:
            _JOB.clear()
    return {name: (run_dir / name if name in AT_TOP else run_dir / "tables" / name) for name in names}


# The files write() makes, the slowest first (so that workers share them evenly).
WRITTEN = ["cells.md", "repetitions.md", "report.html", "cells.csv", "repetitions.csv", "cells.json",
           "repetitions.json", "report.md", "summary.md"]
AT_TOP = ("report.html", "report.md")  # in the RUN folder; the others in tables/


_JOB: dict = {}  # what _write_one reads: set by write() before its workers are forked


def _read_part(run_dir: Path, frequency: dict, tolerant: bool, slim: bool, cell_ids: list[str]
               ) -> tuple[list, tuple[dict, dict], list]:
    """Read and check one part of a RUN's records and derive their TABLE columns (a worker's share).

    With ``slim`` (the records travel back from a worker process) only what the rest of the
    report reads of a record travels with it (``slimmed``).
    """

    broken: list = []
    with fanout.paused_gc():
        records = read_records(run_dir, cell_ids, broken if tolerant else None)
        columns = frames.derived_columns(records, frequency)
    return (slimmed(records) if slim else records), columns, broken


def slimmed(records: list[dict]) -> list[dict]:
    """What report.html and the Markdown page read of each record besides its TABLE rows.

    Agreement (agreement.agreement) reads the status, CELL and every repetition's token ids;
    the reference continuations (quality.py) the generated text; the warnings
    (htmlreport.warnings) the placement note and the unmeasured fields; the latency chart
    the inter-token latencies of the first charts.MAX_CELLS ok records. Equal token-id
    lists become one list (sent once). tests/unit/test_fanout.py checks that the files
    are the same as from whole records.
    """

    out, charted = [], 0
    for record in records:
        slim = {"schema_version": record["schema_version"], "cell_id": record["cell_id"], "status": record["status"],
                "cell": record["cell"],
                "placement": {"note": record["placement"].get("note")},
                "outside": {"unmeasured": record["outside"].get("unmeasured")}, "result": None,
                "sampling": {"batches": [{"batch": b.get("batch"), "probes": b.get("probes")}
                                         for b in (record.get("sampling") or {}).get("batches", [])]}}
        result = record.get("result")
        if result is not None and "perplexity" in result:  # agreement reads its perplexity, nothing else
            slim["result"] = {"perplexity": result["perplexity"], "extra": {}, "repetitions": []}
        elif result is not None:
            charted += record["status"] == "ok"
            first = result["repetitions"][0]["token_ids"] if result["repetitions"] else None
            slim["result"] = {
                "extra": {"generated_text": (result.get("extra") or {}).get("generated_text")},
                "repetitions": [{"token_ids": first if rep["token_ids"] == first else rep["token_ids"],
                                 "inter_token_latencies_s": rep["inter_token_latencies_s"]
                                 if charted <= charts.MAX_CELLS else []} for rep in result["repetitions"]]}
        out.append(slim)
    return out


def _write_one(name: str) -> str:
    """Write one of the RUN's files from ``_JOB`` (atomically: a reader never sees half a file)."""

    job = _JOB
    if name == "report.html":
        text, path = (htmlreport.page(job["run"], job["records"], job["table"], job["broken"], job["summary"]),
                      job["run_dir"] / name)
    elif name == "summary.md":
        title = f"Summary of RUN {RunDocument.read(job['run']).run_id}"
        text, path = summarymd.markdown(job["summary"], title), job["run_dir"] / "tables" / name
    elif name == "report.md":
        text, path = report_document(job["run"], job["summary"]), job["run_dir"] / name
    else:
        stem, fmt = name.split(".")
        frame = job["table"] if stem == "cells" else job["reps"]
        drift = sampling.machine_drift(as_records(job["records"])) if name == "cells.md" else []
        text = markdown_page(job["run"], frame, job["continuations"], drift) if name == "cells.md" else \
            EXPORTERS[fmt](frame)
        path = job["run_dir"] / "tables" / name
    writing.write_text(path, text, job["run_dir"])
    return name


def report_document(run: dict, summary: standings.Summary) -> str:
    """report.md of one RUN, from its summary (which holds the TABLE's rows and repetitions)."""
    return document.report(f"Report of RUN {RunDocument.read(run).run_id}", summary.rows, [run], summary,
                           scaling.scalings(summary.rows, summary.samples, summary), htmlreport.parameters(run))
