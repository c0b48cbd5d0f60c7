"""The Python half of the SmallMind IMAGE (runner.py + the kit's child.py), against a stand-in for the C# runner.

The stand-in speaks the C# runner's protocol (runner/Program.cs) with made-up stamps, so these
tests check the protocol, the handshakes and the RESULT's shape, never SmallMind's speed.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest

from orchestrator import schemas
from orchestrator.images import imagebuild

HERE = imagebuild.IMAGES_DIR / "smallmind"

FAKE_CHILD = """\
#!{python}
import json, sys
def emit(**event):
    print("@orchestrate " + json.dumps(event), flush=True)
path, model, threads, gen, warmup, reps, prompt_file = sys.argv[1:]
print("SmallMind says hello", flush=True)
smallmind = {{"api": "test"}}
if path == "run-gguf":
    smallmind["prompt_ids"] = [1, 7, 7, 9]
emit(event="loaded", path=path, load_s=0.25, smallmind=smallmind,
     runtime={{"framework": ".NET 10.0.11", "processor_count": int(threads)}})
for i in range(int(warmup) + int(reps)):
    if i == int(warmup):
        emit(event="timed-start")
        sys.stdin.readline()
    times = [10.5, 10.6, 10.8] if i % 2 == 0 else [10.5, 10.75]
    emit(event="repetition", index=i, timed=i >= int(warmup), sent=10.0, times=times,
         token_ids=list(range(len(times))), finish_reason="MaxTokens" if len(times) == 3 else "EndOfSequence")
emit(event="timed-end")
sys.stdin.readline()
"""


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    """runner.py imported beside the runner kit as the IMAGE assembles it, with a stand-in C# runner."""
    kit = tmp_path / "kit"
    for rel, content, _ in imagebuild.shared_files("smallmind", (HERE / "Dockerfile").read_text()):
        target = kit / "runnerkit" / rel.split("/", 2)[2]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (kit / "runner.py").write_bytes((HERE / "runner.py").read_bytes())
    fake = tmp_path / "GgufInferenceDemo"
    fake.write_text(FAKE_CHILD.format(python=sys.executable))
    fake.chmod(0o755)
    info = tmp_path / "engine"
    info.mkdir()
    (info / "smallmind-source.json").write_text(json.dumps({"source": "https://example.org/SmallMind",
                                                            "commit": "e84483fcf4f6bb84a751432d09822eb69510043a"}))
    (info / "sdk-version.txt").write_text("10.0.400\n")
    (info / "nuget-packages.txt").write_text("microsoft.sourcelink.github/8.0.0 sha512:abc\n")
    monkeypatch.setenv("ORCHESTRATE_SMALLMIND", str(fake))
    monkeypatch.setenv("ORCHESTRATE_SMALLMIND_INFO", str(info))
    monkeypatch.syspath_prepend(str(kit))
    for name in [m for m in sys.modules if m == "runner" or m.startswith("runnerkit")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("runner")
    monkeypatch.setattr(module.prompt, "with_hf_tokenizer", lambda *a: (Decoder(), str(tmp_path / "tokenizer.json"),
                                                                         [1, 2, 3], 1))
    monkeypatch.setattr(module.tempfile, "tempdir", str(tmp_path))
    yield module
    for name in [m for m in sys.modules if m == "runner" or m.startswith("runnerkit")]:
        sys.modules.pop(name, None)


class Decoder:
    def decode(self, ids, skip_special_tokens=True):
        return "Once upon a time"


def job(module, tmp_path, path: str | None):
    jobs = importlib.import_module("runnerkit.job")
    options = {} if path is None else {"path": path}
    return jobs.Job(cell_id="c-000000000000", engine="smallmind", options=options, model_id="tinystories-15m",
                    model_format="gguf-f32", model_path=str(tmp_path / "model.gguf"), tokenizer=None, threads=1,
                    prompt="Once upon a time", prompt_tokens=None, gen_tokens=3, warmup=1, repetitions=3,
                    output_dir=str(tmp_path))


def test_run_gguf_counts_the_prompt_with_smallminds_tokenizer_and_records_its_limits(runner, tmp_path):
    document = runner.run(job(runner, tmp_path, "run-gguf"))
    assert schemas.problems("result", document) == []
    reps = document["repetitions"]
    assert [r["generated_tokens"] for r in reps] == [2, 3, 2]  # after one warm-up: odd, even, odd
    assert reps[0]["ttft_s"] == pytest.approx(0.5) and reps[0]["prefill_s"] == reps[0]["ttft_s"]
    assert reps[1]["inter_token_latencies_s"] == pytest.approx([0.1, 0.2]) and reps[1]["decode_s"] == pytest.approx(0.3)
    assert {r["prompt_tokens"] for r in reps} == {4}  # SmallMind's own ids, not the 3 of tokenizer.json
    extra = document["extra"]
    assert extra["smallmind_path"] == "run-gguf" and "run-gguf" in extra["measured"]
    assert extra["short_repetitions"] == [0, 2]
    assert extra["finish_reasons"] == ["EndOfSequence", "MaxTokens", "EndOfSequence"]
    assert extra["prompt"]["smallmind_prompt_ids"] == [1, 7, 7, 9]
    assert "prompt_ids" not in extra["smallmind_loaded"]["smallmind"]
    assert "never used" in extra["limits"]["threads"] and "1 here" in extra["limits"]["threads"]
    assert "FP32" in extra["limits"]["compute"] and "end-of-sequence" in extra["limits"]["end_of_sequence"]
    assert document["engine"]["version"] == "git-e84483fcf4f6bb84a751432d09822eb69510043a"
    assert document["engine"]["build"]["nuget_packages"] == ["microsoft.sourcelink.github/8.0.0 sha512:abc"]
    assert document["prompt_token_ids"] == [1, 2, 3]
    assert (tmp_path / "smallmind-prompt.txt").read_text() == "Once upon a time"


def test_the_public_path_is_the_default_and_says_who_counted_the_prompt(runner, tmp_path):
    document = runner.run(job(runner, tmp_path, None))
    assert document["extra"]["smallmind_path"] == "public"
    assert {r["prompt_tokens"] for r in document["repetitions"]} == {3}
    assert "reports no count" in document["extra"]["prompt"]["prompt_tokens_counted_by"]
    assert document["extra"]["prompt"]["smallmind_prompt_ids"] is None
    assert "position_embd.weight" in document["extra"]["limits"]["known_gaps"][0]


def test_a_line_without_the_prefix_is_smallminds_own_output_and_a_bad_event_is_refused(runner):
    child = sys.modules["runnerkit.child"]
    assert child.parse("Loading GGUF model...\n") is None
    assert child.parse('@orchestrate {"event": "loaded"}\n') == {"event": "loaded"}
    with pytest.raises(child.ChildError, match="without a kind"):
        child.parse('@orchestrate {"path": "public"}\n')


def test_a_runner_that_ends_early_is_an_error_naming_the_missing_event(runner, tmp_path):
    child = sys.modules["runnerkit.child"]
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent("""\
        import sys
        print("Error: Unsupported tensor type: Q4_1", file=sys.stderr)
        sys.exit(1)
    """))
    with child.Child([sys.executable, str(script)], lambda line: None) as engine:
        with pytest.raises(child.ChildError, match=r"ended \(status 1\) before 'loaded'"):
            engine.expect("loaded")
