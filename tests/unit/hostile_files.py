"""Files from a colleague, made hostile: bundles (B), merge inputs (G), RUN folders (F), model stores (S), misc (X).

Each case builds its files in a fresh folder and names the command line that opens them.
``tests/unit/test_hostile_files.py`` runs every case in-process against this tree and
asserts its outcome; ``python -m tests.unit.hostile_files [OLD_TREE]`` runs each case in
its own process (30 s timeout, 2 GB address space) against this tree and, if given, an
older checkout (``git archive`` of it), and prints the table of docs/hostile-inputs.md.
Harm is checked after each case: the victim file outside the inputs must be unchanged,
and the folder ``outside/`` must stay empty.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit import runs

VICTIM_TEXT = "a file of the user's that nothing may touch\n"
ESC = "\x1b]0;pwned\x07\x1b[2J"
RUN_ID = runs.RUN_ID
ROOT = Path(__file__).resolve().parents[2]
CELL = "c-000000000001"


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    build: Callable[[Path], list[str]]  # makes the inputs under the folder, returns the command line
    exit_code: int  # the exit code this tree gives
    says: str  # a regular expression the message must match (stdout + stderr)
    env: dict = field(default_factory=dict)


# --- building blocks -------------------------------------------------------------------------------------


def victim(tmp: Path) -> Path:
    path = tmp / "victim.txt"
    if not path.exists():
        path.write_text(VICTIM_TEXT)
    return path


def outside(tmp: Path) -> Path:
    path = tmp / "outside"
    path.mkdir(exist_ok=True)
    return path


def harm(tmp: Path) -> str | None:
    """What a case did to files it had no business touching (None: nothing)."""
    found = []
    if (tmp / "victim.txt").exists() and (tmp / "victim.txt").read_text() != VICTIM_TEXT:
        found.append(f"victim.txt changed ({(tmp / 'victim.txt').stat().st_size} bytes now)")
    if (tmp / "outside").is_dir() and any((tmp / "outside").iterdir()):
        found.append("wrote into outside/: " + ", ".join(sorted(p.name for p in (tmp / "outside").iterdir())[:3]))
    if (tmp / "kept-by-user").is_dir() and not (tmp / "kept-by-user" / "data").is_file():
        found.append("removed the user's folder behind a link")
    for name in (".ssh", "etc-copy"):
        if (tmp / name).exists():
            found.append(f"made {name} beside the model store")
    return "; ".join(found) or None


def good_run(tmp: Path, name: str = "run", run_id: str = RUN_ID, change=None, records_change=None) -> Path:
    """A valid RUN folder (run.json + one ok record) under ``tmp/name``."""
    recs = [runs.cell_record(CELL, run_id=run_id)]
    doc = runs.run_doc([CELL], run_id=run_id)
    if change:
        change(doc)
    if records_change:
        records_change(recs[0])
    root = tmp / name
    root.mkdir(parents=True, exist_ok=True)
    return runs.write_folder(root, doc, recs)


def bundle_doc(folder: str = "m-1", image_dir: str = "llama.cpp", archive=None, version: int = 1) -> dict:
    return {"bundle_version": version, "created_at": "2026-01-01T00:00:00+00:00", "run_id": RUN_ID,
            "run_status": "finished", "orchestrator": {"version": "0.1.0", "git_commit": "0" * 40, "git_dirty": False},
            "images": {"llama.cpp": {"image_dir": image_dir, "tag": "orchestrate/llama.cpp:111111111111",
                                     "id": "sha256:" + "1" * 64, "base": None, "base_id": None,
                                     "context": {"tag": "orchestrate/llama.cpp:111111111111", "files": {}},
                                     "context_matches_run": True, "archive": archive}},
            "models": {"tinystories-15m/gguf-f32": {"sha256": runs.SHA, "folder": folder, "recipe": None,
                                                    "path": None, "included": True}}}


def members_of_good_bundle(doc: dict | None = None, run_change=None, record_change=None) -> list[tuple]:
    run = runs.run_doc([CELL])
    rec = runs.cell_record(CELL)
    if run_change:
        run_change(run)
    if record_change:
        record_change(rec)
    return [("bundle.json", json.dumps(doc or bundle_doc()).encode()), ("matrix.yaml", b"version: 1\n"),
            ("host.json", json.dumps(run["host"]).encode()), ("run/run.json", json.dumps(run).encode()),
            (f"run/cells/{CELL}/record.json", json.dumps(rec).encode())]


def tar_gz(path: Path, members: list[tuple], fmt=tarfile.PAX_FORMAT) -> Path:
    """A tar.gz of (name, bytes) members, or (TarInfo, bytes-or-None) for odd ones."""
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for name, data in members:
            if isinstance(name, tarfile.TarInfo):
                tar.addfile(name, io.BytesIO(data) if data is not None else None)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def compare_bundle(build_members) -> Callable[[Path], list[str]]:
    """A case: `compare` of a good RUN folder and a bundle made of ``build_members(tmp)``."""
    def build(tmp: Path) -> list[str]:
        victim(tmp)
        outside(tmp)
        a = good_run(tmp)
        bundle = tmp / "b.orchestrate.tar.gz"
        made = build_members(tmp)
        if isinstance(made, Path):
            bundle = made
        else:
            tar_gz(bundle, made)
        return ["compare", str(a), str(bundle)]
    return build


def raw_gzip(path: Path, chunks) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as out:
        for chunk in chunks:
            out.write(chunk)
    return path


def header(name: str, size: int, kind=tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def zeros(size: int):
    left = size
    while left:
        step = min(left, 1 << 22)
        yield bytes(step)
        left -= step


def reproduce_with(doc_change) -> Callable[[Path], list[str]]:
    """A case: `reproduce --force` of a bundle whose bundle.json is changed by ``doc_change``."""
    def build(tmp: Path) -> list[str]:
        victim(tmp)
        (tmp / "store").mkdir()
        doc = bundle_doc()
        doc_change(doc)
        members = members_of_good_bundle(doc)
        folder = doc["models"]["tinystories-15m/gguf-f32"]["folder"] or "m-1"
        members.append((f"models/{folder}/manifest.json", b"{}"))
        tar_gz(tmp / "b.orchestrate.tar.gz", members)
        return ["reproduce", str(tmp / "b.orchestrate.tar.gz"), "--results", str(tmp / "results"), "--force"]
    return build


def reproduce_raw(members_fn) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        victim(tmp)
        (tmp / "store").mkdir()
        tar_gz(tmp / "b.orchestrate.tar.gz", members_fn(tmp))
        return ["reproduce", str(tmp / "b.orchestrate.tar.gz"), "--results", str(tmp / "results"), "--force"]
    return build


def report_of(make) -> Callable[[Path], list[str]]:
    """A case: `report` of a good RUN folder changed by ``make(tmp, run_dir)``."""
    def build(tmp: Path) -> list[str]:
        victim(tmp)
        outside(tmp)
        run_dir = good_run(tmp)
        make(tmp, run_dir)
        return ["report", str(run_dir)]
    return build


def running(run_dir: Path) -> None:
    """Make the RUN look like one whose process died: status running, an owner.json."""
    doc = json.loads((run_dir / "run.json").read_text())
    doc["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(doc))
    (run_dir / "owner.json").write_text(json.dumps({"pid": 1, "host": "h", "started_at": "2026-01-01"}))


def merge_of(make, extra: tuple = ()) -> Callable[[Path], list[str]]:
    """A case: `merge` of the RUN folders ``make(tmp)`` returns (plus ``extra`` arguments)."""
    def build(tmp: Path) -> list[str]:
        victim(tmp)
        outside(tmp)
        dirs = make(tmp)
        return ["merge", *map(str, dirs), "--out", str(tmp / "merged"), *extra]
    return build


def two_shards(a_change=None, b_change=None, record_b=None):
    def make(tmp: Path) -> list[Path]:
        a = good_run(tmp, "a", "20260101T000000Z-aaaaaa", change=a_change)
        b_cell = "c-000000000002"
        recs = [runs.cell_record(b_cell, run_id="20260101T000000Z-bbbbbb")]
        if record_b:
            record_b(recs[0])
        doc = runs.run_doc([b_cell], run_id="20260101T000000Z-bbbbbb")
        if b_change:
            b_change(doc)
        (tmp / "b").mkdir()
        return [a, runs.write_folder(tmp / "b", doc, recs)]
    return make


def set_in(path: tuple, value):
    def change(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def store_case(make, action: str = "verify") -> Callable[[Path], list[str]]:
    """A case: `models <action> tinystories-15m --store S` of a store folder made by ``make(tmp, folder)``."""
    def build(tmp: Path) -> list[str]:
        from orchestrator.models import catalogue, modelstore

        victim(tmp)
        store = tmp / "store"
        folder = modelstore.folder(catalogue.get("tinystories-15m"), store)
        (folder / "gguf").mkdir(parents=True)
        (folder / "gguf" / "model-f32.gguf").write_bytes(b"GGUF" + bytes(60))
        make(tmp, folder)
        return ["models", action, "tinystories-15m", "--store", str(store)]
    return build


def manifest_with(path: str = "gguf/model-f32.gguf", sha: str = "0" * 64, size=64, fmt: str = "gguf-f32"):
    return {"schema_version": 1, "files": {fmt: {"path": path, "sha256": sha, "size": size, "tool": "test",
                                                 "parent": None}}}


def write_manifest(document) -> Callable[[Path, Path], None]:
    def make(tmp: Path, folder: Path) -> None:
        (folder / "manifest.json").write_text(document if isinstance(document, str) else json.dumps(document))
    return make


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# --- the cases -------------------------------------------------------------------------------------------

REFUSED = 5


def _cases() -> list[Case]:
    bundles = [
        Case("B1", "a member that is a symbolic link (bundle.json -> /etc/passwd)",
             compare_bundle(lambda t: [(special("bundle.json", tarfile.SYMTYPE, "/etc/passwd"), None)]),
             REFUSED, "is a symbolic link; only regular files and folders"),
        Case("B2", "a member that is a hard link to a host file",
             compare_bundle(lambda t: [(special("run/run.json", tarfile.LNKTYPE, str(t / "victim.txt")), None)]),
             REFUSED, "is a hard link"),
        Case("B3", "a member named ../escape",
             compare_bundle(lambda t: [("../outside/escape", b"x"), *members_of_good_bundle()]),
             REFUSED, "not a relative path of plain names"),
        Case("B4", "a member with an absolute name",
             compare_bundle(lambda t: [(str(t / "outside" / "abs"), b"x"), *members_of_good_bundle()]),
             REFUSED, "not a relative path of plain names"),
        Case("B5", "a FIFO member", compare_bundle(lambda t: [(special("run/fifo", tarfile.FIFOTYPE), None)]),
             REFUSED, "is a FIFO"),
        Case("B6", "a character device member",
             compare_bundle(lambda t: [(special("run/zero", tarfile.CHRTYPE), None)]), REFUSED,
             "is a character device"),
        Case("B7", "a 256 MiB member of zeros (a 1.1 MB bundle)",
             compare_bundle(lambda t: raw_gzip(t / "bomb.orchestrate.tar.gz",
                                               [header("run/run.json", 256 * 2**20), *zeros(256 * 2**20),
                                                bytes(1024)])),
             REFUSED, "the cap for one member"),
        Case("B8", "30,000 empty members",
             compare_bundle(lambda t: raw_gzip(t / "many.orchestrate.tar.gz",
                                               [b"".join(header(f"run/cells/c-{i:012x}", 0) for i in range(30_000)),
                                                bytes(1024)])),
             REFUSED, "more than 20000 members"),
        Case("B9", "a pax header of 64 KB of digits (CVE-2024-6232: quadratic parsing before 3.11.10)",
             compare_bundle(lambda t: raw_gzip(t / "cve.orchestrate.tar.gz", [
                 header("././@PaxHeader", 64000, tarfile.XHDTYPE), b"1" * 64000, bytes(-64000 % 512),
                 header("bundle.json", 0), bytes(1024)])),
             REFUSED, "an extended header of 64000 bytes"),
        Case("B10", "a pax header of 256 MiB",
             compare_bundle(lambda t: raw_gzip(t / "pax.orchestrate.tar.gz", [
                 header("././@PaxHeader", 256 * 2**20, tarfile.XHDTYPE), *zeros(256 * 2**20),
                 header("bundle.json", 0), bytes(1024)])),
             REFUSED, "an extended header of 268435456 bytes"),
        Case("B11", "the same member twice",
             compare_bundle(lambda t: [*members_of_good_bundle(), ("run/run.json", b"{}")]),
             REFUSED, "appears twice"),
        Case("B12", "not gzip at all", compare_bundle(lambda t: _write(t / "x.orchestrate.tar.gz", b"hello\n")),
             REFUSED, "not a readable tar.gz archive"),
        Case("B13", "a gzip stream cut short",
             compare_bundle(lambda t: _truncated(tar_gz(t / "t.orchestrate.tar.gz", members_of_good_bundle()))),
             REFUSED, "not a readable tar.gz archive|truncated|ends in the middle"),
        Case("B14", "an empty file", compare_bundle(lambda t: _write(t / "e.orchestrate.tar.gz", b"")),
             REFUSED, "holds no tar archive"),
        Case("B15", "a FIFO in place of the bundle", compare_bundle(lambda t: _fifo(t / "f.orchestrate.tar.gz")),
             REFUSED, "not a regular file|neither a RUN folder nor a bundle"),
        Case("B16", "bundle.json nested 100,000 levels deep",
             compare_bundle(lambda t: [("bundle.json", deep(100_000).encode()), *members_of_good_bundle()[1:]]),
             REFUSED, "nested"),
        Case("B17", "bundle.json holding a 20 MB string",
             compare_bundle(lambda t: [("bundle.json", json.dumps({"x": "a" * 20_000_000}).encode()),
                                       *members_of_good_bundle()[1:]]),
             REFUSED, "more than the limit|bytes"),
        Case("B18", "bundle.json a list", compare_bundle(lambda t: [("bundle.json", b"[1, 2]"),
                                                                    *members_of_good_bundle()[1:]]),
             REFUSED, "bundle.schema.json"),
        Case("B19", "bundle.json's images an array of wrong types",
             compare_bundle(lambda t: members_of_good_bundle({**bundle_doc(), "images": [1, "x"]})),
             REFUSED, "bundle.schema.json"),
        Case("B20", "reproduce: a model folder named ../.ssh",
             reproduce_with(set_in(("models", "tinystories-15m/gguf-f32", "folder"), "../.ssh")),
             REFUSED, "bundle.schema.json|not a relative path"),
        Case("B21", "reproduce: a model folder given as an absolute path",
             reproduce_with(set_in(("models", "tinystories-15m/gguf-f32", "folder"), "/etc")),
             REFUSED, "bundle.schema.json|not a relative path"),
        Case("B22", "reproduce: an IMAGE folder named ../../etc",
             reproduce_with(set_in(("images", "llama.cpp", "image_dir"), "../../etc")), REFUSED,
             "bundle.schema.json"),
        Case("B23", "reproduce: an IMAGE folder this checkout does not have",
             reproduce_with(set_in(("images", "llama.cpp", "image_dir"), "nosuchimage")), REFUSED,
             "this checkout does not have"),
        Case("B24", "reproduce: an image archive named ../../../etc/passwd",
             reproduce_with(set_in(("images", "llama.cpp", "archive"), "../../../etc/passwd")), REFUSED,
             "bundle.schema.json"),
        Case("B25", "a bundle version from the future",
             compare_bundle(lambda t: members_of_good_bundle(bundle_doc(version=99))), REFUSED,
             "bundle version 99"),
        Case("B26", "a member that is no part of a bundle (evil.sh)",
             compare_bundle(lambda t: [*members_of_good_bundle(), ("evil.sh", b"rm -rf ~\n")]), REFUSED,
             "no part of a bundle"),
        Case("B27", "reproduce: records after the models (out of the bundle's order)",
             reproduce_raw(lambda t: [*members_of_good_bundle()[:4], ("models/m-1/manifest.json", b"{}"),
                                      (f"run/cells/{CELL}/record.json", json.dumps(runs.cell_record(CELL)).encode())]),
             REFUSED, "after its models or images"),
        Case("B28", "a record whose CPU time is 1e308",
             compare_bundle(lambda t: _with_record(lambda r: r["outside"].update(cpu_seconds=1e308))), REFUSED,
             "beyond the 1e\\+12"),
        Case("B29", "a record whose IMAGE tag is a number",
             compare_bundle(lambda t: _with_record(lambda r: r["provenance"]["image"].update(tag=12))), REFUSED,
             "record.schema.json"),
        Case("B30", "a record whose model sha256 is a list",
             compare_bundle(lambda t: _with_record(lambda r: r["provenance"]["model"].update(sha256=["a"]))),
             REFUSED, "record.schema.json"),
        Case("B31", "a member named with terminal escape sequences",
             compare_bundle(lambda t: [(f"run/{ESC}", b"x"), *members_of_good_bundle()]), REFUSED,
             "not a relative path of plain names"),
        Case("B32", "run.json whose host frequency is a string",
             compare_bundle(lambda t: members_of_good_bundle(run_change=set_in(("host", "frequency", "ghz"), "3"))),
             REFUSED, "run.schema.json"),
    ]
    merges = [
        Case("G1", "two shards measured with different repetitions",
             merge_of(two_shards(record_b=lambda r: r["cell"].update(repetitions=9))), REFUSED,
             "different settings"),
        Case("G2", "two shards with different warm-up",
             merge_of(two_shards(record_b=lambda r: r["cell"].update(warmup=3))), REFUSED, "warm-up runs"),
        Case("G3", "two shards with different memory limits",
             merge_of(two_shards(record_b=lambda r: r["limits"].update(memory_bytes=2**31))), REFUSED,
             "memory limit"),
        Case("G4", "the same, merged with --allow-mixed-settings",
             merge_of(two_shards(record_b=lambda r: r["limits"].update(memory_bytes=2**31)),
                      ("--allow-mixed-settings",)), 0, "settings differ between the RUNs"),
        Case("G5", "a link in a downloaded-artifacts folder pointing at a RUN elsewhere",
             merge_of(_artifacts_with_link), 0, "merged 1 RUN"),
        Case("G6", "a symbolic link loop in the artifacts folder", merge_of(_artifacts_with_loop), 0,
             "merged 1 RUN"),
        Case("G7", "a shard whose cells/ is a link to records elsewhere", merge_of(_cells_link), REFUSED,
             "symbolic link"),
        Case("G8", "host frequency a string", merge_of(two_shards(b_change=set_in(("host", "frequency", "ghz"),
                                                                                  "fast"))), REFUSED,
             "run.schema.json"),
        Case("G9", "host CPU brand a list", merge_of(two_shards(b_change=set_in(("host", "cpu", "brand"), ["x"]))),
             REFUSED, "run.schema.json"),
        Case("G10", "Docker version a number", merge_of(two_shards(b_change=set_in(("host", "docker", "version"),
                                                                                   20.10))), REFUSED,
             "run.schema.json"),
        Case("G11", "1e308 CPU seconds in a record",
             merge_of(two_shards(record_b=lambda r: r["outside"].update(cpu_seconds=1e308))), REFUSED,
             "beyond the 1e\\+12"),
        Case("G12", "a reason that is a spreadsheet formula",
             merge_of(two_shards(record_b=_failed("=HYPERLINK(\"http://x\",\"y\")"))), 0, "merged 2 RUN"),
        Case("G13", "escape sequences in a reason",
             merge_of(two_shards(record_b=_failed(f"boom {ESC}")), ()), 0, "merged 2 RUN"),
        Case("G14", "--out names an existing file", _merge_out_file, 2, "exists and is not a folder"),
        Case("G15", "--out is a link to a folder elsewhere", _merge_out_link, 2, "exists and is not a folder"),
        Case("G16", "run.json nested 100,000 levels deep",
             merge_of(lambda t: [_raw_run(t, deep(100_000))]), REFUSED, "nested"),
        Case("G17", "run.json of 70 MiB", merge_of(lambda t: [_raw_run(t, json.dumps({"x": "a" * (70 * 2**20)}))]),
             REFUSED, "more than the limit"),
        Case("G18", "run.json a FIFO", merge_of(_run_json_fifo), REFUSED, "FIFO"),
        Case("G19", "the same RUN folder twice", merge_of(lambda t: [good_run(t), good_run(t)]), 2, "named twice"),
        Case("G20", "a PLAN of 20,000 CELL ids",
             merge_of(two_shards(b_change=lambda d: d.update(plan_order=[f"c-{i:012x}" for i in range(20_000)]))),
             REFUSED, "run.schema.json"),
    ]
    folders = [
        Case("F1", "report: .lock a symbolic link to a user file (the RUN looks killed)",
             report_of(lambda t, r: (running(r), (r / ".lock").symlink_to(t / "victim.txt"))), REFUSED,
             "cannot take the lock: it is a symbolic link"),
        Case("F2", "report: .lock a directory", report_of(lambda t, r: (running(r), (r / ".lock").mkdir())), REFUSED,
             "cannot take the lock"),
        Case("F3", "report: .lock a FIFO", report_of(lambda t, r: (running(r), os.mkfifo(r / ".lock"))), REFUSED,
             "cannot take the lock"),
        Case("F4", "report: tables/ a link to a folder elsewhere",
             report_of(lambda t, r: (r / "tables").symlink_to(t / "outside")), REFUSED, "symbolic link"),
        Case("F5", "report: cells/ a link to records elsewhere", report_of(_cells_elsewhere), REFUSED,
             "symbolic link"),
        Case("F6", "report: a CELL folder that is a link", report_of(_cell_folder_link), REFUSED, "symbolic link"),
        Case("F7", "report: record.json a link to a host file",
             report_of(lambda t, r: _replace_with_link(r / "cells" / CELL / "record.json", t / "victim.txt")),
             REFUSED, "symbolic link"),
        Case("F8", "report: record.json a hard link", report_of(_hard_linked_record), REFUSED, "hard links"),
        Case("F9", "report: tables a regular file", report_of(lambda t, r: (r / "tables").write_text("x")), REFUSED,
             "a folder on its way is a symbolic link or a file"),
        Case("F10", "report: report.html a directory", report_of(lambda t, r: (r / "report.html").mkdir()), REFUSED,
             "it is a directory"),
        Case("F11", "report: owner.json nested 100,000 deep (RUN looks killed)",
             report_of(lambda t, r: (running(r), (r / "owner.json").write_text(deep(100_000)))), 0,
             "owner unknown|interrupted"),
        Case("F12", "report: owner.json a FIFO (RUN looks killed)",
             report_of(lambda t, r: (running(r), (r / "owner.json").unlink(), os.mkfifo(r / "owner.json"))), 0,
             "is running"),
        Case("F13", "report: run.json a link to a RUN elsewhere", report_of(_run_json_link), REFUSED,
             "symbolic link"),
        Case("F14", "report: 3,000 unreadable records (the message is capped)", report_of(_many_broken), REFUSED,
             "and 2980 more"),
        Case("F15", "report: a temporary file that is a link to a user file (RUN looks killed)",
             report_of(lambda t, r: (running(r), (r / ".run.json.x.tmp").symlink_to(t / "victim.txt"))), 0,
             "interrupted"),
        Case("F16", "report: escape sequences in a reason (printed)",
             report_of(lambda t, r: _rewrite_record(r, _failed(f"boom {ESC}"))), 0, "boom"),
        Case("F17", "report: a record whose reason begins with '=' (cells.csv)",
             report_of(lambda t, r: _rewrite_record(r, _failed("=cmd|' /C calc'!A0"))), 0, "cmd"),
        Case("F18", "resume: .lock a symbolic link to a user file", _resume_lock_link, REFUSED,
             "cannot take the lock: it is a symbolic link"),
    ]
    stores = [
        Case("S1", "verify: a manifest naming /dev/zero", store_case(write_manifest(manifest_with("/dev/zero"))), 4,
             "manifest.schema.json"),
        Case("S2", "verify: a manifest naming ../../../etc/shadow",
             store_case(write_manifest(manifest_with("../../../../../../etc/shadow"))), 4, "manifest.schema.json"),
        Case("S3", "verify: the model file is a link to a user file", store_case(_model_link), 4,
             "cannot be hashed: it is a symbolic link"),
        Case("S4", "verify: the model file is a FIFO", store_case(_model_fifo), 4, "not a regular file"),
        Case("S5", "verify: an ONNX folder holding a link", store_case(_onnx_with_link), 4,
             "only regular files and folders"),
        Case("S6", "verify: a manifest nested 100,000 deep", store_case(write_manifest(deep(100_000))), 4, "nested"),
        Case("S7", "verify: a manifest that is a list", store_case(write_manifest("[]")), 4, "manifest.schema.json"),
        Case("S8", "verify: a sha256 that is a list",
             store_case(write_manifest({"schema_version": 1, "files": {"gguf-f32": {
                 "path": "gguf/model-f32.gguf", "sha256": ["a"], "size": 1}}})), 4, "manifest.schema.json"),
        Case("S9", "verify: a manifest of 20 MB", store_case(write_manifest(json.dumps({"x": "a" * 20_000_000}))), 4,
             "more than the limit"),
        Case("S10", "verify: manifest.json a link to a user file", store_case(_manifest_link), 4, "symbolic link"),
        Case("S11", "verify: a format named at another format's path",
             store_case(write_manifest(manifest_with("gguf/model-f32.gguf", fmt="gguf-q8_0"))), 4,
             "this checkout keeps it at"),
        Case("S12", "list: a store whose manifest is broken", store_case(write_manifest("{"), "list"), 0,
             "problem: .*cannot be used"),
        Case("S13", "remove: the model folder is a link to a folder elsewhere", _remove_link, 0,
             "removed the symbolic link"),
        Case("S14", "reproduce: a bundle's model folder holding a link to a user file", _bundle_model_link, REFUSED,
             "is a symbolic link"),
    ]
    misc = [
        Case("X1", "plan --shards 0", lambda t: ["plan", str(Path(__file__).resolve().parents[2] / "matrix.yaml"),
                                                 "--shards", "0"], 2, "1 or more shards"),
        Case("X3", "report in an ASCII locale, of a RUN whose labels are not ASCII",
             report_of(lambda t, r: _rewrite_record(r, _failed("Zürich — naïve ✓"))), 0, "Z\\\\xfcrich|tables written",
             env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
                  "PYTHONIOENCODING": "ascii"}),
        Case("X4", "compare a bundle with itself", _bundle_twice, 0, "same within noise"),
        Case("X2", "plan --shards -3", lambda t: ["plan", str(Path(__file__).resolve().parents[2] / "matrix.yaml"),
                                                  "--shards", "-3"], 2, "1 or more shards"),
    ]
    return bundles + merges + folders + stores + misc


def _bundle_twice(tmp: Path) -> list[str]:
    victim(tmp)
    outside(tmp)
    tar_gz(tmp / "b.orchestrate.tar.gz", members_of_good_bundle())
    return ["compare", str(tmp / "b.orchestrate.tar.gz"), str(tmp / "b.orchestrate.tar.gz")]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _with_record(change) -> list[tuple]:
    return members_of_good_bundle(record_change=change)


def _failed(reason: str):
    def change(rec):
        rec.update(status="crashed", reason=reason, result=None)
        rec["outside"].update(peak_memory_bytes=None, cpu_seconds=None, exit_code=1)
    return change


def _rewrite_record(run_dir: Path, change) -> None:
    path = run_dir / "cells" / CELL / "record.json"
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec))


def _artifacts_with_link(tmp: Path) -> list[Path]:
    artifacts = tmp / "artifacts"
    artifacts.mkdir()
    good_run(artifacts, "shard-1")
    good_run(tmp / "outside-runs", "x", "20260101T000000Z-cccccc")
    (artifacts / "shard-2").symlink_to(tmp / "outside-runs")
    return [artifacts]


def _artifacts_with_loop(tmp: Path) -> list[Path]:
    artifacts = tmp / "artifacts"
    artifacts.mkdir()
    good_run(artifacts, "shard-1")
    (artifacts / "loop").symlink_to(artifacts)
    return [artifacts]


def _cells_link(tmp: Path) -> list[Path]:
    a = good_run(tmp, "a")
    elsewhere = good_run(tmp, "elsewhere", "20260101T000000Z-dddddd")
    os.rename(a / "cells", tmp / "moved-cells")
    (a / "cells").symlink_to(elsewhere / "cells")
    return [a]


def _raw_run(tmp: Path, text: str) -> Path:
    run_dir = tmp / "raw" / RUN_ID
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(text)
    return run_dir


def _run_json_fifo(tmp: Path) -> list[Path]:
    run_dir = tmp / "fifo-run"
    run_dir.mkdir()
    os.mkfifo(run_dir / "run.json")
    return [run_dir]


def _merge_out_file(tmp: Path) -> list[str]:
    victim(tmp)
    run_dir = good_run(tmp)
    return ["merge", str(run_dir), "--out", str(tmp / "victim.txt")]


def _merge_out_link(tmp: Path) -> list[str]:
    victim(tmp)
    run_dir = good_run(tmp)
    (tmp / "out-link").symlink_to(outside(tmp))
    return ["merge", str(run_dir), "--out", str(tmp / "out-link")]


def _cells_elsewhere(tmp: Path, run_dir: Path) -> None:
    elsewhere = good_run(tmp, "elsewhere")
    os.rename(run_dir / "cells", tmp / "moved-cells")
    (run_dir / "cells").symlink_to(elsewhere / "cells")


def _cell_folder_link(tmp: Path, run_dir: Path) -> None:
    elsewhere = good_run(tmp, "elsewhere")
    os.rename(run_dir / "cells" / CELL, tmp / "moved-cell")
    (run_dir / "cells" / CELL).symlink_to(elsewhere / "cells" / CELL)


def _replace_with_link(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def _hard_linked_record(tmp: Path, run_dir: Path) -> None:
    path = run_dir / "cells" / CELL / "record.json"
    os.link(path, tmp / "second-name-of-the-record.json")


def _run_json_link(tmp: Path, run_dir: Path) -> None:
    elsewhere = good_run(tmp, "elsewhere")
    _replace_with_link(run_dir / "run.json", elsewhere / "run.json")


def _many_broken(tmp: Path, run_dir: Path) -> None:
    doc = json.loads((run_dir / "run.json").read_text())
    ids = [f"c-{i:012x}" for i in range(2, 3002)]
    for cell_id in ids:
        folder = run_dir / "cells" / cell_id
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(f"{{broken {ESC}")
    doc["plan_order"] += ids
    doc["matrix"]["expanded"] += [{"cell_id": c} for c in ids]
    (run_dir / "run.json").write_text(json.dumps(doc))


def _resume_lock_link(tmp: Path) -> list[str]:
    victim(tmp)
    run_dir = good_run(tmp)
    running(run_dir)
    (run_dir / ".lock").symlink_to(tmp / "victim.txt")
    return ["run", "--resume", str(run_dir)]


def _model_link(tmp: Path, folder: Path) -> None:
    (folder / "gguf" / "model-f32.gguf").unlink()
    (folder / "gguf" / "model-f32.gguf").symlink_to(tmp / "victim.txt")
    write_manifest(manifest_with())(tmp, folder)


def _model_fifo(tmp: Path, folder: Path) -> None:
    (folder / "gguf" / "model-f32.gguf").unlink()
    os.mkfifo(folder / "gguf" / "model-f32.gguf")
    write_manifest(manifest_with())(tmp, folder)


def _onnx_with_link(tmp: Path, folder: Path) -> None:
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx")
    (folder / "onnx" / "weights.bin").symlink_to(tmp / "victim.txt")
    write_manifest(manifest_with("onnx", fmt="onnx"))(tmp, folder)


def _manifest_link(tmp: Path, folder: Path) -> None:
    (folder / "manifest.json").symlink_to(tmp / "victim.txt")


def _remove_link(tmp: Path) -> list[str]:
    from orchestrator.models import catalogue, modelstore

    victim(tmp)
    store = tmp / "store"
    store.mkdir()
    kept = tmp / "kept-by-user"
    kept.mkdir()
    (kept / "data").write_text("keep me")
    modelstore.folder(catalogue.get("tinystories-15m"), store).symlink_to(kept)
    return ["models", "remove", "tinystories-15m", "--store", str(store)]


def _bundle_model_link(tmp: Path) -> list[str]:
    victim(tmp)
    (tmp / "store").mkdir()
    members = members_of_good_bundle()
    members.append(("models/m-1/manifest.json", b"{}"))
    members.append((special("models/m-1/gguf/model-f32.gguf", tarfile.SYMTYPE, str(tmp / "victim.txt")), None))
    tar_gz(tmp / "b.orchestrate.tar.gz", members)
    return ["reproduce", str(tmp / "b.orchestrate.tar.gz"), "--results", str(tmp / "results"), "--force"]


CASES = _cases()


# --- running a case ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: killed by the timeout
    message: str  # the first error line (or the last line printed)
    traceback: bool
    harm: str | None
    seconds: float
    raw_escape: bool  # an ESC character reached the terminal


RUNNER = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
sys.path.insert(0, sys.argv[1])
os.environ["ORCHESTRATE_MODEL_STORE"] = sys.argv[2]
from orchestrator import cli
sys.exit(cli.main(sys.argv[3:]))
"""


