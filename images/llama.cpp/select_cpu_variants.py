#!/usr/bin/env python3
"""Keep only the chosen x86-64 CPU variants of ggml's CPU backend (build stage only).

Usage: select_cpu_variants.py GGML_SRC_CMAKELISTS "x64 haswell ..."

ggml's GGML_CPU_ALL_VARIANTS builds one CPU backend library per x86-64 feature level
and picks the best one the CPU supports when the program starts (runtime dispatch).
Building all of them costs minutes per variant on a small machine, and the
`sapphirerapids` variant enables AMX, whose tile code crashes with SIGILL on some
Xeons in this llama.cpp version (see images/llama.cpp/README.md). This script comments
out every x86 variant not in the list and refuses a list that names an unknown variant
or one that uses AMX. Other architectures' variant lists are left as upstream wrote them.
Standard library only.
"""
import re
import sys

VARIANT = re.compile(r"^(\s*)ggml_add_cpu_backend_variant\((\w[\w.]*)([^)]*)\)\s*$")


def main() -> int:
    path, wanted_text = sys.argv[1], sys.argv[2]
    wanted = wanted_text.split()
    lines = open(path, encoding="utf-8").read().split("\n")
    in_x86, depth, seen, out = False, 0, {}, []
    for line in lines:
        if 'GGML_SYSTEM_ARCH STREQUAL "x86"' in line:
            in_x86, depth = True, 0
        elif in_x86 and re.match(r"^\s*if\s*\(", line):
            depth += 1  # a nested if () inside the x86 block
        elif in_x86 and re.match(r"^\s*endif\b", line) and depth:
            depth -= 1
        elif in_x86 and re.match(r"^\s*(elseif|else|endif)\b", line):
            in_x86 = False  # the end of the x86 block
        match = VARIANT.match(line) if in_x86 else None
        if match:
            name, features = match.group(2), match.group(3).split()
            seen[name] = features
            if name not in wanted:
                line = match.group(1) + "# orchestrate: variant not built: " + line.strip()
        out.append(line)
    unknown = [name for name in wanted if name not in seen]
    if unknown:
        sys.exit(f"unknown x86 CPU variant(s) {unknown}; this llama.cpp tree has {sorted(seen)}")
    amx = [name for name in wanted if any(f.startswith("AMX") for f in seen[name])]
    if amx:
        sys.exit(f"variant(s) {amx} use AMX, which crashes on some CPUs in this llama.cpp version")
    if not wanted:
        sys.exit("no CPU variant chosen")
    open(path, "w", encoding="utf-8").write("\n".join(out))
    print("x86 CPU variants built:", " ".join(wanted), "| left out:", " ".join(sorted(set(seen) - set(wanted))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
