"""orchestrate runner for SmallMind: the job, the prompt and the RESULT here; SmallMind in a C# child process.

The runner kit checks the job; the prompt is shaped with the model's tokenizer.json (the
`tokenizers` library) and handed to the C# runner (runner/Program.cs) as text, because
SmallMind takes text and tokenizes it itself. The engine option ``path`` picks what the C#
runner measures: ``public`` (SmallMind's public API, the product path) or ``run-gguf``
(SmallMind's own GgufModelLoader + InferenceSession, the path of its run-gguf command). The
C# runner loads once, streams warm-up and timed generations and stamps every token id as it
arrives; the per-thread CPU window covers its process over exactly the timed repetitions.

What SmallMind cannot be told (threads, ignoring end-of-sequence, FP32 compute on run-gguf)
is recorded in ``extra.limits``, never assumed: a generation that stops early is recorded as
it is and the CELL is judged with the reason.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from runnerkit import child as children
from runnerkit import job as jobs
from runnerkit import main, proc, prompt, result

ENGINE_NAME = "smallmind"
EXECUTABLE = os.environ.get("ORCHESTRATE_SMALLMIND", "/opt/engine/app/GgufInferenceDemo")
ENGINE_DIR = Path(os.environ.get("ORCHESTRATE_SMALLMIND_INFO", "/opt/engine"))
log = main.log

PATHS = {
    "public": "SmallMind's public API: SmallMindFactory.Create with GGUF import (the GGUF becomes an SMQ file, "
              "loaded by SmqModelLoader into a GPT-2-small-shaped model), one text-generation session, "
              "GenerateStreaming per generation",
    "run-gguf": "SmallMind's own GgufModelLoader.LoadFromGguf and InferenceSession.GenerateStreamAsync, the path of "
                "its console command run-gguf (Llama family: RoPE, RMSNorm, grouped-query attention, SwiGLU)",
}
COMPUTE = {
    "public": "FP32: every weight is dequantized to FP32 at load, whatever the file's format (SmqModelLoader keeps a "
              "quantized weight only in a Linear layer it finds as a direct field, which for this model is the LM "
              "head alone, and the LM head refuses it: the importer orders rows and columns as GGUF does)",
    "run-gguf": "FP32: GgufModelLoader dequantizes every weight to FP32 at load, whatever the file's format",
}
# What the path is known to leave undone for the models it accepts (images/smallmind/README.md cites the lines).
KNOWN = {
    "public": ["the learned position embeddings stay random: llama.cpp's GGUF names them position_embd.weight, "
               "SmallMind's model pos_embd.weight, and only equal names are copied"],
    "run-gguf": ["a GGUF vocabulary without BPE merges (SentencePiece, e.g. the Llama-2 one) gets SmallMind's "
                 "token-table fallback tokenizer (smallmind_loaded.smallmind.tokenizer.type says which ran)"],
}


def repetition(event: dict, index: int, prompt_tokens: int) -> dict:
    """The contract's repetition from the C# runner's stamps (SmallMind does not separate the prompt's
    forward pass from the first token: prefill_s = ttft_s)."""
    times, ids = event["times"], event["token_ids"]
    if not times or len(times) != len(ids):
        raise RuntimeError(f"repetition {index}: SmallMind generated no token")
    latencies = [later - earlier for earlier, later in zip(times, times[1:])]
    ttft = times[0] - event["sent"]
    return {"index": index, "prompt_tokens": prompt_tokens, "generated_tokens": len(ids), "prefill_s": ttft,
            "decode_s": sum(latencies), "ttft_s": ttft, "inter_token_latencies_s": latencies, "token_ids": ids}


def limits(path: str, loaded: dict) -> dict:
    """What SmallMind does not let a caller set, as it was for this CELL."""
    count = loaded["runtime"]["processor_count"]
    return {
        "threads": f"SmallMind reads no thread setting (SmallMindOptions.ThreadCount is checked and stored, never "
                   f"used); its Parallel.For loops follow .NET's processor count, {count} here (the CELL's CPUs); the "
                   f"threads used are counted from per-thread CPU",
        "compute": COMPUTE[path],
        "end_of_sequence": "SmallMind stops at its tokenizer's end-of-sequence id and has no option to go on; a "
                           "repetition that stopped early is listed in short_repetitions",
        "sampling": "greedy through top-k 1 at temperature 1.0, top-p 1.0, seed 42 (SmallMind refuses temperature 0)",
        "known_gaps": KNOWN[path],
    }


def engine_info(loaded: dict) -> dict:
    source = json.loads((ENGINE_DIR / "smallmind-source.json").read_text())
    version = f"git-{source['commit']}" if source.get("commit") else f"local-{source.get('tree_sha256', '')[:12]}"
    build = {"smallmind": source, "dotnet_runtime": loaded["runtime"]["framework"],
             "dotnet_sdk": _lines("sdk-version.txt"), "nuget_packages": _lines("nuget-packages.txt")}
    return {"name": ENGINE_NAME, "version": version, "build": build}


def _lines(name: str) -> list[str] | None:
    """The lines of one of the IMAGE's build records (/opt/engine), or None where it has none."""
    path = ENGINE_DIR / name
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else None