def run_in_process(argv: list[str], tmp: Path) -> tuple[int, str]:
    """Run a case's command line with orchestrate's own main (this tree); (exit code, all output)."""
    from contextlib import redirect_stderr, redirect_stdout

    from orchestrator import cli

    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("ORCHESTRATE_MODEL_STORE")
    os.environ["ORCHESTRATE_MODEL_STORE"] = str(tmp / "store")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(argv)
    finally:
        if old is None:
            os.environ.pop("ORCHESTRATE_MODEL_STORE", None)
        else:
            os.environ["ORCHESTRATE_MODEL_STORE"] = old
    return code, out.getvalue() + err.getvalue()


def run_in_subprocess(case: Case, tmp: Path, tree: Path, timeout: float = 30) -> Outcome:
    """Run a case in its own process against the orchestrator in ``tree`` (30 s, 2 GB address space)."""
    argv = case.build(tmp)
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", RUNNER, str(tree), str(tmp / "store"), *argv],
                              capture_output=True, timeout=timeout, cwd=tree,
                              env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", **case.env})
        code, text = done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")
    except subprocess.TimeoutExpired as exc:
        code, text = None, ((exc.stdout or b"") + (exc.stderr or b"")).decode("utf-8", "replace")
    seconds = time.monotonic() - started
    return Outcome(code, first_message(text), "Traceback (most recent call last)" in text, harm(tmp), seconds,
                   "\x1b" in text)


