"""Fidelity benchmark: our llama.cpp decode rate against llama.cpp's own `llama-bench`.

    .venv/bin/python -m benchmarks.fidelity [--model tinystories-15m] [--formats gguf-f32,gguf-q8_0,gguf-q4_0]
                                            [--threads 1] [--repetitions 10] [--prompt-tokens 64]
                                            [--gen-tokens 64] [--results DIR] [--run RUN_DIR]

Runs one RUN of the llama.cpp ENGINE with the option `llama_bench: true`: in each CELL's
container, on the same cores and model file, the runner times its repetitions (A), runs
llama-bench's prefill (`-p P -n 0`) and decode at the same depth (`-p 0 -n G-1 -d P`: the
same tokens our inter-token latencies cover) with as many repetitions (B B), then times
its repetitions again (A). Prints, per format, the medians and spreads of:

- ours: (G - 1) / decode_s, what a user waits for (llama_decode + logits + argmax);
- ours, engine only: the same tokens timed from llama_decode until the logits are readable;
- llama-bench tg at the same depth (its samples_ts);
- the ratios ours / llama-bench, and the prefill rates beside each other.

With --run it re-reads an earlier RUN folder instead of running. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def matrix_text(model: str, formats: list[str], threads: int, repetitions: int, prompt: int, gen: int) -> str:
    return f"""version: 1
engines:
  - name: llama.cpp
    options: {{llama_bench: true}}
models:
  - id: {model}
    formats: [{", ".join(formats)}]
threads: [{threads}]
workloads:
  - name: p{prompt}-g{gen}
    prompt: "Once upon a time"
    prompt_tokens: {prompt}
    gen_tokens: {gen}
warmup: 1
repetitions: {repetitions}
memory_limit: 4g
timeout_s: 1800
"""


def spread(values: list[float]) -> str:
    """median ± standard deviation (n)."""
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.median(values):.1f} ± {sd:.1f} (n={len(values)})"


def bench_samples(block: dict) -> list[float]:
    """llama-bench's per-repetition tokens/s from one invocation's JSON output."""
    samples = []
    for test in block.get("results", []):
        samples.extend(float(v) for v in test.get("samples_ts", []))
    return samples


def row(record: dict) -> dict:
    """The fidelity figures of one CELL record."""
    result = record["result"]
    gen = record["cell"]["workload"]["gen_tokens"]
    extra = result.get("extra", {})
    bench = extra["llama_bench"]
    first = [(gen - 1) / rep["decode_s"] for rep in result["repetitions"]]
    second = [rep["gen_tok_s"] for rep in bench["second_a"]]
    engine_only = [rep["engine_only_tok_s"] for rep in extra["harness"]["repetitions"]]
    engine_only += [rep["engine_only_tok_s"] for rep in bench["second_a"]]
    shares = [rep["harness_share"] for rep in extra["harness"]["repetitions"]]
    tg = bench_samples(bench["decode"])
    pp = bench_samples(bench["prefill"])
    ours_pp = [rep["prompt_tokens"] / rep["prefill_s"] for rep in result["repetitions"]]
    ours = first + second
    ratio = statistics.median(ours) / statistics.median(tg) if ours and tg else None
    ratio_engine = statistics.median(engine_only) / statistics.median(tg) if engine_only and tg else None
    return {"format": record["cell"]["format"], "threads": record["cell"]["threads"],
            "ours": spread(ours), "ours_first_a": spread(first), "ours_second_a": spread(second),
            "engine_only": spread(engine_only), "bench_tg": spread(tg),
            "ratio": ratio, "ratio_engine_only": ratio_engine,
            "harness_share_median": statistics.median(shares) if shares else None,
            "ours_prefill": spread(ours_pp), "bench_pp": spread(pp),
            "bench_tg_command": bench["decode"]["command_line"]}


def table(rows: list[dict]) -> str:
    head = ("| format | threads | ours gen tok/s (A+A) | ours engine-only tok/s | llama-bench tg tok/s | "
            "ratio ours/bench | ratio engine-only/bench | harness share | ours prompt tok/s | llama-bench pp tok/s |")
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else "-"  # noqa: E731
        lines.append(f"| {r['format']} | {r['threads']} | {r['ours']} | {r['engine_only']} | {r['bench_tg']} | "
                     f"{fmt(r['ratio'])} | {fmt(r['ratio_engine_only'])} | {fmt(r['harness_share_median'])} | "
                     f"{r['ours_prefill']} | {r['bench_pp']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tinystories-15m")
    parser.add_argument("--formats", default="gguf-f32,gguf-q8_0,gguf-q4_0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--run", help="an earlier RUN folder to read instead of running")
    args = parser.parse_args(argv)

    from orchestrator import matrix, results
    from orchestrator.run import execute_run

    if args.run:
        run_dir = Path(args.run)
    else:
        text = matrix_text(args.model, args.formats.split(","), args.threads, args.repetitions,
                           args.prompt_tokens, args.gen_tokens)
        run_dir = execute_run(matrix.parse(text, "fidelity.yaml"), Path(args.results), print)
    run, records = results.read_run(run_dir)
    rows = [row(r) for r in records if r["status"] == "ok"]
    print(f"RUN {run['run_id']} on {run['host']['cpu']['brand']} ({run_dir})")
    print(table(rows))
    json.dump(rows, sys.stderr, indent=1)
    print(file=sys.stderr)
    return 0 if len(rows) == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
