"""Property-based tests (Hypothesis) of every reader of other people's files: bundles, RUN folders, records,
run.json, model store manifests, merge and compare inputs.

Generated tar archives, RUN folders and JSON documents (good ones changed at random places, with
values of every JSON type, huge numbers, control characters and formulas; files swapped for links,
folders and FIFOs) go through the commands that read them. Each ends with an exit code and a
reason, never a traceback; nothing is written outside the target; the printed text holds no raw
escape character. Example counts keep the module to well under a minute.
"""

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.compare import bundle
from orchestrator.errors import OrchestratorError
from tests.unit import hostile_files as hf
from tests.unit import runs

FAST = settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

# Values a careless or malicious colleague might leave anywhere in a JSON document.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e308, 1e13, 0.0, -0.0, 5e-324]),
    st.text(max_size=12), st.sampled_from(["", "=1+1", "@SUM(A1)", "-2", hf.ESC, "../x", "/etc/passwd", "a" * 300,
                                           "c-000000000001", "sha256:" + "0" * 64, "0" * 64]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def paths(document, prefix=()):
    """Every path into a JSON document (keys and indexes), the document itself first."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document[:3]):
            yield from paths(value, prefix + (index,))


def changed(document, choice: int, value, drop: bool):
    """``document`` with the ``choice``-th path replaced by ``value`` (or removed)."""
    found = list(paths(document))
    path = found[choice % len(found)]
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if drop and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return copy


mutation = st.tuples(st.integers(0, 10_000), values, st.booleans())


def good_documents():
    run = runs.run_doc([hf.CELL])
    return run, runs.cell_record(hf.CELL), hf.bundle_doc(), hf.manifest_with()


def outcome(argv, tmp):
    """Run a command line through orchestrate's main; fail the test on a traceback or a raw escape."""
    code, text = hf.run_in_process(argv, tmp)  # any exception other than the project's own propagates here
    assert code in (0, 1, 2, 3, 4, 5, 6), (code, text[-500:])
    assert code == 0 or "error:" in text or "refused" in text, text[-500:]  # a reason with every failure
    assert "\x1b" not in text
    assert hf.harm(tmp) is None
    return code


def fresh(tmp_path):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    hf.victim(folder)
    hf.outside(folder)
    return folder


@FAST
@given(st.sampled_from(["run", "record"]), mutation, st.sampled_from(["report", "merge", "compare"]))
def test_changed_run_folders_end_with_an_exit_code(tmp_path, which, change, command):
    tmp = fresh(tmp_path)
    run, rec, _, _ = good_documents()
    if which == "run":
        run = changed(run, *change)
    else:
        rec = changed(rec, *change)
    folder = tmp / "results" / runs.RUN_ID
    (folder / "cells" / hf.CELL).mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "cells" / hf.CELL / "record.json").write_text(json.dumps(rec))
    good = hf.good_run(tmp, "good", "20260101T000000Z-999999")
    argv = {"report": ["report", str(folder)], "merge": ["merge", str(folder), str(good), "--out", str(tmp / "m")],
            "compare": ["compare", str(good), str(folder)]}[command]
    outcome(argv, tmp)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["run.json", "cells", f"cells/{hf.CELL}", f"cells/{hf.CELL}/record.json",
                                           "tables", "report.html", ".lock", "owner.json"]),
                          st.sampled_from(["link-out", "link-victim", "folder", "fifo", "file", "missing"])),
                min_size=1, max_size=3, unique_by=lambda t: t[0]),
       st.booleans())
