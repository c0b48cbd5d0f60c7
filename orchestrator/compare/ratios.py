"""Compare two RUNs CELL by CELL: one statistic per metric (Hodges-Lehmann ratio B/A and its interval), a verdict.

Pure functions over typed RUN data (rundata.py). CELLs are joined on their stable ids
(or, with ``ignore``, on their coordinates less the named ones, to compare for example
1 thread with 2). For each metric the estimate shown, the interval shown, the verdict and
``--fail-on`` all read one statistic (stats/ratio.py): the Hodges-Lehmann estimate of B/A
over the timed repetitions and the Mann-Whitney interval of the same pairwise log
differences (exact for small samples; no resampling, no seed). A metric is *faster* or
*slower* only when the interval lies wholly beyond the noise threshold (criterion.rs's
rule); otherwise it is *same within noise*. The threshold is derived from the RUNs' own
rounds where they have them, else a fixed 5 % (stats/threshold.py), or given with --noise;
each metric says which. ``--fail-on slower:N%`` fails a metric that is *slower* and whose
whole interval shows more than N lost. A CELL is *not comparable*, with the reasons, when
what it measured differs (model bytes, IMAGE content, engine version, CPU model or code path,
thread placement) or it did not end ok on both sides.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import UsageError
from orchestrator.results.rundata import CellRun, Run
from orchestrator.stats import describe
from orchestrator.stats import ratio as stat
from orchestrator.stats import threshold as noise_threshold
from orchestrator.stats.ratio import (  # noqa: F401 - the statistics compare is known by, for its callers
    CONFIDENCE,
    EXACT_LIMIT,
    Interval,
    hodges_lehmann_ratio,
    ratio_interval,
    u_distribution,
)
from orchestrator.stats.threshold import Threshold

# metric -> (label, True when higher is better)
METRICS = {"gen_tps": ("decode tok/s", True), "prompt_tps": ("prefill tok/s", True),
           "ttft_ms": ("TTFT ms", False), "itl_p50_ms": ("ITL p50 ms", False),
           "ppl_tps": ("perplexity scored tok/s", True)}
NOISE = noise_threshold.FIXED  # the fixed threshold, where no RUN has rounds to derive one from
SAME, FASTER, SLOWER, MIXED, NOT_COMPARABLE = stat.SAME, stat.FASTER, stat.SLOWER, "mixed", "not comparable"
EMULATION = "emulation"  # --ignore emulation: compare CELLs that ran under emulation too
IMAGE = "image"  # --ignore image: compare CELLs whose IMAGE was built from other content (another checkout)


@dataclass(frozen=True)
class Thresholds:
    """The noise threshold of each metric, and how it was chosen."""

    by_metric: Mapping[str, Threshold]

    def of(self, metric: str) -> Threshold:
        return self.by_metric.get(metric) or noise_threshold.fixed()

    def describe(self) -> str:
        """One line: each metric's threshold and how it was chosen (metrics that share one, once)."""
        groups: dict[tuple[float, str], list[str]] = {}
        for metric, found in self.by_metric.items():
            groups.setdefault((found.value, found.how), []).append(METRICS[metric][0])
        return "; ".join(f"{', '.join(names)}: {stat.percent(value)} ({how})" for (value, how), names in groups.items())


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one CELL pair: medians for reading, and the one statistic every claim reads."""

    metric: str
    median_a: float
    median_b: float
    n_a: int
    n_b: int
    ratio: float  # the Hodges-Lehmann estimate of B/A
    interval: Interval | None  # its Mann-Whitney interval; None when a side has no samples
    verdict: str
    why: str
    threshold: Threshold = Threshold(NOISE, noise_threshold.FIXED_HOW)

    @property
    def worse_by(self) -> float:
        """The share of speed B lost against A at the estimate (negative: gained): 1 - ratio for rates,
        1 - 1/ratio for times."""
        higher_better = METRICS[self.metric][1]
        return (1 - self.ratio) if higher_better else (1 - 1 / self.ratio)

    @property
    def worse_by_at_least(self) -> float:
        """The share of speed lost that the whole interval shows (its bound nearest 1; NaN without one)."""
        if self.interval is None:
            return math.nan
        found = stat.Ratio(self.ratio, self.interval, self.n_a, self.n_b)
        return stat.lost_at_least(found, METRICS[self.metric][1])


@dataclass(frozen=True)
class CellComparison:
    """A CELL of A paired with its CELL of B, the reasons they are not comparable, and each metric."""

    key: str
    label: str
    cell_a: str | None
    cell_b: str | None
    reasons: tuple[str, ...]
    metrics: tuple[MetricComparison, ...]
    # The machine's own probes B/A beside the CELL (compute, memory), where both RUNs measured them, and the
    # threshold beyond which a probe is said to have moved (the decode metric's noise threshold).
    machine: tuple[tuple[str, float], ...] = ()
    machine_threshold: float = NOISE

    @property
    def machine_moved(self) -> tuple[tuple[str, float], ...]:
        """The probes that moved beyond the threshold between A and B: the machine's speed changed."""
        return tuple((name, ratio) for name, ratio in self.machine if abs(ratio - 1) > self.machine_threshold)

    @property
    def verdict(self) -> str:
        if self.reasons:
            return NOT_COMPARABLE
        found = {m.verdict for m in self.metrics}
        if FASTER in found and SLOWER in found:
            return MIXED
        return FASTER if FASTER in found else SLOWER if SLOWER in found else SAME

    @property
    def verdict_text(self) -> str:
        if self.reasons:
            return f"{NOT_COMPARABLE}: {'; '.join(self.reasons)}"
        moved = self.machine_moved
        if not moved:
            return self.verdict
        said = ", ".join(f"{name} probe x{ratio:.2f}" for name, ratio in moved)
        if self.verdict in (FASTER, SLOWER):
            return f"{self.verdict}, and so was the machine: {said}"
        return f"{self.verdict}; the machine moved: {said}"


