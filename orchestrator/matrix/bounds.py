"""What a MATRIX may ask for: memory, time, CPUs, the number of CELLs and RESULT sizes, checked before anything runs.

Every limit is either enforced or refused here with the bound, never dropped: Docker reads
a memory limit of 0 as "no limit", and a timeout of NaN or infinity as "wait forever".
Pure functions over the parsed MATRIX data; ``add(path, message, allowed)`` records a
problem at a JSON path (matrix.py turns it into a line).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from orchestrator.engines import ENGINES
from orchestrator.files import reading

# The smallest memory limit any CELL may run with. The smallest cgroup peak any engine
# reached in docs/results-2026-11-26.md is 19.8 MiB (llama.cpp, tinystories-15m); Docker
# itself refuses under 6 MiB. Engines that need more fail with status oom and say so.
MIN_MEMORY_BYTES = 16 * 2**20
# A limit above this binds nothing on any machine (Linux x86-64 addresses at most 4 PiB).
MAX_MEMORY_BYTES = 4 * 2**50
MAX_TIMEOUT_S = 7 * 24 * 3600  # a week per CELL; also in schemas/matrix.schema.json
MAX_CELLS = 10_000  # about a week of CELLs at a minute each; the default MATRIX has 16
# repetitions x gen_tokens of one CELL: each token adds an id and a latency (about 60
# bytes of JSON), so a RESULT stays under 15 MiB, well inside results.MAX_RESULT_BYTES.
MAX_TOKEN_REPETITIONS = 250_000
MAX_CPU_ID = 8191  # Linux's largest CONFIG_NR_CPUS is 8192

Add = Callable[..., None]
_SCALE = {"k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(text: str) -> int:
    """'512m' -> bytes (k, m, g are powers of 1024), exact for any length; ValueError if not a size."""
    text = str(text).strip().lower()
    scale = _SCALE.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in _SCALE else text
    if not re.fullmatch(r"[0-9]{1,30}(\.[0-9]{1,30})?", number):
        raise ValueError(f"{reading.quote(text, 40)!r} is not a size such as 512m or 2g")
    whole, _, fraction = number.partition(".")
    return int(whole) * scale + int(fraction or "0") * scale // 10 ** len(fraction or "0")  # exact, rounded down


def limit_problems(data: dict, add: Add) -> None:
    """memory_limit, timeout_s and placement.cpus: enforceable, or a problem naming the bound."""
    if isinstance(data.get("memory_limit"), str):
        text = data["memory_limit"]
        try:
            size = parse_size(text)
        except ValueError as exc:
            size = None
            add(("memory_limit",), str(exc), "a number with an optional k, m or g suffix, e.g. 2g")
        if size == 0:
            add(("memory_limit",), f"memory_limit {text!r} is 0 bytes: Docker would run the cell with no memory "
                "limit at all", f"at least {MIN_MEMORY_BYTES // 2**20}m")
        elif size is not None and size < MIN_MEMORY_BYTES:
            add(("memory_limit",), f"memory_limit {text!r} is {size} bytes, below the {MIN_MEMORY_BYTES // 2**20} "
                "MiB no engine starts in", f"at least {MIN_MEMORY_BYTES // 2**20}m")
        elif size is not None and size > MAX_MEMORY_BYTES:
            add(("memory_limit",), f"memory_limit {text!r} is larger than any machine's memory, so it would "
                "limit nothing", f"at most {MAX_MEMORY_BYTES // 2**30}g")
    timeout = data.get("timeout_s")
    if isinstance(timeout, float) and not math.isfinite(timeout):
        add(("timeout_s",), f"timeout_s is {timeout}: the cell would never time out",
            f"a number of seconds above 0 and at most {MAX_TIMEOUT_S}")
    cpus = (data.get("placement") or {}).get("cpus") if isinstance(data.get("placement"), dict) else None
    if isinstance(cpus, str):
        for part in cpus.split(","):
            ends = part.split("-")
            if not all(e.isdigit() and len(e) <= 5 for e in ends):
                continue  # the schema's pattern reports malformed lists
            if any(int(e) > MAX_CPU_ID for e in ends):
                add(("placement", "cpus"), f"CPU {max(map(int, ends))} in placement.cpus {cpus!r} exceeds the "
                    f"largest CPU id Linux supports", f"CPU ids 0 to {MAX_CPU_ID}")
            elif len(ends) == 2 and int(ends[0]) > int(ends[1]):
                add(("placement", "cpus"), f"the range {part!r} in placement.cpus is reversed: it names no CPU",
                    f"low-high, e.g. {ends[1]}-{ends[0]}")


def size_problems(data: dict, add: Add) -> None:
    """How many CELLs the MATRIX can expand to, and how much each RESULT can hold."""
    engines = [e.get("name") for e in data["engines"]]
    pairs = sum(1 for name in engines if name in ENGINES for m in data["models"] for f in m["formats"]
                if f in ENGINES[name].formats)
    upper = pairs * len(data["threads"]) * len(data["workloads"])
    if upper > MAX_CELLS:
        add((), f"the MATRIX expands to up to {upper} cells (engine/format pairs {pairs} x threads "
            f"{len(data['threads'])} x workloads {len(data['workloads'])}); the limit is {MAX_CELLS}",
            "fewer values, or include/exclude rules; split a larger study into several MATRIX files")
    repetitions = data.get("repetitions", 5)
    if isinstance(repetitions, dict):  # adaptive: the bound is on the most a CELL may run
        repetitions = repetitions.get("max")
    for i, workload in enumerate(data["workloads"]):
        gen = workload.get("gen_tokens")
        if isinstance(gen, int) and isinstance(repetitions, int) and gen * repetitions > MAX_TOKEN_REPETITIONS:
            add(("workloads", i, "gen_tokens"), f"repetitions x gen_tokens = {repetitions} x {gen} = "
                f"{repetitions * gen} tokens per cell; the limit is {MAX_TOKEN_REPETITIONS}",
                "fewer repetitions or shorter generations")


def rule_warnings(data: dict, where: Callable[[tuple], str]) -> list[str]:
    """One warning per include/exclude value that matches no value of the MATRIX, naming it."""
    known = {
        "engine": [e["name"] for e in data["engines"]],
        "model": [m["id"] for m in data["models"]],
        "format": [f for m in data["models"] for f in m["formats"]],
        "threads": list(data["threads"]),
        "workload": [w["name"] for w in data["workloads"]],
    }
    warnings = []
    for kind in ("include", "exclude"):
        for i, rule in enumerate(data.get(kind, ())):
            for key, wanted in rule.items():
                values = wanted if isinstance(wanted, list) else [wanted]
                texts = {str(v) for v in known[key]}
                for value in values:
                    if str(value) not in texts:
                        warnings.append(f"{where((kind, i, key))}: {kind}[{i}].{key} value {value!r} matches no "
                                        f"{key} of this MATRIX ({', '.join(map(str, dict.fromkeys(known[key])))}); "
                                        f"the rule has no effect for it")
    return warnings
