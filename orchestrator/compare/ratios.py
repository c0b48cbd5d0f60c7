"""Compare two RUNs CELL by CELL: ratio of medians, a distribution-free confidence interval, a verdict.

Pure functions over typed RUN data (rundata.py). CELLs are joined on their stable ids
(or, with ``ignore``, on their coordinates less the named ones, to compare for example
1 thread with 2). For each metric the ratio B/A of the medians over the timed repetitions
is reported with a confidence interval for the ratio from the Mann-Whitney U test
(the Hodges-Lehmann interval of the shift of log values, exact for small samples): no
resampling, no seed, and valid coverage with 5 repetitions, where a bootstrap of medians
is known to be too narrow. A metric is *faster* or *slower* only when the interval
lies wholly beyond the noise threshold (above 1 + noise, or below 1 - noise), the rule
criterion.rs uses (repetitions within one RUN do not show the variation between RUNs:
container start, page cache, frequency, neighbours; a verdict says a difference larger than
that is shown with confidence); otherwise it is *same within noise*. A CELL is *not comparable*,
with the reasons, when what it measured differs (model bytes, IMAGE content, engine
version, CPU model or code path, thread placement) or it did not end ok on both sides.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from orchestrator.errors import UsageError
from orchestrator.results.rundata import CellRun, Run
from orchestrator.stats import describe

# metric -> (label, True when higher is better)
METRICS = {"gen_tps": ("decode tok/s", True), "prompt_tps": ("prefill tok/s", True),
           "ttft_ms": ("TTFT ms", False), "itl_p50_ms": ("ITL p50 ms", False),
           "ppl_tps": ("perplexity scored tok/s", True)}
CONFIDENCE = 0.95
NOISE = 0.05  # default: relative differences below 5% are called the same
EXACT_LIMIT = 2500  # m*n up to which the U distribution is counted exactly; above, the normal approximation
EMULATION = "emulation"  # --ignore emulation: compare CELLs that ran under emulation too
SAME, FASTER, SLOWER, MIXED, NOT_COMPARABLE = "same within noise", "faster", "slower", "mixed", "not comparable"


@dataclass(frozen=True)
class Interval:
    """A confidence interval for the ratio B/A and its actual coverage (exact intervals are discrete)."""

    low: float
    high: float
    coverage: float


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one CELL pair."""

    metric: str
    median_a: float
    median_b: float
    n_a: int
    n_b: int
    ratio: float  # median B / median A
    interval: Interval | None  # None when a side has no samples
    verdict: str
    why: str

    @property
    def worse_by(self) -> float:
        """The fraction of speed B lost against A (negative: gained): 1 - ratio for rates, 1 - 1/ratio for times."""
        higher_better = METRICS[self.metric][1]
        return (1 - self.ratio) if higher_better else (1 - 1 / self.ratio)


@dataclass(frozen=True)
class CellComparison:
    """A CELL of A paired with its CELL of B, the reasons they are not comparable, and each metric."""

    key: str
    label: str
    cell_a: str | None
    cell_b: str | None
    reasons: tuple[str, ...]
    metrics: tuple[MetricComparison, ...]

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
        return f"{NOT_COMPARABLE}: {'; '.join(self.reasons)}" if self.reasons else self.verdict


# -- statistics (pure) ----------------------------------------------------------------------

@lru_cache(maxsize=256)
def u_distribution(m: int, n: int) -> tuple[float, ...]:
    """P(U = u) for u = 0..m*n under H0 (no shift), counted exactly: f(m,n,u) = f(m-1,n,u-n) + f(m,n-1,u)."""
    # counts[j][u] for the current i: arrangements of i values of A and j values of B with U = u
    counts = [[1] for _ in range(n + 1)]  # i = 0: U = 0 in one way
    for i in range(1, m + 1):
        new = [[1]]  # j = 0: U = 0
        for j in range(1, n + 1):
            size = i * j + 1
            row = [0] * size
            for u, c in enumerate(counts[j]):  # (i-1, j, u - j) -> shift by j
                row[u + j] += c
            for u, c in enumerate(new[j - 1]):  # (i, j-1, u)
                row[u] += c
            new.append(row)
        counts = new
    total = math.comb(m + n, m)
    return tuple(c / total for c in counts[n])


def _rank_bound(m: int, n: int, confidence: float) -> tuple[int, float]:
    """(w, coverage): the interval runs from the w-th smallest to the w-th largest pairwise difference."""
    alpha = 1 - confidence
    if m * n <= EXACT_LIMIT:
        cumulative, w = 0.0, 0
        for p in u_distribution(m, n):
            if cumulative + p > alpha / 2:
                break
            cumulative += p
            w += 1
        if w == 0:  # too few samples for this confidence: the widest interval, with its real coverage
            return 1, 1 - 2 * u_distribution(m, n)[0]
        return w, 1 - 2 * cumulative
    return _normal_bound(m, n, confidence), confidence