# -- statistics (pure) ----------------------------------------------------------------------

def compare_metric(metric: str, a: tuple[float, ...], b: tuple[float, ...], noise: float | Threshold = NOISE,
                   confidence: float = CONFIDENCE) -> MetricComparison:
    """The Hodges-Lehmann ratio B/A, its interval and the verdict for one metric's samples."""
    found_threshold = noise if isinstance(noise, Threshold) else noise_threshold.given(noise)
    med_a, med_b = describe.median(sorted(a)), describe.median(sorted(b))
    if not a or not b:
        return MetricComparison(metric, med_a, med_b, len(a), len(b), math.nan, None, NOT_COMPARABLE,
                                f"no samples on side {'A' if not a else 'B'}", found_threshold)
    found = stat.ratio(a, b, confidence)
    verdict, why = stat.verdict(found, found_threshold.value, METRICS[metric][1])
    return MetricComparison(metric, med_a, med_b, len(a), len(b), found.estimate, found.interval, verdict, why,
                            found_threshold)


def thresholds(a: Run, b: Run, noise: float | None = None) -> Thresholds:
    """Each metric's threshold: ``noise`` when given; else derived from A's and B's rounds (the wider of the two
    where both have them); else the fixed 5 %."""
    if noise is not None:
        return Thresholds({m: noise_threshold.given(noise) for m in METRICS})
    out = {}
    for metric in METRICS:
        found = [noise_threshold.derived((noise_threshold.round_spread(c.by_round(metric)) for c in run.cells.values()
                                          if c.status == "ok"), f"RUN {run.info.run_id}") for run in (a, b)]
        out[metric] = noise_threshold.wider(found)
    return Thresholds(out)


# -- pairing and reasons (pure) -------------------------------------------------------------

def join_key(cell: CellRun, ignore: tuple[str, ...]) -> str:
    """The cell id, or with ``ignore`` the coordinates less the ignored ones ('threads', 'engine_options.x')."""
    if not ignore:
        return cell.cell_id
    options = dict(cell.engine_options)
    coords: dict[str, object] = {"engine": cell.engine, "engine_options": options, "model": cell.model,
                                 "format": cell.format, "threads": cell.threads, "workload": cell.workload}
    for name in (n for n in ignore if n not in (EMULATION, IMAGE)):
        head, _, option = name.partition(".")
        if head not in coords:
            raise UsageError(f"--ignore {name}: not a CELL coordinate ({', '.join(coords)}, engine_options.NAME)")
        if option:
            options.pop(option, None)
        else:
            coords.pop(head)
    return json.dumps(coords, sort_keys=True)


