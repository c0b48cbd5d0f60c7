"""The onnxruntime-genai runner's own logic, without onnxruntime-genai: what it overlays and what it refuses."""

import importlib
import json
import sys

import pytest

from orchestrator.images import imagebuild

RUNNER_DIR = imagebuild.IMAGES_DIR / "onnxruntime"


@pytest.fixture(scope="module")
def genai(tmp_path_factory):
    """genai_runner imported beside the kit as the IMAGE places it (/opt/genai: its own options declaration)."""
    root = tmp_path_factory.mktemp("genai")
    dockerfile = (RUNNER_DIR / "Dockerfile").read_text()
    files = dict((rel, content) for rel, content, _ in imagebuild.shared_files("onnxruntime", dockerfile))
    for rel, content in files.items():
        if rel.startswith("_shared/runnerkit/"):
            target = root / "runnerkit" / rel.split("/", 2)[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    (root / "runnerkit" / "options.schema.json").write_bytes(
        files["_shared/runnerkit/options.onnxruntime-genai.schema.json"])
    for name in ("genai_runner.py", "ortfacts.py"):
        (root / name).write_bytes((RUNNER_DIR / name).read_bytes())
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("genai_runner"), importlib.import_module("runnerkit.job")
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n in ("genai_runner", "ortfacts", "runnerkit")
                     or n.startswith("runnerkit.")]:
            del sys.modules[name]


def job(jobs, tmp_path, folder, **options):
    document = {"schema_version": 1, "run_id": "r", "cell_id": "c-000000000001",
                "engine": {"name": "onnxruntime-genai", "options": options},
                "model": {"id": "m", "format": "onnx-genai-fp32", "path": str(folder), "sha256": "0" * 64,
                          "tokenizer": None},
                "threads": 2, "workload": {"name": "w", "prompt": "Once", "prompt_tokens": 16, "gen_tokens": 8},
                "warmup": 1, "repetitions": 2, "output_dir": str(tmp_path)}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(document))
    return jobs.load(path)


def test_the_overlay_sets_the_threads(genai, tmp_path):
    runner, jobs = genai
    changes = runner.overlay(job(jobs, tmp_path, tmp_path))
    assert changes == {"model": {"decoder": {"session_options": {
        "intra_op_num_threads": 2, "inter_op_num_threads": 1}}}}


def test_a_folder_without_genai_config_is_refused_before_the_imports(genai, tmp_path):
    runner, jobs = genai
    with pytest.raises(jobs.JobError, match="genai_config.json"):
        runner.run(job(jobs, tmp_path, tmp_path / "nothing"))


@pytest.mark.parametrize("text", ["[]", "{\"model\": 3}", "not json", "{\"model\": {\"vocab_size\": \"x\"}}"])
def test_a_broken_genai_config_is_a_job_error(genai, tmp_path, text):
    runner, jobs = genai
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "genai_config.json").write_text(text)
    with pytest.raises(jobs.JobError):
        runner.run(job(jobs, tmp_path, folder))


def test_the_tokenizer_is_the_model_folders_hf_one(genai, tmp_path):
    runner, jobs = genai
    assert str(runner.tokenizer_path(job(jobs, tmp_path, "/models/onnx-genai/fp32"))) == "/models/hf/tokenizer.json"
