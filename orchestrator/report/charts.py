"""The figures of report.html, as plain plotly.js figure specs built from a RUN's records (pure).

Each function returns a list of ``Figure``; a figure that has nothing to show (one thread
count, one model, no ok CELL) is left out, never drawn empty. Every number comes from the
CELL TABLE (``merge.cells``) or from the records' own repetitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.results.reader import as_records
from orchestrator.stats import describe

MAX_CELLS = 120  # per-CELL charts show at most this many CELLs (plan order); the TABLE has all
MAX_LINES = 40  # scaling charts draw at most this many lines
VERDICT_COLOURS = {"reference": "#1f77b4", "ok": "#2ca02c", "info": "#7f7f7f", "DISAGREE": "#d62728"}


@dataclass(frozen=True)
class Figure:
    """One chart: a stable id, a heading, what it shows, and the plotly.js data and layout."""

    id: str
    title: str
    caption: str
    data: list
    layout: dict


def _num(value):
    """JSON-safe number: NaN and None become null."""
    return None if value is None or value != value else float(value)


def _axis_label(row: dict, many_models: bool, many_workloads: bool) -> str:
    parts = [row["engine"], row["format"]]
    if many_models:
        parts.append(row["model"])
    if many_workloads:
        parts.append(row["workload"])
    return " ".join(parts)


def _layout(title_y: str, title_x: str | None = None, **extra) -> dict:
    layout = {"margin": {"l": 70, "r": 20, "t": 30, "b": 120}, "height": 440, "barmode": "group",
              "yaxis": {"title": {"text": title_y}, "rangemode": "tozero"}, "legend": {"orientation": "h", "y": 1.12},
              "xaxis": {"automargin": True}}
    if title_x:
        layout["xaxis"]["title"] = {"text": title_x}
    layout.update(extra)
    return layout


def _spread_bars(rows: list[dict], metric: str, many_models: bool, many_workloads: bool) -> list:
    """Grouped bars of a metric's median per CELL, one trace per thread count, min-max error bars."""
    traces = []
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        medians = [_num(r[f"{metric}_median"]) for r in mine]
        traces.append({
            "type": "bar", "name": f"{threads} thread{'s' if threads != 1 else ''}",
            "x": [_axis_label(r, many_models, many_workloads) for r in mine], "y": medians,
            "error_y": {"type": "data", "symmetric": False,
                        "array": [None if m is None or _num(r[f"{metric}_max"]) is None else _num(r[f"{metric}_max"]) - m
                                  for r, m in zip(mine, medians)],
                        "arrayminus": [None if m is None or _num(r[f"{metric}_min"]) is None
                                       else m - _num(r[f"{metric}_min"]) for r, m in zip(mine, medians)]},
            "customdata": [[r["cell_id"], int(r[f"{metric}_n"])] for r in mine],
            "hovertemplate": "%{x}<br>median %{y:.4g}<br>%{customdata[0]}, n=%{customdata[1]}<extra></extra>",
        })
    return traces


def speed_figures(rows: list[dict]) -> list[Figure]:
    """Decode and prefill tokens/s and time to first token per engine x format x threads."""
    ok = [r for r in rows if r["status"] == "ok" and (_num(r.get("gen_tps_n")) or 0) > 0][:MAX_CELLS]
    if not ok:  # (perplexity CELLs generate nothing: they have their own chart)
        return []
    many_models = len({r["model"] for r in rows}) > 1
    many_workloads = len({r["workload"] for r in rows}) > 1
    spread = "bar: median over the timed repetitions; error bar: min to max"
    return [
        Figure("chart-decode", "Decode speed (generation tokens/s)",
               f"(generated tokens - 1) / decode time; {spread}.",
               _spread_bars(ok, "gen_tps", many_models, many_workloads), _layout("tokens/s")),
        Figure("chart-prefill", "Prefill speed (prompt tokens/s)", f"prompt tokens / prefill time; {spread}.",
               _spread_bars(ok, "prompt_tps", many_models, many_workloads), _layout("tokens/s")),
        Figure("chart-ttft", "Time to first token (ms)",
               f"start of prefill until the first generated token id is known; {spread}.",
               _spread_bars(ok, "ttft_ms", many_models, many_workloads), _layout("ms")),
    ]


def latency_figure(rows: list[dict], records: list[dict]) -> list[Figure]:
    """Distribution of every inter-token latency of each ok CELL (all repetitions pooled), as boxes."""
    by_id = {r.cell_id: r for r in as_records(records)}
    many_models = len({r["model"] for r in rows}) > 1
    many_workloads = len({r["workload"] for r in rows}) > 1
    boxes = {"type": "box", "name": "inter-token latency", "x": [], "q1": [], "median": [], "q3": [],
             "lowerfence": [], "upperfence": [], "mean": [], "boxpoints": False, "marker": {"color": "#1f77b4"}}
    for row in [r for r in rows if r["status"] == "ok"][:MAX_CELLS]:
        values = sorted(s * 1000 for rep in by_id[row["cell_id"]].result.repetitions
                        for s in rep.inter_token_latencies_s)  # none for a perplexity CELL
        if not values:
            continue
        boxes["x"].append(f"{_axis_label(row, many_models, many_workloads)} t{row['threads']}")
        boxes["q1"].append(describe.percentile(values, 25))
        boxes["median"].append(describe.percentile(values, 50))
        boxes["q3"].append(describe.percentile(values, 75))
        boxes["lowerfence"].append(values[0])
        boxes["upperfence"].append(values[-1])
        boxes["mean"].append(describe.np_sum(values) / len(values))
    if not boxes["x"]:
        return []
    return [Figure("chart-itl", "Inter-token latency distribution per CELL (ms)",
                   "Every inter-token latency of the CELL's timed repetitions: box from the 25th to the 75th "
                   "percentile, line at the median, dashed line at the mean, whiskers at the minimum and maximum.",
                   [boxes], _layout("ms", showlegend=False))]