def _normal_bound(m: int, n: int, confidence: float) -> int:
    """w from the normal approximation of U with continuity correction (large samples, no ties)."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    mean, sd = m * n / 2, math.sqrt(m * n * (m + n + 1) / 12)
    return max(1, math.floor(mean - z * sd - 0.5) + 1)


def ratio_interval(a: tuple[float, ...], b: tuple[float, ...], confidence: float = CONFIDENCE) -> Interval:
    """Confidence interval for the ratio B/A from the Mann-Whitney test on log values (positive samples).

    The pairwise differences log b_j - log a_i, sorted; the interval is
    [exp(D_(w)), exp(D_(mn+1-w))] with w from the exact U distribution.
    """
    if not a or not b or min(a) <= 0 or min(b) <= 0:
        raise ValueError("ratio_interval needs positive samples on both sides")
    diffs = sorted(math.log(y) - math.log(x) for x in a for y in b)
    w, coverage = _rank_bound(len(a), len(b), confidence)
    return Interval(math.exp(diffs[w - 1]), math.exp(diffs[len(diffs) - w]), coverage)


def hodges_lehmann_ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The Hodges-Lehmann estimate of B/A: exp of the median pairwise log difference."""
    return math.exp(describe.median(sorted(math.log(y) - math.log(x) for x in a for y in b)))


def compare_metric(metric: str, a: tuple[float, ...], b: tuple[float, ...], noise: float = NOISE,
                   confidence: float = CONFIDENCE) -> MetricComparison:
    """Ratio of medians, its interval and the verdict for one metric's samples."""
    med_a, med_b = describe.median(sorted(a)), describe.median(sorted(b))
    if not a or not b:
        return MetricComparison(metric, med_a, med_b, len(a), len(b), math.nan, None, NOT_COMPARABLE,
                                f"no samples on side {'A' if not a else 'B'}")
    ratio = med_b / med_a
    interval = ratio_interval(a, b, confidence)
    higher_better = METRICS[metric][1]
    if interval.low <= 1 <= interval.high:
        return MetricComparison(metric, med_a, med_b, len(a), len(b), ratio, interval, SAME,
                                f"the {interval.coverage:.0%} interval includes 1")
    if interval.low > 1 + noise or interval.high < 1 - noise:
        better = (ratio > 1) == higher_better
        return MetricComparison(metric, med_a, med_b, len(a), len(b), ratio, interval,
                                FASTER if better else SLOWER,
                                f"the whole {interval.coverage:.0%} interval lies beyond the {noise:.0%} noise threshold")
    return MetricComparison(metric, med_a, med_b, len(a), len(b), ratio, interval, SAME,
                            f"differs by {abs(ratio - 1):.1%}, but the {interval.coverage:.0%} interval reaches "
                            f"inside the {noise:.0%} noise threshold")


# -- pairing and reasons (pure) -------------------------------------------------------------

def join_key(cell: CellRun, ignore: tuple[str, ...]) -> str:
    """The cell id, or with ``ignore`` the coordinates less the ignored ones ('threads', 'engine_options.x')."""
    if not ignore:
        return cell.cell_id
    options = dict(cell.engine_options)
    coords: dict[str, object] = {"engine": cell.engine, "engine_options": options, "model": cell.model,
                                 "format": cell.format, "threads": cell.threads, "workload": cell.workload}
    for name in (n for n in ignore if n != EMULATION):
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
    checks: list[tuple[str, object, object]] = [("model sha256", ca.model_sha256, cb.model_sha256),
              ("image content", ca.image_tag.rsplit(":", 1)[-1], cb.image_tag.rsplit(":", 1)[-1]),
              ("engine version", ca.engine_version, cb.engine_version),
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


def compare(a: Run, b: Run, noise: float = NOISE, ignore: tuple[str, ...] = (),
            confidence: float = CONFIDENCE) -> tuple[CellComparison, ...]:
    """Every CELL of A and B, paired; unpaired ones are not comparable ('only in A/B')."""
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
        metrics = () if why else tuple(compare_metric(m, ca.samples(m), cb.samples(m), noise, confidence)
                                       for m in METRICS if ca.samples(m) or cb.samples(m))
        label = ca.label if ca.label == cb.label else f"{ca.label} -> {cb.label}"
        if ca.engine_options != cb.engine_options:
            label += (f" options {json.dumps(ca.engine_options, sort_keys=True)} -> "
                      f"{json.dumps(cb.engine_options, sort_keys=True)}")
        out.append(CellComparison(key, label, ca.cell_id, cb.cell_id, why, metrics))
    return tuple(out)


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
    """The CELL/metric pairs that break a --fail-on rule, described."""
    found = []
    for rule, limit in rules:
        for cell in compared:
            if rule == "not-comparable" and cell.reasons:
                found.append(f"{cell.label}: {cell.verdict_text}")
            for m in cell.metrics if rule == "slower" else ():
                if m.verdict == SLOWER and m.worse_by > limit:
                    found.append(f"{cell.label}: {METRICS[m.metric][0]} {m.worse_by:.1%} slower "
                                 f"(ratio B/A {m.ratio:.3f}, limit {limit:.0%})")
    return found
