#!/usr/bin/env python3
"""Write the image's build-info JSON (run in the Dockerfile's build stage).

Usage: build_info.py BUILD_DIR OUTPUT_JSON

Reads the source/flag facts from environment variables set by the Dockerfile,
and the rest from the build tree (CMakeCache.txt, compile_commands.json) and
the tools themselves. Standard library only.
"""
import json
import os
import re
import shlex
import subprocess
import sys


def run(cmd):
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unavailable: {exc}"


def cmake_cache(build_dir):
    """CMake cache values that shape the CPU build (other backends' options are left out)."""
    line_re = re.compile(r"^(?P<key>[A-Za-z0-9_]+):(?P<type>BOOL|STRING|FILEPATH|PATH)=(?P<value>.*)$")
    keep = re.compile(r"^(GGML_[A-Z0-9_]+|LLAMA_[A-Z0-9_]+|BUILD_SHARED_LIBS|CMAKE_BUILD_TYPE|"
                      r"CMAKE_C_COMPILER|CMAKE_CXX_COMPILER|CMAKE_C_FLAGS(_RELEASE)?|CMAKE_CXX_FLAGS(_RELEASE)?)$")
    drop = re.compile(r"^GGML_(CUDA|HIP|METAL|MUSA|OPENCL|VULKAN|SYCL|HEXAGON|ET|RV|LSX|LASX|KOMPUTE|CANN|"
                      r"OPENVINO|WEBGPU|ZDNN|VXE|NNPA|RPC|CCACHE|GPROF|BUILD|ALL_WARNINGS|FATAL)|_INSTALL_DIR$|_DIR$")
    found = {}
    with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as fh:
        for line in fh:
            m = line_re.match(line.rstrip("\n"))
            if m and keep.match(m.group("key")) and not drop.search(m.group("key")):
                found[m.group("key")] = m.group("value")
    return dict(sorted(found.items()))


def ggml_cpu_flags(build_dir):
    """Compiler arch flags of each CPU backend build (one per variant with GGML_CPU_ALL_VARIANTS)."""
    path = os.path.join(build_dir, "compile_commands.json")
    try:
        with open(path, encoding="utf-8") as fh:
            entries = json.load(fh)
    except OSError:
        return None
    found = {}
    for entry in entries:
        if entry.get("file", "").endswith("ggml-cpu/ggml-cpu.c"):
            args = entry.get("arguments") or shlex.split(entry.get("command", ""))
            target = re.search(r"ggml-cpu(-[\w.]+)?\.dir", entry.get("output", "") + " " + " ".join(args))
            variant = target.group(1)[1:] if target and target.group(1) else "single"
            found[variant] = {
                "file": "ggml/src/ggml-cpu/ggml-cpu.c",
                "arch_flags": [a for a in args if a.startswith("-m")],
                "optimization": [a for a in args if re.match(r"^-O", a)],
                "definitions": sorted(a for a in args if a.startswith(("-DGGML_USE", "-DGGML_AVX"))),
            }
    return dict(sorted(found.items())) or None


def build_host_cpu():
    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and "model_name" not in info:
                    info["model_name"] = value.strip()
                elif key == "flags" and "flags" not in info:
                    flags = value.split()
                    info["simd_flags"] = sorted(f for f in flags if re.match(
                        r"^(sse|ssse|avx|fma|f16c|amx|bmi|vnni)", f) or f.startswith("avx512"))
    except OSError:
        pass
    return info


def main():
    build_dir, output = sys.argv[1], sys.argv[2]
    env = os.environ
    cmake_flags = env.get("LLAMA_CMAKE_FLAGS", "")
    info = {
        "engine": "llama.cpp",
        "engine_version": env.get("ENGINE_VERSION", "unknown"),
        "source": {
            "kind": "pypi-sdist",
            "sdist": env.get("SDIST_NAME"),
            "version": env.get("SDIST_VERSION"),
            "sha256": env.get("SDIST_SHA256"),
            "url": env.get("SDIST_URL"),
            "subtree": "vendor/llama.cpp",
            "llama_cpp_cmake_version": env.get("LLAMA_CPP_CMAKE_VERSION"),
            "git_commit": "unknown (the sdist carries no git metadata; identify the source by sdist version + sha256)",
        },
        "cpu_build": env.get("CPU_BUILD"),
        "cpu_variants": env.get("CPU_VARIANTS", "").split() if env.get("CPU_BUILD") == "variants" else None,
        "cpu_build_note": ("variants: ggml's CPU backend is built once per listed x86-64 feature level (all of "
                           "upstream's ARM variants on arm64) and the best one the CPU supports is loaded at start "
                           "(runtime dispatch); the same image runs on any CPU of its architecture. AMX is not "
                           "built. native: -march=native for the build machine's CPU only (may SIGILL elsewhere)"),
        "cmake_flags": shlex.split(cmake_flags) + ["-DCMAKE_BUILD_TYPE=Release"],
        "targets": ["llama-bench", "llama-quantize", "llama-server", "orchestrate-runner"],
        "base_image": env.get("BASE_IMAGE"),
        "compiler": run(["c++", "--version"]).splitlines()[0],
        "c_compiler": run(["cc", "--version"]).splitlines()[0],
        "cmake": run(["cmake", "--version"]).splitlines()[0],
        "cmake_cache": cmake_cache(build_dir),
        "cmake_cache_note": ("the instruction set of each CPU backend build is in ggml_cpu_compile; which "
                             "variant ran, and its features, are in each result (engine.cpu)"),
        "ggml_cpu_compile": ggml_cpu_flags(build_dir),
        "build_host_cpu": build_host_cpu(),
        "build_date_utc": run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
    }
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, output)


if __name__ == "__main__":
    main()