def _lines(rows: list[dict], series_key, x_of, y_of) -> list:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(series_key(row), []).append(row)
    traces = []
    for name, members in list(groups.items())[:MAX_LINES]:
        members = sorted(members, key=x_of)
        traces.append({"type": "scatter", "mode": "lines+markers", "name": name,
                       "x": [x_of(r) for r in members], "y": [_num(y_of(r)) for r in members],
                       "customdata": [r["cell_id"] for r in members],
                       "hovertemplate": name + "<br>%{x}: %{y:.4g}<br>%{customdata}<extra></extra>"})
    return traces


def scaling_figures(rows: list[dict], parameters: dict[str, int]) -> list[Figure]:
    """Thread scaling (several thread counts) and model-size scaling (several models)."""
    ok = [r for r in rows if r["status"] == "ok" and (_num(r.get("gen_tps_n")) or 0) > 0]
    figures = []
    if len({r["threads"] for r in ok}) > 1:
        key = lambda r: f"{r['engine']} {r['format']} {r['model']} {r['workload']}"  # noqa: E731
        figures.append(Figure(
            "chart-threads", "Thread scaling: decode tokens/s against threads",
            "Median generation tokens/s of each engine x format x model x workload at each thread count.",
            _lines(ok, key, lambda r: r["threads"], lambda r: r["gen_tps_median"]),
            _layout("tokens/s", "threads", xaxis={"title": {"text": "threads"}, "dtick": 1})))
    sized = [r for r in ok if parameters.get(r["model"])]
    if len({r["model"] for r in sized}) > 1:
        key = lambda r: f"{r['engine']} {r['format']} t{r['threads']} {r['workload']}"  # noqa: E731
        size = lambda r: parameters[r["model"]]  # noqa: E731
        axis = {"title": {"text": "parameters"}, "type": "log"}
        figures.append(Figure(
            "chart-size-speed", "Model-size scaling: decode tokens/s against parameter count",
            "Median generation tokens/s of each engine x format x threads for each model.",
            _lines(sized, key, size, lambda r: r["gen_tps_median"]), _layout("tokens/s", xaxis=axis)))
        figures.append(Figure(
            "chart-size-memory", "Model-size scaling: peak memory against parameter count",
            "Peak memory of the CELL's cgroup (MiB, read outside the container; includes the model file's page "
            "cache).", _lines(sized, key, size, lambda r: r["peak_memory_mib_median"]), _layout("MiB", xaxis=axis)))
    return figures


def _verdict_bars(rows: list[dict], verdict_key: str, y_of, custom_of, hover: str) -> list:
    """One bar trace per verdict (coloured by VERDICT_COLOURS) over the CELLs that have one."""
    judged = [r for r in rows if r.get(verdict_key) in VERDICT_COLOURS][:MAX_CELLS]
    many_models = len({r["model"] for r in rows}) > 1
    many_workloads = len({r["workload"] for r in rows}) > 1
    traces = []
    for verdict, colour in VERDICT_COLOURS.items():
        mine = [r for r in judged if r[verdict_key] == verdict]
        if mine:
            traces.append({
                "type": "bar", "name": verdict, "marker": {"color": colour},
                "x": [f"{_axis_label(r, many_models, many_workloads)} t{r['threads']}" for r in mine],
                "y": [y_of(r, verdict) for r in mine], "customdata": [custom_of(r) for r in mine],
                "hovertemplate": hover})
    return traces


def agreement_figure(rows: list[dict]) -> list[Figure]:
    """Leading greedy tokens each CELL shares with its reference, coloured by verdict."""
    traces = _verdict_bars(
        rows, "agreement",
        lambda r, verdict: _num(r["agreement_of"]) if verdict == "reference" else _num(r["agreement_tokens"]),
        lambda r: [r["cell_id"], _num(r["agreement_of"]), r.get("agreement_reference") or "-"],
        "%{x}<br>%{y} of %{customdata[1]} tokens agree with %{customdata[2]}<br>%{customdata[0]}<extra></extra>")
    if not traces:
        return []
    return [Figure("chart-agreement", "Agreement: leading greedy tokens shared with the reference",
                   "F32 CELLs against the reference CELL (the first llama.cpp F32 CELL of the same model and "
                   "workload): they must agree on the first 32 tokens or are flagged DISAGREE (red). Quantized "
                   "formats against their F32 parent (grey, for information).",
                   traces, _layout("tokens", barmode="relative"))]


def perplexity_figure(rows: list[dict]) -> list[Figure]:
    """Perplexity of every perplexity CELL, coloured by its verdict against the reference."""
    traces = _verdict_bars(
        rows, "ppl_agreement", lambda r, _: _num(r["perplexity"]),
        lambda r: [r["cell_id"], _num(r["ppl_vs_reference"]), r.get("ppl_reference") or "-"],
        "%{x}<br>perplexity %{y:.5g}<br>%{customdata[1]:+.2%} vs %{customdata[2]}<br>%{customdata[0]}<extra></extra>")
    if not traces:
        return []
    return [Figure("chart-perplexity", "Perplexity of the evaluation text",
                   "exp(mean negative log-likelihood) of the text's ids. F32 CELLs must be within 0.5 % of the "
                   "reference (llama.cpp gguf-f32) or are flagged DISAGREE (red); quantized formats show their "
                   "increase over their F32 parent (grey).", traces, _layout("perplexity"))]
