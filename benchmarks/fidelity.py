"""Fidelity benchmark: our decode rate of an ENGINE against the engine's own fastest documented path.

    .venv/bin/python -m benchmarks.fidelity [--engine llama.cpp|transformers] [--model tinystories-15m]
                                            [--formats gguf-f32,gguf-q8_0,gguf-q4_0]
                                            [--threads 1] [--repetitions 3] [--rounds 20] [--prompt-tokens 64]
                                            [--gen-tokens 64] [--results DIR] [--run RUN_DIR]

Runs one RUN of the llama.cpp ENGINE with the option `llama_bench: true`: in each CELL's
container, on the same cores and model file, the runner times its repetitions (A), runs
llama-bench's prefill (`-p P -n 0`) and decode at the same depth (`-p 0 -n G-1 -d P`: the
same tokens our inter-token latencies cover) with as many repetitions (B B), then times
its repetitions again (A). With ``--rounds N`` every CELL runs in N containers (the RUN's
rounds, in a seeded, shuffled order): each is a fresh process of ours and of llama-bench;
where a process's pages land moves its rate by a few percent, and so does the host's drift
from one block to the next. Prints, per format, the medians and spreads of:

- ours: (G - 1) / decode_s, what a user waits for (llama_decode + logits + argmax);
- ours, engine only: the same tokens timed from llama_decode until the logits are readable;
- llama-bench tg at the same depth (its samples_ts);
- the ratio ours / llama-bench: per round, our median over A A against llama-bench's over
  B (the ABBA pairs cancel drift inside a container); the CELL's ratio is the median of the
  rounds' ratios, with its order-statistics interval and range; the prefill rates beside.

For transformers (``--engine transformers``, option ``reference: true``) the reference is
transformers' own ``model.generate()`` (greedy, its own loop and KV cache, a streamer reading
the clock as each token arrives), run in the same process between two blocks of ours (ABA);
its tokens are checked against ours. It has no separate prefill figure (its time to the first
token is shown beside ours) and no engine-only split.

With --run it re-reads an earlier RUN folder instead of running. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# Per ENGINE: the option that times its reference path, and the formats measured by default.
REFERENCES = {
    "llama.cpp": {"option": "llama_bench", "formats": "gguf-f32,gguf-q8_0,gguf-q4_0", "label": "llama-bench tg"},
    "transformers": {"option": "reference", "formats": "safetensors", "label": "generate()"},
}


def matrix_text(model: str, formats: list[str], threads: int, repetitions: int, prompt: int, gen: int,
                rounds: int = 1, engine: str = "llama.cpp") -> str:
    return f"""version: 1
engines:
  - name: {engine}
    options: {{{REFERENCES[engine]["option"]}: true}}
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
repetitions: {repetitions * rounds}
rounds: {rounds}
seed: 14
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


def samples(record: dict) -> dict[str, list[float]]:
    """The fidelity samples of one container's record (one CELL, or one round of it)."""
    result = record["result"]
    gen = record["cell"]["workload"]["gen_tokens"]
    extra = result.get("extra", {})
    if "llama_bench" not in extra:
        return reference_samples(result, gen)
    bench = extra["llama_bench"]
    first = [(gen - 1) / rep["decode_s"] for rep in result["repetitions"]]
    second = [rep["gen_tok_s"] for rep in bench["second_a"]]
    return {"first": first, "second": second, "ours": first + second,
            "engine_only": [rep["engine_only_tok_s"] for rep in extra["harness"]["repetitions"]]
            + [rep["engine_only_tok_s"] for rep in bench["second_a"]],
            "shares": [rep["harness_share"] for rep in extra["harness"]["repetitions"]],
            "tg": bench_samples(bench["decode"]), "pp": bench_samples(bench["prefill"]),
            "ours_pp": [rep["prompt_tokens"] / rep["prefill_s"] for rep in result["repetitions"]]}


def reference_samples(result: dict, gen: int) -> dict[str, list]:
    """The samples of a container whose runner timed the engine's own path (``extra.reference``)."""
    ref = result["extra"]["reference"]
    first = [(gen - 1) / rep["decode_s"] for rep in result["repetitions"]]
    second = [rep["gen_tok_s"] for rep in ref["second_a"]]
    return {"first": first, "second": second, "ours": first + second, "engine_only": [], "shares": [],
            "tg": [rep["gen_tok_s"] for rep in ref["repetitions"]], "pp": [],
            "ours_pp": [rep["prompt_tokens"] / rep["prefill_s"] for rep in result["repetitions"]],
            "ours_ttft": [rep["ttft_s"] for rep in result["repetitions"]],
            "ref_ttft": [rep["ttft_s"] for rep in ref["repetitions"]],
            "same_tokens": [ref["same_tokens"]], "call": [ref["call"]]}


def containers(run_dir: Path, record: dict) -> list[dict]:
    """The records of every container that ran a CELL: one per round, or the CELL's own record."""
    from orchestrator.execute import rounds

    batches = [b.record for b in rounds.load_batches(run_dir / "cells" / record["cell_id"])]
    return [b for b in batches if b["status"] == "ok"] or [record]


def _ratio(a: list[float], b: list[float]) -> float | None:
    return statistics.median(a) / statistics.median(b) if a and b else None


