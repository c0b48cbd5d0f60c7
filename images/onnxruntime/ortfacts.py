"""What ONNX Runtime's two runners (runner.py, genai_runner.py) share: where the tokenizer is, what they record
about the CPU, and ONNX Runtime's log."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path


def tokenizer_path(job) -> Path:
    """The job's tokenizer, else the model folder's hf/tokenizer.json: both formats sit two levels below the
    model folder (onnx/model.onnx; onnx-genai/<precision>, a folder)."""
    if job.tokenizer:
        return Path(job.tokenizer)
    return Path(job.model_path).parent.parent / "hf" / "tokenizer.json"


def cpu_facts() -> dict:
    """The host CPU as this container sees it: MLAS picks its kernels from these features at run time."""
    facts = {"cpus_allowed": sorted(os.sched_getaffinity(0)), "os_cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        facts["model_name"] = model.group(1).strip() if model else None
        wanted = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
        present = set(flags.group(1).split()) if flags else set()
        facts["simd_flags"] = [f for f in wanted if f in present]
    except OSError:
        pass
    return facts


def cpu_path() -> dict:
    """Which CPU code path runs, as far as ONNX Runtime lets it be known (MLAS has no API for it)."""
    flags = cpu_facts().get("simd_flags", [])
    return {"how": "ONNX Runtime's MLAS picks its kernels when the session starts, from the CPU features "
                   "the process sees; ONNX Runtime has no API that names the kernels it chose, so the "
                   "features it could use are recorded",
            "cpu_features": flags,
            "summary": "ONNX Runtime MLAS, runtime dispatch on: " + (" ".join(flags) or "baseline x86-64/ARM")}


@contextlib.contextmanager
def captured_stderr(sink: list[str]):
    """Capture file descriptor 2 (ONNX Runtime's native log) into sink, then echo it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(prefix="ort-log-") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
            sink.extend(line for line in text.splitlines() if line.strip())
