"""The report's charts, drawn by matplotlib as inline SVG.

The SVG goes straight into the HTML page, so it must be self-contained and safe: glyphs are
drawn as paths (``svg.fonttype = "path"``: no font files, and customer names never appear as
markup), comments and metadata are stripped, and the id salt and date are fixed so two runs on
the same data produce byte-identical files. Mathtext is switched off for every label because a
customer called "Cost $ center" must not be parsed as a formula.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import date

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from momentos.models import LEVELS
from momentos.report.labels import Words

LEVEL_COLOURS: dict[str, str] = {
    "good": "#2e7d32", "fair": "#c0a000", "at_risk": "#e65100", "poor": "#b71c1c",
}
#: Pale versions of the level colours for the score zones behind the bars.
LEVEL_ZONES: dict[str, str] = {
    "good": "#e8f5e9", "fair": "#fffde7", "at_risk": "#fff3e0", "poor": "#ffebee",
}
MOMENT_COLOURS: dict[str, str] = {
    "operation": "#1565c0", "evolution": "#6a1b9a", "innovation": "#00796b",
}
_OTHER_COLOUR = "#757575"
_RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "momentos-report",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
}
_XML_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue, comments or metadata)."""
    buffer = io.StringIO()
    # Date None: no timestamp, so the output depends on the data only.
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = _XML_PROLOGUE.sub("", buffer.getvalue(), count=1)
    text = _METADATA.sub("", text)
    return _COMMENT.sub("", text).strip()


def _figure(width: float, height: float) -> tuple[Figure, object]:
    """A figure and its axes, detached from pyplot.

    pyplot keeps global figure state and picks a GUI backend; a bare ``Figure`` on the Agg
    canvas needs neither, so report builds can run headless and in parallel threads.
    """
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _short(text: str, limit: int = 28) -> str:
    """A label that fits the axis: long customer names are cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def scores_chart(
    cells: pd.DataFrame,
    customers: list[str],
    moments: list[str],
    words: Words,
    bands: Mapping[str, float],
) -> str:
    """Grouped horizontal bars: mean score per customer (rows) and moment (bars).

    ``cells`` is the customer x moment table; ``customers`` the customers to draw, top first;
    ``moments`` the bars of each group, in order. The level ``bands`` are shaded behind the
    bars so the zone a bar ends in reads as its level.
    """
    pivot = (
        cells.pivot(index="customer", columns="moment", values="mean_score")
        .reindex(index=customers, columns=moments)
    )
    n_cust, n_mom = len(customers), max(len(moments), 1)
    bar = 0.8 / n_mom
    with mpl.rc_context(_RC):
        # About 0.12 in per bar plus a gap per customer and room for the legend and axis.
        fig, ax = _figure(7.2, 0.9 + n_cust * (0.12 * n_mom + 0.12))
        bounds = [100.0, bands["good"], bands["fair"], bands["at_risk"], 0.0]
        for level, high, low in zip(("good", "fair", "at_risk", "poor"), bounds, bounds[1:]):
            ax.axvspan(low, high, color=LEVEL_ZONES[level], zorder=0, linewidth=0)
        y = np.arange(n_cust)
        for i, moment in enumerate(moments):
            values = pivot[moment].to_numpy(dtype=float)
            offsets = y - 0.4 + bar * (i + 0.5)
            ax.barh(
                offsets, np.nan_to_num(values, nan=0.0), height=bar * 0.92,
                color=MOMENT_COLOURS.get(moment, _OTHER_COLOUR), label=words.moment(moment),
                zorder=2,
            )
            for off, value in zip(offsets, values):
                if not np.isnan(value):
                    ax.text(value + 1, off, words.dec(value), va="center", fontsize=8,
                            color="#333333", parse_math=False, zorder=3)
        ax.set_yticks(y, [_short(c) for c in customers], parse_math=False)
        ax.set_xlim(0, 108)
        # Inverted (first customer on top, as in the matrix) and tight around the bars.
        ax.set_ylim(n_cust - 0.5, -0.5)
        ax.set_xticks([0, *sorted(bands.values()), 100])
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=n_mom, frameon=False)
        fig.tight_layout()
        return _svg(fig)


def levels_chart(distribution: pd.DataFrame, words: Words) -> str:
    """100 % stacked bars: the share of each level within each moment, with counts."""
    moments = list(distribution.index)
    totals = distribution.sum(axis=1).replace(0, np.nan)
    shares = distribution.div(totals, axis=0).fillna(0.0)
    with mpl.rc_context(_RC):
        fig, ax = _figure(5.8, 1.0 + 0.5 * max(len(moments), 1))
        left = np.zeros(len(moments))
        y = np.arange(len(moments))
        for level in LEVELS:
            widths = shares[level].to_numpy(dtype=float) * 100.0
            ax.barh(y, widths, left=left, height=0.6, color=LEVEL_COLOURS[level],
                    label=words.level(level), zorder=2)
            for yi, lo, width, count in zip(y, left, widths, distribution[level]):
                if width >= 6:  # too narrow to hold a label legibly
                    ax.text(lo + width / 2, yi, words.num(count), ha="center", va="center",
                            color="white", fontsize=9, fontweight="bold", parse_math=False,
                            zorder=3)
            left += widths
        ax.set_yticks(y, [words.moment(m) for m in moments], parse_math=False)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
        ax.tick_params(axis="y", length=0)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(LEVELS),
                  frameon=False)
        fig.tight_layout()
        return _svg(fig)


def weekly_chart(weekly: pd.DataFrame, words: Words, bands: Mapping[str, float]) -> str:
    """Two panels over the same weeks: mean score per moment (lines), items opened (bars).

    ``weekly`` is :func:`momentos.report.insights.weekly_trends`: one row per week x moment,
    oldest week first. Weeks without items leave a gap in the line rather than a fake zero.
    """
    weeks = list(dict.fromkeys(weekly["week_start"]))
    moments = [m for m in MOMENT_COLOURS if m in set(weekly["moment"])]
    x = np.arange(len(weeks))
    labels = [words.short_day(date.fromisoformat(w)) for w in weeks]
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(7.2, 4.4))
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        bounds = [100.0, bands["good"], bands["fair"], bands["at_risk"], 0.0]
        for level, high, low in zip(("good", "fair", "at_risk", "poor"), bounds, bounds[1:]):
            top.axhspan(low, high, color=LEVEL_ZONES[level], zorder=0, linewidth=0)
        width = 0.8 / max(len(moments), 1)
        for i, moment in enumerate(moments):
            rows = weekly.loc[weekly["moment"] == moment].set_index("week_start").reindex(weeks)
            colour = MOMENT_COLOURS.get(moment, _OTHER_COLOUR)
            top.plot(x, rows["mean_score"].to_numpy(dtype=float), marker="o", markersize=3.5,
                     linewidth=1.8, color=colour, label=words.moment(moment), zorder=2)
            bottom.bar(x - 0.4 + width * (i + 0.5), rows["items"].to_numpy(dtype=float),
                       width=width * 0.92, color=colour, zorder=2)
        top.set_ylim(0, 100)
        top.set_yticks([0, *sorted(bands.values()), 100])
        top.set_title(words.text["chart_weekly_score"], loc="left", fontsize=10)
        bottom.set_title(words.text["chart_weekly_volume"], loc="left", fontsize=10)
        bottom.set_xticks(x, labels, rotation=0, fontsize=8)
        top.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=max(len(moments), 1),
                   frameon=False)
        fig.tight_layout()
        return _svg(fig)
