"""orchestrate runner for onnxruntime-genai: one CELL, greedy decoding in onnxruntime-genai's own generator loop.

The ENGINE onnxruntime-genai: the model folder made by onnxruntime-genai's model builder
(genai_config.json, model.onnx + external data), loaded with og.Config + og.Model; the KV
cache, position ids and attention mask are handled by the runtime (C++), as its users run it.
The runner only hands over the prompt ids and reads each token id as it is chosen. Speaks
only the container contract (docs/contract.md): no orchestrator imports.

Per repetition: a new og.Generator (a fresh KV cache; made before the clock starts), then
generator.append_tokens(prompt) (prefill: the model runs over the prompt, logits ready) and
generator.generate_next_token() + get_next_tokens() per token (greedy SelectTop over the
last logits; from the second token on, first one model run on the previous token).

Environment: ORCHESTRATE_JOB, ORCHESTRATE_BUILD_INFO (default /opt/engine/build.json).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from ortfacts import captured_stderr, cpu_facts, cpu_path, tokenizer_path  # noqa: E402
from runnerkit import job as jobs  # noqa: E402
from runnerkit import main, proc, prompt, result, timing  # noqa: E402

ENGINE_NAME = "onnxruntime-genai"
log = main.log

GENERATION_TIMING = {
    "clock": "time.perf_counter (monotonic), in process (runnerkit.timing)",
    "load_time_s": "og.Config(folder) + overlay (threads) + og.Model(config): session creation, "
                   "graph optimization, kernel setup",
    "prefill_s": "generator.append_tokens(prompt ids): one model run over the whole prompt from an empty KV cache, "
                 "until the logits are ready (a new og.Generator per repetition, made before the clock starts)",
    "ttft_s": "start of prefill until generator.generate_next_token() (greedy) + get_next_tokens() give the first id",
    "inter_token_latencies_s": "between consecutive token ids: generator.generate_next_token() (one model run on "
                               "the previous token with the runtime's KV cache, then greedy selection) + "
                               "get_next_tokens()",
    "decode_s": "sum of inter_token_latencies_s",
}


def overlay(job: jobs.Job) -> dict:
    """What the runner changes in the builder's genai_config.json: the CELL's threads, nothing else (the session's
    other settings, spinning included, stay the builder's, as its users get them; onnxruntime-genai 0.18.0's
    session_options take no config_entries: "Unknown value" when overlaid)."""
    return {"model": {"decoder": {"session_options": {"intra_op_num_threads": job.threads,
                                                      "inter_op_num_threads": 1}}}}


def read_config(folder: Path) -> dict:
    try:
        with open(folder / "genai_config.json", encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise jobs.JobError(f"cannot read {folder / 'genai_config.json'}: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise jobs.JobError(f"{folder / 'genai_config.json'} has no 'model' object")
    return config


def run_once(index: int, og, model, params, prompt_ids: list[int], gen_tokens: int) -> dict:
    generator = og.Generator(model, params)  # a fresh KV cache, before the clock starts

    def pick(_output) -> int:
        generator.generate_next_token()
        return int(generator.get_next_tokens()[0])

    rep = timing.repetition(index, prompt_ids, gen_tokens, lambda: generator.append_tokens(prompt_ids), pick,
                            lambda _token: None)
    return rep


def run(job: jobs.Job) -> dict:
    folder = Path(job.model_path)
    if not (folder / "genai_config.json").is_file():
        raise jobs.JobError(f"{folder} holds no genai_config.json (an onnxruntime-genai model folder)")
    config_file = read_config(folder)
    model_config = config_file["model"]
    vocab_size = model_config.get("vocab_size")
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise jobs.JobError(f"genai_config.json gives no vocab_size ({vocab_size!r})")
    gen_tokens = job.gen_tokens

    import numpy as np  # after the checks above: a bad job fails before the slow imports
    import onnxruntime as ort
    import onnxruntime_genai as og
    import tokenizers

    tok_path = tokenizer_path(job)
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(tok_path))
    except Exception as err:  # noqa: BLE001 - the library raises plain Exception
        raise jobs.JobError(f"cannot load tokenizer {tok_path}: {err}") from err
    # The same ids as the other ENGINEs' runners: BOS where the tokenizer adds one.
    prompt_ids, repeats = prompt.shape(lambda text: tokenizer.encode(text, add_special_tokens=True).ids,
                                       job.prompt, job.prompt_tokens)
    prompt.check_context(len(prompt_ids), gen_tokens, model_config.get("context_length"))

    changes = overlay(job)
    ort_log: list[str] = []
    with captured_stderr(ort_log):
        started = time.perf_counter()
        config = og.Config(str(folder))
        config.clear_providers()  # the CPU execution provider
        config.overlay(json.dumps(changes))
        model = og.Model(config)
        load_time_s = time.perf_counter() - started
    params = og.GeneratorParams(model)
    # min_length = max_length: end-of-sequence never ends the search early (every runner makes gen_tokens ids).
    # onnxruntime-genai does so by giving the end-of-sequence ids the lowest logit (Generator::GenerateNextToken
    # -> ApplyMinLength): where another runner's greedy choice is end-of-sequence, this one takes the next best.
    # (An overlaid eos_token_id outside the vocabulary is refused; an empty list does not replace the file's.)
    length = len(prompt_ids) + gen_tokens
    params.set_search_options(max_length=length, min_length=length, do_sample=False, num_beams=1, batch_size=1)

    for index in range(job.warmup):
        run_once(index, og, model, params, prompt_ids, gen_tokens)
    repetitions = []
    with proc.cpu_window() as window:
        for index in range(job.repetitions):
            rep = run_once(index, og, model, params, prompt_ids, gen_tokens)
            repetitions.append(rep)
            log(f"rep {index + 1}/{job.repetitions}: prefill {rep['prefill_s']:.4f} s, "
                f"decode {rep['decode_s']:.4f} s ({(gen_tokens - 1) / rep['decode_s']:.1f} tok/s)")

    threads_figures = result.threads(
        job, window, job.threads,
        f"genai_config.json's model.decoder.session_options.intra_op_num_threads overlaid to {job.threads} "
        "(ONNX Runtime: the calling thread + pool workers), inter_op_num_threads=1; onnxruntime-genai has no "
        "API that reads the session's setting back")
    engine_build = {
        "onnxruntime_genai": getattr(og, "__version__", None),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
        "cpu": cpu_facts(),
        "cpu_path": cpu_path(),
        "image": result.read_build_info(),
    }
    extra = {
        "timing_definitions": GENERATION_TIMING,
        "genai_config": {"model_type": model_config.get("type"), "vocab_size": vocab_size,
                         "context_length": model_config.get("context_length"),
                         "eos_token_id_in_file": model_config.get("eos_token_id"),
                         "decoder_session_options_in_file": model_config.get("decoder", {}).get("session_options"),
                         "overlay": changes, "overlay_how": "og.Config.overlay(JSON): the CELL's threads"},
        "search": {"max_length": length, "min_length": length, "do_sample": False, "num_beams": 1,
                   "end_of_sequence": "min_length = max_length: the end-of-sequence ids get the lowest logit until "
                                      "gen_tokens ids are made (other runners ignore end-of-sequence; where their "
                                      "greedy choice is it, this runner's is the next best)"},
        "prompt": {"text_repeats": repeats, "tokenizer": str(tok_path),
                   "tokenize": "tokenizers.Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=True)"},
        "threads_in_process": window.threads_seen,
        "model": {"path": str(folder), "files": sorted(p.name for p in folder.iterdir())},
        "onnxruntime_log": ort_log,
    }
    engine = {"name": ENGINE_NAME, "version": f"{getattr(og, '__version__', 'unknown')}+onnxruntime{ort.__version__}",
              "build": engine_build}
    return result.document(job, engine, threads_figures, load_time_s, proc.vm_hwm_bytes(), prompt_ids,
                           repetitions, extra)


if __name__ == "__main__":
    sys.exit(main.run("onnxruntime-genai-runner", run, kinds=(jobs.GENERATE,)))
