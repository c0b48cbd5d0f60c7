"""runnerkit: the container contract, once for every runner, standard library only (docs/contract.md).

The orchestrator places this package, the job schema (cell.schema.json) and the ENGINE's
options declaration (options.schema.json) into the IMAGE's build context as
``_shared/runnerkit/``; a runner imports it from beside itself (/opt/engine/runnerkit).

    job        read the job and check it against the contract's schema and the options
    prompt     shape the prompt (repeat and cut to prompt_tokens), check the context
    timing     one timed greedy repetition
    proc       per-thread CPU seconds (a process tree too), peak memory (VmHWM)
    perplexity the perplexity workload: windows, the ids file, float64 scoring, evaluations
    result     assemble result.json and write it atomically
    main       the entry point: exit 0 with a result, exit 1 with the reason on stderr
    child      a native engine's runner as a child process: the line protocol's requests and events
    native     the contract for a native engine (C++, Rust): every step here, the timing in the child

A Python runner calls the kit in process; a native runner (llama.cpp's C++, candle's Rust)
is driven by it over the line protocol and keeps only its timing loop.
"""

CONTRACT_VERSION = 1