def first_message(text: str) -> str:
    """The line that says what happened: a traceback's last line, an error, a warning, or what was done."""
    lines = [line for line in text.splitlines() if line.strip()]
    for pattern in (r"^\w*(Error|Exception)\b", r"^error:", r"^warning:", r"^(merged|removed|refused|RUN )",
                    r"^\S+: (ok|MISMATCH)", r"^(tables written|TABLE:)"):
        found = [line for line in lines if re.match(pattern, line)]
        if found:
            return found[-1 if "Error" in pattern else 0][:160]
    return (lines[-1] if lines else "")[:160]


def describe(outcome: Outcome) -> str:
    """One cell of the docs table."""
    if outcome.exit_code is None:
        text = "**hung**: killed by the 30 s timeout"
    elif outcome.traceback:
        text = f"**traceback** `{outcome.message[:90]}`"
    else:
        text = f"exit {outcome.exit_code}: {outcome.message[:110]}"
    if outcome.harm:
        text += f"; **harm: {outcome.harm}**"
    if outcome.raw_escape:
        text += "; **raw escape sequence printed**"
    if outcome.seconds > 5:
        text += f" ({outcome.seconds:.0f} s)"
    return text.replace("|", "\\|").replace("\n", " ")


def table(old_tree: Path | None, work: Path) -> str:
    import shutil
    import tempfile

    here = Path(__file__).resolve().parents[2]
    rows = ["| # | case | before | after |", "| --- | --- | --- | --- |"]
    for case in CASES:
        cells = []
        for tree in ([old_tree] if old_tree else []) + [here]:
            tmp = Path(tempfile.mkdtemp(dir=work))
            try:
                cells.append(describe(run_in_subprocess(case, tmp, tree)))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if not old_tree:
            cells.insert(0, "-")
        rows.append(f"| {case.id} | {case.what} | {cells[0]} | {cells[1]} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import tempfile

    print(table(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else None, Path(tempfile.mkdtemp())))