def run(job: jobs.Job) -> dict:
    path = jobs.option(job, "path")
    tokenizer, tokenizer_path, ids, repeats = prompt.with_hf_tokenizer(job.model_path, job.tokenizer, job.prompt,
                                                                        job.prompt_tokens)
    config = Path(tokenizer_path).with_name("config.json")
    context = json.loads(config.read_text()).get("max_position_embeddings") if config.is_file() else None
    prompt.check_context(len(ids), job.gen_tokens, context)
    prompt_file = Path(tempfile.gettempdir()) / "smallmind-prompt.txt"  # /tmp: the CELL's tmpfs
    prompt_file.write_text(tokenizer.decode(ids, skip_special_tokens=True), encoding="utf-8")
    command = [EXECUTABLE, path, job.model_path, str(job.threads), str(job.gen_tokens), str(job.warmup),
               str(job.repetitions), str(prompt_file)]
    started = time.perf_counter()
    with children.Child(command, log, "SmallMind") as engine:
        loaded = engine.expect("loaded")
        load_time_s = time.perf_counter() - started
        warm = [engine.expect("repetition") for _ in range(job.warmup)]
        engine.expect("timed-start")
        with proc.cpu_window(engine.pid) as window:
            engine.go()
            events = [engine.expect("repetition") for _ in range(job.repetitions)]
            engine.expect("timed-end")
        peak = proc.vm_hwm_bytes(engine.pid)
        engine.go()
        engine.finish()
    return document(job, path, loaded, load_time_s, peak, window, ids, repeats, tokenizer_path, warm, events)


def document(job, path, loaded, load_time_s, peak, window, ids, repeats, tokenizer_path, warm, events) -> dict:
    """The RESULT of one CELL from the C# runner's events."""
    own_ids = loaded["smallmind"].get("prompt_ids")  # run-gguf: SmallMind's own tokenization of the text
    counted = len(own_ids) if own_ids else len(ids)
    reps = [repetition(event, index, counted) for index, event in enumerate(events)]
    threads = result.threads(job, window, None, "none: SmallMind has no thread setting to read back; "
                                                f".NET's processor count was {loaded['runtime']['processor_count']}")
    extra = {
        "smallmind_path": path,
        "measured": PATHS[path],
        "limits": limits(path, loaded),
        "timing_definitions": {
            "clock": "System.Diagnostics.Stopwatch in the C# runner, in process",
            "load_time_s": "from starting the C# runner until the model was loaded (includes .NET start-up; on "
                           "the public path also the GGUF-to-SMQ import)",
            "ttft_s": "from asking SmallMind for a generation until it yielded the first token id (includes its "
                      "tokenization of the prompt)",
            "prefill_s": "equal to ttft_s: SmallMind does not separate the prompt's forward pass",
            "inter_token_latencies_s": "between consecutive token ids as SmallMind yielded them",
        },
        "prompt": {
            "text_repeats": repeats, "tokenizer": tokenizer_path,
            "smallmind_prompt_ids": own_ids,
            "prompt_tokens_counted_by": "SmallMind's own tokenizer" if own_ids else
            "the model's tokenizer.json: SmallMind's public API tokenizes the text itself and reports no count",
        },
        "short_repetitions": [r["index"] for r in reps if r["generated_tokens"] != job.gen_tokens],
        "finish_reasons": [event.get("finish_reason") for event in events],
        "warmup_generated_tokens": [len(event["token_ids"]) for event in warm],
        "smallmind_loaded": {key: value for key, value in loaded.items() if key != "event"},
    }
    if own_ids:
        extra["smallmind_loaded"]["smallmind"] = {k: v for k, v in loaded["smallmind"].items() if k != "prompt_ids"}
    return result.document(job, engine_info(loaded), threads, load_time_s, peak, ids, reps, extra)


if __name__ == "__main__":
    sys.exit(main.run("smallmind-runner", run))