def row(record: dict, run_dir: Path | None = None) -> dict:
    """The fidelity figures of one CELL over its containers (rounds).

    A container runs ours, llama-bench, ours (ABBA), so each round gives one paired ratio
    with the drift inside the container cancelled; the host's own drift moves the blocks of
    one container by a few percent (ours against ours), so the CELL's ratio is the median of
    the rounds' ratios, with its order-statistics interval (orchestrator/certainty.py).
    """
    from orchestrator.stats import certainty

    found = containers(run_dir, record) if run_dir else [record]
    parts = [samples(r) for r in found]
    pooled = {key: [v for part in parts for v in part.get(key, [])] for key in parts[0]}
    per_round = [r for r in (_ratio(part["ours"], part["tg"]) for part in parts) if r is not None]
    engine_round = [r for r in (_ratio(part["engine_only"], part["tg"]) for part in parts) if r is not None]
    interval = certainty.median_interval(per_round)
    return {"format": record["cell"]["format"], "threads": record["cell"]["threads"], "rounds": len(parts),
            "ours": spread(pooled["ours"]), "ours_first_a": spread(pooled["first"]),
            "ours_second_a": spread(pooled["second"]),
            "engine_only": spread(pooled["engine_only"]), "bench_tg": spread(pooled["tg"]),
            "ratio": statistics.median(per_round) if per_round else None,
            "ratio_interval": [interval.low, interval.high, interval.coverage] if interval else None,
            "ratio_engine_only": statistics.median(engine_round) if engine_round else None,
            "ratio_per_round": per_round,
            "harness_share_median": statistics.median(pooled["shares"]) if pooled["shares"] else None,
            "ours_prefill": spread(pooled["ours_pp"]), "bench_pp": spread(pooled["pp"]),
            "ours_ttft_ms": spread([1000 * v for v in pooled.get("ours_ttft", [])]),
            "reference_ttft_ms": spread([1000 * v for v in pooled.get("ref_ttft", [])]),
            "same_tokens": all(pooled["same_tokens"]) if "same_tokens" in pooled else None,
            "bench_tg_command": pooled["call"][0] if "call" in pooled
            else found[0]["result"]["extra"]["llama_bench"]["decode"]["command_line"]}


def table(rows: list[dict], label: str = "llama-bench") -> str:
    head = (f"| format | threads | rounds | ours gen tok/s (A+A) | ours engine-only tok/s | {label} gen tok/s | "
            f"ratio ours/{label} (median of rounds) | its interval (coverage) | rounds min-max | "
            f"ratio engine-only/{label} | harness share | ours prompt tok/s | {label} prompt tok/s | "
            f"ours TTFT ms | {label} TTFT ms | same tokens |")
    lines = [head, "|" + " --- |" * 16]
    for r in rows:
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else "-"  # noqa: E731
        rounds = r["ratio_per_round"]
        span = f"{min(rounds):.3f}-{max(rounds):.3f}" if rounds else "-"
        ci = r["ratio_interval"]
        ci = f"[{ci[0]:.3f}, {ci[1]:.3f}] ({ci[2]:.3f})" if ci else "-"
        same = {True: "yes", False: "no", None: "-"}[r["same_tokens"]]
        lines.append(f"| {r['format']} | {r['threads']} | {r['rounds']} | {r['ours']} | {r['engine_only']} | "
                     f"{r['bench_tg']} | {fmt(r['ratio'])} | {ci} | {span} | {fmt(r['ratio_engine_only'])} | "
                     f"{fmt(r['harness_share_median'])} | {r['ours_prefill']} | {r['bench_pp']} | "
                     f"{r['ours_ttft_ms']} | {r['reference_ttft_ms']} | {same} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="llama.cpp", choices=sorted(REFERENCES),
                        help="the ENGINE whose figure is held to its own path (default llama.cpp)")
    parser.add_argument("--model", default="tinystories-15m")
    parser.add_argument("--formats", help="default: the ENGINE's formats (llama.cpp: gguf-f32,gguf-q8_0,gguf-q4_0; "
                                          "transformers: safetensors)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3,
                        help="per container and side: ours twice (A A), the reference once (B) (default 3: "
                             "short blocks, so that the host's level shifts land on both sides)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="containers per CELL (each a fresh process of ours and of llama-bench), in a "
                             "seeded, shuffled order; the ratio is the median of the rounds' ratios (default 20)")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--run", help="an earlier RUN folder to read instead of running")
    args = parser.parse_args(argv)

    from orchestrator.matrix import matrixfile
    from orchestrator.results import recordfiles
    from orchestrator.run import execute_run

    if args.run:
        run_dir = Path(args.run)
    else:
        formats = (args.formats or REFERENCES[args.engine]["formats"]).split(",")
        text = matrix_text(args.model, formats, args.threads, args.repetitions,
                           args.prompt_tokens, args.gen_tokens, args.rounds, args.engine)
        run_dir = execute_run(matrixfile.parse(text, "fidelity.yaml"), Path(args.results), print)
    run, records = recordfiles.read_run(run_dir)
    rows = [row(r, run_dir) for r in records if r["status"] == "ok"]
    print(f"RUN {run['run_id']} on {run['host']['cpu']['brand']} ({run_dir})")
    engine = records[0]["cell"]["engine"] if records else args.engine
    print(table(rows, "llama-bench" if engine == "llama.cpp" else REFERENCES[engine]["label"]))
    json.dump(rows, sys.stderr, indent=1)
    print(file=sys.stderr)
    return 0 if len(rows) == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