def reasons(a: Run, b: Run, ca: CellRun, cb: CellRun, ignore: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Why two paired CELLs cannot be compared (empty when they can)."""
    found = []
    for side, cell in (("A", ca), ("B", cb)):
        if cell.emulated and EMULATION not in ignore:
            found.append(f"ran under emulation on {side}: emulated speed is no architecture's speed "
                         f"(--ignore {EMULATION} compares it anyway)")
        if cell.status != "ok":
            found.append(f"status {cell.status} on {side}" + (f" ({cell.reason})" if cell.reason else ""))
    checks: list[tuple[str, object, object]] = [("model sha256", ca.model_sha256, cb.model_sha256)]
    if IMAGE not in ignore:  # --ignore image: the same engine and model, built from another checkout
        checks.append(("image content", ca.image_tag.rsplit(":", 1)[-1], cb.image_tag.rsplit(":", 1)[-1]))
    checks += [("engine version", ca.engine_version, cb.engine_version),
               ("CPU model", cpu_model(a), cpu_model(b)),
               ("CPU architecture", a.info.host.machine, b.info.host.machine)]
    if not {"threads", "engine_options"} & set(ignore):
        checks.append(("CPU code path", cpu_path(ca), cpu_path(cb)))
    if "threads" not in ignore:
        checks.append(("thread placement", (ca.cpus, ca.host_core_reserved, ca.threads_used),
                       (cb.cpus, cb.host_core_reserved, cb.threads_used)))
    found += [f"{what} ({_short(x)} vs {_short(y)})" for what, x, y in checks if x != y]
    return tuple(found)


def cpu_model(run: Run) -> str:
    """The CPU's name with its family and model numbers (a VM may show a generic name for different CPUs)."""
    host = run.info.host
    return f"{host.cpu_brand} (family {host.cpu_family}, model {host.cpu_model})"


def cpu_path(cell: CellRun) -> str | None:
    """The engine's CPU code path as its RESULT names it (llama.cpp's ggml variant; the others' summary)."""
    path = cell.engine_build.get("cpu_path")
    return (path.get("variant") or path.get("summary")) if isinstance(path, dict) else None


def _short(value) -> str:
    if isinstance(value, tuple):
        cpus, reserved, used = value
        return f"CPUs {cpus}{', host core reserved' if reserved else ''}, {used} threads used"
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def compare(a: Run, b: Run, noise: float | Thresholds | None = None, ignore: tuple[str, ...] = (),
            confidence: float = CONFIDENCE) -> tuple[CellComparison, ...]:
    """Every CELL of A and B, paired; unpaired ones are not comparable ('only in A/B'). ``noise``: a fraction
    given by the user, Thresholds already chosen, or None to derive them (``thresholds``)."""
    chosen = noise if isinstance(noise, Thresholds) else thresholds(a, b, noise)
    keyed_a = {join_key(c, ignore): c for c in a.cells.values()}
    keyed_b = {join_key(c, ignore): c for c in b.cells.values()}
    if len(keyed_a) < len(a.cells) or len(keyed_b) < len(b.cells):
        raise UsageError(f"--ignore {','.join(ignore)} makes several CELLs of one RUN the same; ignore less")
    out = []
    for key in list(keyed_a) + [k for k in keyed_b if k not in keyed_a]:
        ca, cb = keyed_a.get(key), keyed_b.get(key)
        if ca is None or cb is None:
            only = ca or cb
            assert only is not None
            out.append(CellComparison(key, only.label, ca.cell_id if ca else None, cb.cell_id if cb else None,
                                      (f"only in {'A' if ca else 'B'}",), ()))
            continue
        why = reasons(a, b, ca, cb, ignore)
        metrics = () if why else tuple(compare_metric(m, ca.samples(m), cb.samples(m), chosen.of(m), confidence)
                                       for m in METRICS if ca.samples(m) or cb.samples(m))
        label = ca.label if ca.label == cb.label else f"{ca.label} -> {cb.label}"
        if ca.engine_options != cb.engine_options:
            label += (f" options {json.dumps(ca.engine_options, sort_keys=True)} -> "
                      f"{json.dumps(cb.engine_options, sort_keys=True)}")
        out.append(CellComparison(key, label, ca.cell_id, cb.cell_id, why, metrics, machine_ratios(ca, cb),
                                  chosen.of("gen_tps").value))
    return tuple(out)


def machine_ratios(ca: CellRun, cb: CellRun) -> tuple[tuple[str, float], ...]:
    """B/A of the machine's probes beside two paired CELLs, where both measured them (pure)."""
    pairs = (("compute", ca.probe_compute, cb.probe_compute), ("memory", ca.probe_memory, cb.probe_memory))
    return tuple((name, b / a) for name, a, b in pairs if a and b)


def fraction(text: str, what: str) -> float:
    """'5%' -> 0.05, '0.05' -> 0.05; UsageError for anything else or a negative value."""
    try:
        value = float(text.strip().rstrip("%")) / (100 if text.strip().endswith("%") else 1)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"{what} {text!r}: expected a fraction such as 5% or 0.05")
    return value


def parse_fail_on(text: str) -> tuple[str, float]:
    """'slower:5%' -> ('slower', 0.05); 'not-comparable' -> ('not-comparable', 0.0)."""
    kind, _, amount = text.partition(":")
    if kind == "not-comparable" and not amount:
        return kind, 0.0
    if kind != "slower" or not amount:
        raise UsageError(f"--fail-on {text!r}: expected slower:N% (for example slower:5%) or not-comparable")
    return kind, fraction(amount, f"--fail-on {text!r}:")


def failures(compared: tuple[CellComparison, ...], rules: list[tuple[str, float]]) -> list[str]:
    """The CELL/metric pairs that break a --fail-on rule, described: ``slower:N`` fails a metric that is slower and
    whose whole interval shows more than N lost (the statistic the verdict reads; not the estimate alone)."""
    found = []
    for rule, limit in rules:
        for cell in compared:
            if rule == "not-comparable" and cell.reasons:
                found.append(f"{cell.label}: {cell.verdict_text}")
            for m in cell.metrics if rule == "slower" else ():
                if m.verdict == SLOWER and m.interval is not None and m.worse_by_at_least > limit:
                    found.append(f"{cell.label}: {METRICS[m.metric][0]} {m.worse_by:.1%} slower, at least "
                                 f"{m.worse_by_at_least:.1%} over the whole interval (B/A {m.ratio:.3f} "
                                 f"[{m.interval.low:.3f}, {m.interval.high:.3f}], limit {stat.percent(limit)})")
    return found