def test_run_folders_with_links_folders_and_fifos_end_with_an_exit_code(tmp_path, swaps, killed):
    tmp = fresh(tmp_path)
    run_dir = hf.good_run(tmp)
    if killed:
        hf.running(run_dir)
    for name, kind in sorted(swaps, key=lambda t: -t[0].count("/")):  # deepest first: a parent swapped last
        path = run_dir / name
        if not path.parent.is_dir() or path.parent.is_symlink():
            continue
        if os.path.lexists(path):
            if path.is_dir() and not path.is_symlink():
                import shutil

                shutil.rmtree(path)
            else:
                path.unlink()
        if kind == "link-out":
            path.symlink_to(tmp / "outside")
        elif kind == "link-victim":
            path.symlink_to(tmp / "victim.txt")
        elif kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "file":
            path.write_text("{}")
    outcome(["report", str(run_dir)], tmp)


names = st.one_of(st.sampled_from(["bundle.json", "run/run.json", f"run/cells/{hf.CELL}/record.json", "matrix.yaml",
                                   "host.json", "models/m-1/manifest.json", "images/llama.cpp.tar", "../x", "/abs",
                                   "./bundle.json", "run//x", "a/" * 20 + "b", hf.ESC, "run/" + "n" * 300, "",
                                   "run/cells", "run"]),
                  st.text(max_size=20))
kinds = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                         tarfile.CHRTYPE, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, b"Z"])


@FAST
@given(st.lists(st.tuples(names, kinds, st.binary(max_size=64), st.booleans()), max_size=6), st.booleans(),
       st.sampled_from(["compare", "extract"]))
def test_generated_archives_unpack_or_are_refused_and_write_nothing_outside(tmp_path, members, with_good, how):
    tmp = fresh(tmp_path)
    items = hf.members_of_good_bundle() if with_good else []
    for name, kind, data, pax in members:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.linkname = kind, len(data), str(tmp / "victim.txt")
        if pax:
            info.pax_headers = {"comment": name}
        items.append((info, data if kind in (tarfile.REGTYPE, tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME) else None))
    path = tmp / "b.orchestrate.tar.gz"
    try:
        hf.tar_gz(path, items)
    except (ValueError, tarfile.TarError, UnicodeError):
        return  # tarfile itself will not write such a member
    if how == "compare":
        outcome(["compare", str(hf.good_run(tmp)), str(path)], tmp)
        return
    target = tmp / "unpacked"
    try:
        bundle.extract(path, target)
    except OrchestratorError as exc:
        assert exc.exit_code == 5 and not target.exists()
    assert hf.harm(tmp) is None
    for folder, subfolders, files in os.walk(tmp):  # no link, FIFO or device was made anywhere
        for name in subfolders + files:
            full = os.path.join(folder, name)
            assert not os.path.islink(full) or full.startswith(str(tmp / "results")), full


@FAST
@given(mutation, st.sampled_from(["bundle", "manifest"]))
def test_changed_bundle_manifests_and_store_manifests_end_with_an_exit_code(tmp_path, change, which):
    tmp = fresh(tmp_path)
    _, _, bundle_doc, manifest = good_documents()
    if which == "bundle":
        members = hf.members_of_good_bundle(changed(bundle_doc, *change))
        members.append(("models/m-1/manifest.json", b"{}"))
        hf.tar_gz(tmp / "b.orchestrate.tar.gz", members)
        (tmp / "store").mkdir()
        code = outcome(["compare", str(hf.good_run(tmp)), str(tmp / "b.orchestrate.tar.gz")], tmp)
        assert code in (0, 5)
        return
    from orchestrator.models import catalogue, modelstore

    folder = modelstore.folder(catalogue.get("tinystories-15m"), tmp / "store")
    (folder / "gguf").mkdir(parents=True)
    (folder / "gguf" / "model-f32.gguf").write_bytes(b"GGUF")
    (folder / "manifest.json").write_text(json.dumps(changed(manifest, *change)))
    for action in ("verify", "list"):
        outcome(["models", action, "tinystories-15m", "--store", str(tmp / "store")], tmp)


