"""The figures of what speed costs: decode rate against quality loss per model (with the front marked), and peak
memory per CELL beside decode speed (pure: plotly.js specs from the summary and the TABLE's rows)."""

from __future__ import annotations

from orchestrator.merge.standings import Standing, Summary
from orchestrator.report import charts
from orchestrator.stats import front

# Quality columns that measure a loss (lower is better) and can stand on the x axis, with the axis title.
LOSSES = {"ppl_vs_f32": ("perplexity increase over F32 (%)", 100.0), "kl_mean": ("KL divergence from F32, mean", 1.0),
          "kl_p99": ("KL divergence from F32, p99", 1.0)}
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def _points(summary: Summary, model: str, loss: str) -> tuple[dict[str, list[Standing]], int]:
    """The model's generation CELLs with a decode rate and a measured loss, by series (threads, machine), and how
    many ok CELLs had no loss measured."""
    series: dict[str, list[Standing]] = {}
    missing = 0
    machines = len({g.machine for g in summary.groups}) > 1
    for group in (g for g in summary.groups if g.model == model):
        name = f"{group.threads} thread{'s' if group.threads != 1 else ''}" + (f" @ {group.machine}" if machines else "")
        for standing in group.standings:
            speed, value = standing.median("gen_tps"), standing.quality.get(loss)
            if standing.row.get("status") != "ok" or speed != speed:
                continue
            if value is None:
                missing += 1
                continue
            series.setdefault(f"{name}, {group.workload}", []).append(standing)
    return series, missing


def speed_quality_figures(summary: Summary) -> list[charts.Figure]:
    """Per model and per measured loss: decode tok/s against the loss, the front of ranked CELLs marked."""
    figures = []
    measured = {c.key for c in summary.quality_columns}
    for model in dict.fromkeys(g.model for g in summary.groups):
        for loss, (axis, scale) in LOSSES.items():
            if loss not in measured:
                continue
            series, missing = _points(summary, model, loss)
            if not series:
                continue
            traces = []
            for index, (name, members) in enumerate(series.items()):
                symbol, colour = SYMBOLS[index % len(SYMBOLS)], COLOURS[index % len(COLOURS)]
                ranked = [s for s in members if s.rank is not None]
                on_front = [s for s, kept in zip(ranked, front.front(
                    [(s.median("gen_tps"), float(s.quality[loss])) for s in ranked])) if kept]
                on_front.sort(key=lambda s: float(s.quality[loss]))
                traces.append(_scatter(name, members, loss, scale, symbol, colour))
                if on_front:  # labelled: the choices worth making; the other points name themselves on hover
                    traces.append({"type": "scatter", "mode": "lines+markers+text", "name": f"front, {name}",
                                   "x": [float(s.quality[loss]) * scale for s in on_front],
                                   "y": [s.median("gen_tps") for s in on_front],
                                   "line": {"dash": "dash", "width": 2, "color": colour},
                                   "marker": {"size": 15, "symbol": symbol, "color": colour,
                                              "line": {"width": 2, "color": "#222"}},
                                   "text": [s.label for s in on_front], "textposition": "middle right",
                                   "cliponaxis": False,
                                   "hovertemplate": "front: %{text}<br>%{y:.4g} tok/s, %{x:.3g}<extra></extra>"})
            note = f" {missing} ok CELL(s) of this model had no {axis.split(' (')[0]} measured and are not drawn." \
                if missing else ""
            figures.append(charts.Figure(
                f"chart-speed-quality-{_slug(model)}-{loss}", f"Speed against quality: {model}",
                f"Median decode tok/s against {axis} (from the perplexity CELL of the same engine and format; 0 for "
                "the reference). Dashed: the front of ranked CELLs that no other ranked CELL beats on both axes "
                f"(faster with no more loss), labelled; hollow markers: CELLs not ranked (see the summary); hover a "
                f"marker for its CELL.{note}",
                traces, charts._layout("decode tokens/s", axis, xaxis={"title": {"text": axis}, "zeroline": True},
                                       hovermode="closest")))
    return figures


def _scatter(name: str, members: list[Standing], loss: str, scale: float, symbol: str, colour: str) -> dict:
    return {"type": "scatter", "mode": "markers", "name": name,
            "x": [float(s.quality[loss]) * scale for s in members], "y": [s.median("gen_tps") for s in members],
            "text": [s.label for s in members],
            "marker": {"size": 10, "color": colour,
                       "symbol": [symbol if s.rank is not None else f"{symbol}-open" for s in members]},
            "customdata": [[s.row.get("cell_id"), s.unranked or "ranked"] for s in members],
            "hovertemplate": "%{text}<br>%{y:.4g} tok/s, %{x:.3g}<br>%{customdata[0]}: %{customdata[1]}<extra></extra>"}


def memory_figure(rows: list[dict]) -> list[charts.Figure]:
    """Peak memory of each ok generation CELL's cgroup, grouped as the decode chart is, to read beside it."""
    ok = [r for r in rows if r.get("status") == "ok" and (charts._num(r.get("gen_tps_n")) or 0) > 0
          and charts._num(r.get("peak_memory_mib_median")) is not None][:charts.MAX_CELLS]
    if not ok:
        return []
    many_models = len({r["model"] for r in rows}) > 1
    many_workloads = len({r["workload"] for r in rows}) > 1
    traces = charts._spread_bars(ok, "peak_memory_mib", many_models, many_workloads)
    for trace in traces:  # one reading per CELL: nothing to draw an error bar of
        trace.pop("error_y", None)
        trace["hovertemplate"] = "%{x}<br>peak %{y:.4g} MiB<br>%{customdata[0]}<extra></extra>"
    return [charts.Figure("chart-memory", "Peak memory per CELL (MiB), beside decode speed",
                          "Peak memory of the CELL's cgroup, read outside the container (the runner's memory and the "
                          "page cache of the model file it read); one reading per CELL, so no error bar. Same order "
                          "as the decode chart.", traces, charts._layout("MiB"))]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-") or "model"
