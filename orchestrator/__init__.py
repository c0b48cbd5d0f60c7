"""orchestrate: a containerized benchmark MATRIX orchestrator for LLM inference on CPUs.

The data flow is the folder listing (each sub-package a step; imports run downward only,
tests/unit/test_architecture.py checks it):

    matrix/    MATRIX file -> a validated Matrix (bounded YAML, schema, limits)
    plan/      Matrix -> the PLAN: CELLs with stable ids, each checked against its ENGINE; SHARDs
    images/    ENGINE IMAGEs built from images/<engine>/, tagged by content; base images; prerequisites
    models/    the model and text catalogues, the model STORE, downloads, tokenized evaluation texts
    execute/   a RUN's CELLs: one pinned, locked-down container per BATCH, in ROUNDs; SMOKE RUNs; resume
    results/   judge a RESULT; read and write RECORDs and run.json through their one typed reader
    merge/     RECORDs -> the TABLE (pandas), agreement and perplexity columns; RUNs of several MACHINEs;
               the SUMMARY's standings against the BASELINE, quality columns, thread scaling
    report/    the TABLE's exporters (CSV, Markdown, JSON), summary.md, report.md, report.html and its charts
    compare/   two RUNs CELL by CELL: ratios with intervals and VERDICTs; BUNDLEs
    run.py, reproduce.py   the conductors: execute a RUN; reproduce a BUNDLE and compare
    cli.py, cliargs.py     the command line on top
  below the steps:
    files/     every file from elsewhere read bounded, beneath its root; atomic writes; locks; archives
    host/      the machine: the one module that talks to Docker, cgroups, topology, frequency, noise, CI
    stats/     order statistics and intervals, the ratio of two samples, noise thresholds, the front (pure)
    engines/   the ENGINE adapters, one small module each, in one table
    errors.py, schemas.py  the one error root; the JSON Schemas of schemas/

Vocabulary, used the same way in code, CLI help, docs and result files. "Run" is a noun
(a RUN); what the orchestrator does to a CELL is to *execute* it.

MATRIX    the YAML file a user writes: engines x models (and formats) x thread counts x
          workloads, with repetitions, rounds, placement and limits.
CELL      one coordinate of the MATRIX: engine (with options) x model x format x threads x
          workload. Its id (``c-`` + 12 hex digits) is a hash of its coordinates, so the same
          MATRIX gives the same ids on any machine.
PLAN      the ordered tuple of CELLs a MATRIX expands to.
SHARD     one of N stable parts of a PLAN (`run --shard I/N`), run on one machine or CI job.
ENGINE    an adapter for one inference framework (llama.cpp, ...): which IMAGE it runs, which
          model formats and workload kinds it reads, which options it takes.
IMAGE     the Docker image of one ENGINE, built from ``images/<engine>/`` and tagged by a hash of
          its build context and build arguments.
RUNNER    the program inside an IMAGE that reads a job and writes a RESULT (docs/contract.md);
          the RUNNER KIT (images/_shared/runnerkit) is the contract's one implementation.
WORKLOAD  what a CELL does: generate (a prompt, then greedy tokens) or perplexity (score a TEXT).
TEXT      a pinned evaluation text of catalogue/texts.yaml, made from Debian packages.
STORE     the local model store: one folder per catalogue model, a manifest of every file.
RUN       one execution of a PLAN (or of a SHARD of it); it has a run id and a folder
          ``results/<run-id>/`` with run.json.
SESSION   one process's part of a RUN: the first, then each `run --resume` of it.
ROUND     one pass over the RUN's CELLs, in a seeded, shuffled order; a RUN has one or more.
BATCH     one container of one CELL in one ROUND (or TOP-UP): model load, warm-up, repetitions.
TOP-UP    a BATCH more for a CELL whose decode-rate CV is above the MATRIX's target.
SMOKE RUN one tiny CELL per IMAGE x model format before the first CELL: can it run on this host?
RESULT    what one BATCH's runner wrote (result.json), judged by results/judge.py.
RECORD    what the orchestrator keeps of a CELL (record.json): coordinates, status, what was
          measured from outside the container, provenance, and its RESULT (its BATCHes merged).
REFERENCE CELL  the CELL whose greedy tokens and perplexity the others of its model and workload
          are compared with (llama.cpp gguf-f32, else the first F32 CELL); its VERDICT, AGREEMENT.
NOISE GUARD  a check of what else ran on a CELL's cores while it ran (steal, other processes,
          swap, throttling); a CELL that trips one is flagged in the TABLE.
TABLE     the merged comparison of a RUN's RECORDs (CSV, Markdown, JSON), one row per CELL.
MACHINE   an architecture and CPU model (and CI runner labels): what `orchestrate merge` keeps apart.
BUNDLE    a RUN packed in one file (`orchestrate bundle`) for a colleague to compare or reproduce.
VERDICT   what `compare` says of a metric of a CELL: faster, slower, same within noise, mixed.
RATIO     B/A of two samples as one statistic: the Hodges-Lehmann estimate and its Mann-Whitney interval
          (stats/ratio.py); the estimate, the interval, every VERDICT and --fail-on read it.
NOISE THRESHOLD  the relative difference below which a RATIO is "same within noise": derived from a RUN's
          between-ROUND spread where it has ROUNDs, else a fixed 5 %, or --noise (stats/threshold.py).
BASELINE  the ENGINE (or ENGINE/FORMAT) whose CELL every figure of the SUMMARY is a RATIO to, in each group
          (MATRIX `baseline:`, `--baseline`, else llama.cpp).
SUMMARY   per MACHINE x model x workload x threads, the CELLs ranked by decode rate against the BASELINE, with
          quality beside; CELLs that failed, disagree or tripped a NOISE GUARD are shown, not ranked
          (tables/summary.md, the head of report.html, report.md).
FRONT     the CELLs no other beats on both decode rate and quality loss (stats/front.py).
REFERENCE PATH  an ENGINE's own fastest documented way to generate (llama-bench, transformers' generate()),
          timed beside our RUNNER in the same container, ABA (benchmarks/fidelity.py); FIDELITY is our
          decode rate over the REFERENCE PATH's.
TEST DOUBLE  an ENGINE (testengine) that drives pipeline tests; it never appears as an engine.
"""

__version__ = "0.1.0"
