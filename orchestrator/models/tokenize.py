"""Make an evaluation text from its pinned Debian packages (checked by sha256), and tokenize it once per model
with the model's Hugging Face tokenizer, in the modelmaker IMAGE; both kept in the store under a lock."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import ModelError
from orchestrator.files import locking
from orchestrator.host.dockerapi import Docker, Mount
from orchestrator.images import imagebuild
from orchestrator.models import download
from orchestrator.models.modelstore import run_tool, sha256_of, tool_report
from orchestrator.models.texts import DEBIAN_MIRROR, EvalIds, Text, folder, host_arch


def prepare(docker: Docker, text: Text, root: Path, logs_dir: Path,
            progress: Callable[[str], None] = print) -> Path:
    """The text's file in the store, made (and checked) when it is not there yet."""

    home = folder(text, root)
    target = home / "text.txt"
    if target.is_file():
        return target
    home.mkdir(parents=True, exist_ok=True)
    lock = locking.hold(home, f"evaluation text {text.id}", progress)
    try:
        if target.is_file():
            return target
        work = home / ".work-text"
        shutil.rmtree(work, ignore_errors=True)
        debs, out = work / "debs", work / "out"
        debs.mkdir(parents=True)
        out.mkdir()
        os.chmod(out, 0o777)  # the tool runs as an unprivileged user
        mirror = os.environ.get("ORCHESTRATE_DEBIAN_MIRROR", DEBIAN_MIRROR).rstrip("/")
        names = []
        for package in text.packages_for(host_arch()):
            name = Path(package.file).name
            progress(f"downloading {name} from {mirror}")
            download.fetch(f"{mirror}/{package.file}", package.sha256, package.size, debs / name, progress)
            os.chmod(debs / name, 0o644)
            names.append(name)
        maker = imagebuild.ensure(docker, "modelmaker", logs_dir, progress)
        command = ["python3", "/opt/modelmaker/make_text.py", "--verses", text.verses, "--out", "/out/text.txt"]
        for name in names:
            command += ["--deb", f"/debs/{name}"]
        run_tool(docker, maker, command, (Mount(str(debs), "/debs"), Mount(str(out), "/out", read_only=False)),
             f"making evaluation text {text.id}", logs_dir / f"text-{text.id}.log", progress)
        made = out / "text.txt"
        digest = sha256_of(made) if made.is_file() else None
        if digest != text.sha256:
            raise ModelError(f"evaluation text {text.id}: the text made has sha256 {digest}, the catalogue pins "
                             f"{text.sha256}; nothing was kept (check the packages and the normalisation)")
        _own(made)
        os.replace(made, target)
        return target
    finally:
        shutil.rmtree(home / ".work-text", ignore_errors=True)
        lock.release()


def ids_for(docker: Docker, text: Text, model_folder: Path, root: Path, logs_dir: Path,
            progress: Callable[[str], None] = print) -> EvalIds:
    """The text tokenized by the model's Hugging Face tokenizer (made once, then reused)."""

    home = folder(text, root)
    target = home / "ids" / f"{model_folder.name}.ids.json"
    if not target.is_file():
        source = prepare(docker, text, root, logs_dir, progress)
        if not (model_folder / "hf" / "tokenizer.json").is_file():
            raise ModelError(f"perplexity on {text.id} needs the model's Hugging Face tokenizer "
                             f"({model_folder / 'hf' / 'tokenizer.json'}); prepare the model's safetensors format")
        work = home / f".work-ids-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        os.chmod(work, 0o777)
        try:
            maker = imagebuild.ensure(docker, "modelmaker", logs_dir, progress)
            progress(f"tokenizing {text.id} for {model_folder.name}")
            run_tool(docker, maker, ["python3", "/opt/modelmaker/tokenize_text.py", "--tokenizer",
                                 "/models/hf/tokenizer.json", "--text", "/text/text.txt", "--id", text.id,
                                 "--out", "/out/ids.json"],
                 (Mount(str(model_folder), "/models"), Mount(str(source.parent), "/text"),
                  Mount(str(work), "/out", read_only=False)),
                 f"tokenizing {text.id}", logs_dir / f"tokenize-{text.id}-{model_folder.name}.log", progress)
            target.parent.mkdir(parents=True, exist_ok=True)
            _own(work / "ids.json")
            os.replace(work / "ids.json", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    ids = tool_report(target).get("ids")
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):
        raise ModelError(f"{target} holds no list of token ids")
    return EvalIds(text.id, target, sha256_of(target), len(ids))


def _own(path: Path) -> None:
    """A file made by the unprivileged tool user: readable by all, owned like the rest of the store."""
    os.chmod(path, 0o644)
    if os.getuid() == 0:
        os.chown(path, 0, 0)
