"""orchestrate runner for SmallMind: the job, the prompt and the RESULT here; the engine in a C# child process.

The runner kit checks the job; the prompt is shaped with the model's tokenizer
(job.model.tokenizer, the `tokenizers` library) and handed to the C# runner as text
(SmallMind's public API takes text and tokenizes it itself; it does not report the prompt
length: `extra.prompt` says so). The C# runner (runner/Program.cs) loads the model once
through SmallMindFactory.Create with GGUF import, streams warm-up and timed generations
and stamps every token id with Stopwatch as GenerateStreaming yields it; its stdout is one
JSON object per line. The per-thread CPU window covers the C# process over exactly the
timed repetitions (it waits on stdin before and after them). SmallMind's ThreadCount is set
to the CELL's threads and recorded; the threads actually used come from the per-thread
figures, so the TABLE shows what the knob really does.

SmallMind has no ignore-EOS in its public API: a generation that stops before gen_tokens
is recorded as it is (the CELL is then judged inconsistent, with the reason).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from runnerkit import job as jobs
from runnerkit import main, proc, prompt, result

ENGINE_NAME = "smallmind"
log = main.log


def read_event(child: subprocess.Popen, expected: str) -> dict:
    """The next JSON line of the C# runner, which must be of the expected kind."""
    while True:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"the SmallMind runner ended (status {child.wait()}) before '{expected}'")
        line = line.strip()
        if not line.startswith("{"):
            log(f"smallmind: {line}")  # SmallMind's own console output
            continue
        event = json.loads(line)
        if event.get("event") != expected:
            raise RuntimeError(f"the SmallMind runner sent {event.get('event')!r}, expected {expected!r}")
        return event


def repetition(event: dict, index: int, n_prompt: int) -> dict:
    """The contract's repetition from the C# runner's stamps (prefill is not separable: prefill_s = ttft_s)."""
    times, ids = event["times"], event["token_ids"]
    if not times:
        raise RuntimeError(f"repetition {index}: SmallMind generated no token")
    latencies = [later - earlier for earlier, later in zip(times, times[1:])]
    ttft = times[0] - event["sent"]
    return {"index": index, "prompt_tokens": n_prompt, "generated_tokens": len(ids), "prefill_s": ttft,
            "decode_s": sum(latencies), "ttft_s": ttft, "inter_token_latencies_s": latencies, "token_ids": ids}


def run(job: jobs.Job) -> dict:
    tokenizer, tokenizer_path, ids, repeats = prompt.with_hf_tokenizer(job.model_path, job.tokenizer, job.prompt,
                                                                        job.prompt_tokens)
    config = Path(tokenizer_path).with_name("config.json")
    context = json.loads(config.read_text()).get("max_position_embeddings") if config.is_file() else None
    prompt.check_context(len(ids), job.gen_tokens, context)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    prompt_file = Path("/tmp/prompt.txt")
    prompt_file.write_text(text, encoding="utf-8")
    command = [os.environ.get("ORCHESTRATE_SMALLMIND", "/opt/engine/app/OrchestrateSmallMind"), job.model_path,
               str(job.threads), str(job.gen_tokens), str(job.warmup), str(job.repetitions), str(prompt_file),
               str(context or len(ids) + job.gen_tokens)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        loaded = read_event(child, "loaded")
        load_time_s = time.perf_counter() - started
        for _ in range(job.warmup):
            read_event(child, "repetition")
        read_event(child, "timed-start")
        with proc.cpu_window(child.pid) as window:
            child.stdin.write("go\n")
            child.stdin.flush()
            events = [read_event(child, "repetition") for _ in range(job.repetitions)]
            read_event(child, "timed-end")
        peak = proc.vm_hwm_bytes(child.pid)
        child.stdin.write("done\n")
        child.stdin.flush()
        if child.wait(timeout=60) != 0:
            raise RuntimeError(f"the SmallMind runner exited with status {child.returncode}")
    finally:
        if child.poll() is None:
            child.kill()
    reps = [repetition(event, index, len(ids)) for index, event in enumerate(events)]
    source = json.loads(Path("/opt/engine/smallmind-source.json").read_text())
    threads = result.threads(job, window, None,
                             f"none: SmallMind's public API does not report its threads; SmallMindOptions.ThreadCount "
                             f"was set to {loaded.get('thread_count_set')} (Environment.ProcessorCount "
                             f"{loaded.get('processor_count')}); per_thread covers the .NET process")
    engine = {"name": ENGINE_NAME, "version": f"git-{source['commit']}" if source.get("commit") else "local-checkout",
              "build": {"smallmind": source, "dotnet_runtime": loaded.get("runtime"),
                        "sdk": Path("/opt/engine/sdk-version.txt").read_text().strip(),
                        "capabilities": loaded.get("capabilities")}}
    extra = {
        "timing_definitions": {
            "clock": "System.Diagnostics.Stopwatch in the C# runner, in process",
            "load_time_s": "from starting the C# runner until SmallMindFactory.Create and the session returned "
                           "(includes .NET start-up and the GGUF import)",
            "ttft_s": "from calling GenerateStreaming until it yielded the first token id",
            "prefill_s": "equal to ttft_s: SmallMind's public API does not separate the prompt's forward pass",
            "inter_token_latencies_s": "between consecutive token ids yielded by GenerateStreaming",
        },
        "prompt": {"text_repeats": repeats, "tokenizer": tokenizer_path,
                   "note": "SmallMind receives the prompt as text and tokenizes it with its own tokenizer; its "
                           "prompt length is not reported by the public API"},
        "short_repetitions": [r["index"] for r in reps if r["generated_tokens"] != job.gen_tokens],
        "sampling": "TopK 1, Temperature 1.0, TopP 1.0, Seed 42 (greedy through top-k 1)",
        "smallmind_loaded": loaded,
    }
    return result.document(job, engine, threads, load_time_s, peak, ids, reps, extra)


if __name__ == "__main__":
    sys.exit(main.run("smallmind-runner", run))
