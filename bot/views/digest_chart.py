"""The digest's trend chart: MQLs, acceptance and median time to accept over the last weeks (PNG)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter, StrMethodFormatter

from bot.core.metrics import TrendPoint

BAR = "#4a90d9"
ACCEPT = "#2e7d32"
TIME = "#c62828"


def _or_nan(value: float | None, scale: float = 1.0) -> float:
    return math.nan if value is None else value * scale


def render_trend_png(series: Sequence[TrendPoint], *, title: str = "Last weeks") -> bytes:
    """A PNG (800x560) of the trend, oldest week first; drawn off-screen with Agg, no display."""
    # A Figure with its own Agg canvas, not pyplot: no global state, safe in a worker thread.
    figure = Figure(figsize=(8, 5.6), dpi=100)
    figure.subplots_adjust(left=0.1, right=0.88, top=0.93, bottom=0.1, hspace=0.08)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    x = list(range(len(series)))
    labels = [f"{p.week.label[-3:]}\n{p.week.monday:%b %d}" for p in series]

    volumes = [p.mqls for p in series]
    top.bar(x, volumes, color=BAR, label="MQLs delivered")
    top.set_ylabel("MQLs")
    top.set_ylim(0, max([*volumes, 1]) * 1.3)  # headroom for the legend
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    top.set_title(title, loc="left", fontsize=11)
    rate = top.twinx()
    rate.plot(
        x,
        [_or_nan(p.acceptance_rate, 100) for p in series],
        color=ACCEPT,
        marker="o",
        label="Acceptance %",
    )
    rate.set_ylim(0, 130)
    rate.set_yticks([0, 25, 50, 75, 100])
    rate.yaxis.set_major_formatter(PercentFormatter(100))
    rate.set_ylabel("Acceptance")
    handles = top.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    top.legend(handles=handles, loc="upper left", ncols=2, fontsize=8, frameon=False)

    minutes = [_or_nan(p.median_accept, 1 / 60) for p in series]
    bottom.plot(x, minutes, color=TIME, marker="o")
    bottom.set_ylabel("Median min\nto accept")
    bottom.set_ylim(bottom=0, top=max([m for m in minutes if not math.isnan(m)] or [1]) * 1.2)
    bottom.set_xticks(x, labels, fontsize=8)
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
        axis.spines[["top"]].set_visible(False)

    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