@FAST
@given(st.binary(max_size=200), st.sampled_from(["run.json", "record.json", "bundle.json", "manifest.json"]))
def test_arbitrary_bytes_in_each_document_end_with_an_exit_code(tmp_path, data, which):
    tmp = fresh(tmp_path)
    if which in ("run.json", "record.json"):
        run_dir = hf.good_run(tmp)
        target = run_dir / "run.json" if which == "run.json" else run_dir / "cells" / hf.CELL / "record.json"
        target.write_bytes(data)
        outcome(["report", str(run_dir)], tmp)
    elif which == "bundle.json":
        hf.tar_gz(tmp / "b.orchestrate.tar.gz", [("bundle.json", data), *hf.members_of_good_bundle()[1:]])
        outcome(["compare", str(hf.good_run(tmp)), str(tmp / "b.orchestrate.tar.gz")], tmp)
    else:
        hf.store_case(hf.write_manifest(data.decode("latin-1")))(tmp)
        outcome(["models", "verify", "tinystories-15m", "--store", str(tmp / "store")], tmp)


def test_a_raw_archive_of_every_refused_member_kind_is_refused(tmp_path):
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                 tarfile.XGLTYPE, tarfile.GNUTYPE_SPARSE):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("run/x")
            info.type = kind
            tar.addfile(info)
        path = tmp_path / f"k{kind!r}.tar.gz"
        path.write_bytes(buffer.getvalue())
        try:
            bundle.extract(path, tmp_path / "t")
        except OrchestratorError as exc:
            assert exc.exit_code == 5
        else:
            raise AssertionError(f"type {kind!r} was unpacked")
        assert not (tmp_path / "t").exists()


def same_type(original, draw_text, draw_int, draw_float):
    """A value of the original's JSON type (strings with escapes and formulas, edge numbers): mostly schema-valid."""
    if isinstance(original, bool) or original is None:
        return original
    if isinstance(original, str):
        return draw_text
    if isinstance(original, int):
        return draw_int
    if isinstance(original, float):
        return draw_float
    return original


@FAST
@given(st.sampled_from(["run", "record"]), st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
       st.text(max_size=40) | st.sampled_from(["=A1", "+1", hf.ESC, "", "-", "@x", "a" * 1000]),
       st.integers(-2**31, 2**31) | st.sampled_from([0, -1, 1, 2**62]),
       st.floats(-1e12, 1e12) | st.sampled_from([0.0, -0.0, 1e12, 5e-324, -1e-300]),
       st.sampled_from(["report", "merge", "compare"]))
def test_schema_valid_changes_of_the_same_type_never_crash_a_reader(tmp_path, which, choices, text, integer, number,
                                                                     command):
    from orchestrator import schemas

    run, rec, _, _ = good_documents()
    document = run if which == "run" else rec
    found = [p for p in paths(document) if p and not isinstance(_at(document, p), (dict, list))]
    for choice in choices:
        path = found[choice % len(found)]
        parent = _at(document, path[:-1])
        parent[path[-1]] = same_type(parent[path[-1]], text, integer, number)
    if schemas.problems("run" if which == "run" else "record", document):
        return  # the schema refuses it: the other tests cover refusals
    tmp = fresh(tmp_path)
    folder = tmp / "results" / runs.RUN_ID
    (folder / "cells" / hf.CELL).mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "cells" / hf.CELL / "record.json").write_text(json.dumps(rec))
    good = hf.good_run(tmp, "good", "20260101T000000Z-999999")
    argv = {"report": ["report", str(folder)], "merge": ["merge", str(folder), str(good), "--out", str(tmp / "m"),
                                                        "--allow-mixed-settings"],
            "compare": ["compare", str(good), str(folder)]}[command]
    outcome(argv, tmp)
    if command == "report" and (folder / "tables" / "cells.csv").is_file():
        for line in (folder / "tables" / "cells.csv").read_text().splitlines()[1:]:
            assert not any(field.startswith(("=", "+", "@")) for field in line.split(","))


def _at(document, path):
    for key in path:
        document = document[key]
    return document
