"""Typed views of the parts of a record: its CELL's coordinates and workload, its RESULT and repetitions,
what was measured outside the container, and how its repetitions were sampled (reader.py joins them)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from orchestrator.results.documents import _View

NAN = float("nan")


class Workload(_View):
    @property
    def name(self) -> str:
        return self.doc["name"]

    @property
    def kind(self) -> str:
        return self.doc.get("kind", "generate")

    @property
    def prompt(self) -> str | None:
        return self.doc.get("prompt")

    def key(self) -> str:
        """The workload as text: CELLs of one model with the same key are compared with each other."""
        return json.dumps(self.doc, sort_keys=True)


class Coordinates(_View):
    """A CELL's coordinates and asked-for repetitions (record.cell)."""

    @property
    def engine(self) -> str:
        return self.doc["engine"]

    @property
    def engine_options(self) -> Mapping[str, Any]:
        return self.doc["engine_options"]

    @property
    def model(self) -> str:
        return self.doc["model"]

    @property
    def format(self) -> str:
        return self.doc["format"]

    @property
    def threads(self) -> int:
        return self.doc["threads"]

    @property
    def workload(self) -> Workload:
        return Workload(self.doc["workload"])

    @property
    def warmup(self) -> int:
        return self.doc["warmup"]

    @property
    def repetitions(self) -> int:
        return self.doc["repetitions"]


class Repetition(_View):
    """One timed repetition of a RESULT (a generation, or a perplexity evaluation)."""

    @property
    def index(self) -> int:
        return self.doc["index"]

    @property
    def is_evaluation(self) -> bool:
        return "mean_nll" in self.doc

    @property
    def prompt_tokens(self) -> int:
        return self.doc.get("prompt_tokens", 0)

    @property
    def generated_tokens(self) -> int:
        return self.doc.get("generated_tokens", 0)

    @property
    def prefill_s(self) -> float:
        return self.doc.get("prefill_s", 0.0)

    @property
    def decode_s(self) -> float:
        return self.doc.get("decode_s", 0.0)

    @property
    def ttft_s(self) -> float:
        return self.doc.get("ttft_s", 0.0)

    @property
    def time_s(self) -> float:
        """A perplexity evaluation's time (NaN for a generation)."""
        return self.doc.get("time_s", NAN)

    @property
    def scored_tokens(self) -> int:
        return self.doc.get("scored_tokens", 0)

    @property
    def inter_token_latencies_s(self) -> list[float]:
        return self.doc.get("inter_token_latencies_s", [])

    @property
    def token_ids(self) -> list[int]:
        return self.doc.get("token_ids", [])

    @property
    def generation_rate(self) -> float:
        """Generation tokens/s: (generated - 1) / decode time (the first token is part of the time to first token);
        NaN without decode time. The one definition, for the TABLE, the progress line and sampling."""
        return (self.generated_tokens - 1) / self.decode_s if self.decode_s > 0 else NAN

    @property
    def prompt_rate(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else NAN

    @property
    def scoring_rate(self) -> float:
        """Scored ids per second of a perplexity evaluation; NaN for a generation."""
        return self.scored_tokens / self.time_s if self.time_s > 0 else NAN


class Figures(_View):
    """A perplexity RESULT's figures (result.perplexity)."""

    @property
    def perplexity(self) -> float:
        return self.doc["perplexity"]

    @property
    def mean_nll(self) -> float:
        return self.doc["mean_nll"]

    @property
    def scored_tokens(self) -> int:
        return self.doc["scored_tokens"]

    @property
    def windows(self) -> int:
        return self.doc["windows"]


class Result(_View):
    """The runner's RESULT inside a record."""

    @cached_property
    def repetitions(self) -> list[Repetition]:
        return [Repetition(rep) for rep in self.doc["repetitions"]]

    @property
    def perplexity(self) -> Figures | None:
        figures = self.doc.get("perplexity")
        return Figures(figures) if figures is not None else None

    @property
    def is_perplexity(self) -> bool:
        return "perplexity" in self.doc

    @property
    def engine_version(self) -> str | None:
        return (self.doc.get("engine") or {}).get("version")

    @property
    def engine_build(self) -> Mapping[str, Any]:
        return (self.doc.get("engine") or {}).get("build") or {}

    @property
    def load_time_s(self) -> float:
        return self.doc.get("load_time_s", NAN)

    @property
    def peak_rss_bytes(self) -> int | None:
        return self.doc.get("peak_rss_bytes")

    @property
    def per_thread(self) -> list[Mapping[str, Any]] | None:
        return (self.doc.get("threads") or {}).get("per_thread")

    @property
    def engine_reported_threads(self) -> int | None:
        threads = self.doc.get("threads") or {}
        return threads.get("used", threads.get("engine_reported"))

    @property
    def extra(self) -> Mapping[str, Any]:
        return self.doc.get("extra") or {}

    @property
    def generated_text(self) -> str | None:
        return self.extra.get("generated_text")

    @property
    def timed_cpu_s(self) -> float | None:
        """CPU seconds of the engine's threads during the timed repetitions (None when not reported)."""
        per_thread = self.per_thread
        return math.fsum(t["cpu_s"] for t in per_thread) if per_thread else None


class Outside(_View):
    """What the orchestrator measured from outside the container (record.outside)."""

    @property
    def wall_s(self) -> float | None:
        return self.doc["wall_s"]

    @property
    def peak_memory_bytes(self) -> int | None:
        return self.doc["peak_memory_bytes"]

    @property
    def cpu_seconds(self) -> float | None:
        return self.doc["cpu_seconds"]

    @property
    def unmeasured(self) -> Mapping[str, str]:
        return self.doc.get("unmeasured") or {}


class Batch(_View):
    """One batch of a CELL, as its record's sampling lists it."""

    @property
    def number(self) -> int:
        return self.doc["batch"]

    @property
    def round(self) -> int | None:
        return self.doc.get("round")

    @property
    def position(self) -> int | None:
        return self.doc.get("position")

    @property
    def noise(self) -> Mapping[str, Any]:
        return self.doc.get("noise") or {}

    @property
    def frequency(self) -> Mapping[str, Any]:
        return self.doc.get("frequency") or {}

    @property
    def probes(self) -> Mapping[str, Any]:
        """The machine's own speed before and after the batch (host/probes.py); empty when not measured."""
        return self.doc.get("probes") or {}


class Sampling(_View):
    """How a CELL's repetitions were gathered (record.sampling); empty for records without it."""

    @property
    def batches(self) -> list[Batch]:
        return [Batch(b) for b in self.doc.get("batches", [])]

    @property
    def repetition_batch(self) -> list[int]:
        return self.doc.get("repetition_batch", [])

    @property
    def complete(self) -> bool:
        return self.doc.get("complete", True)

    @property
    def stopped(self) -> str | None:
        return self.doc.get("stopped")

    @property
    def cv_target(self) -> float | None:
        return self.doc.get("cv_target")

    @property
    def rounds(self) -> int | None:
        return self.doc.get("rounds")

    @property
    def noise_flags(self) -> list[str]:
        return self.doc.get("noise_flags", [])

    @property
    def frequency(self) -> Mapping[str, Any] | None:
        """The frequency sampled on the CELL's CPUs while it ran, when it was."""
        return self.doc.get("frequency")
