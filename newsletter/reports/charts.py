"""The report charts, drawn with matplotlib from the report dicts (never from the database).

SVG for the HTML report: text is drawn as paths (``svg.fonttype = path``), so the file needs
no font and no network; each chart gets its own id salt so several can sit in one page
without their clip-path ids colliding, and no date, so the output is reproducible. PNG for
the weekly email (mail clients do not show inline SVG). ``matplotlib.figure.Figure`` is used
directly, never ``pyplot``: no global figure state, no GUI backend, safe in a server.

What a director reads must make sense: an axis that counts people has whole-number ticks only
(never "0.05 people"), a label is wrapped onto more lines rather than cut, and a chart with
nothing to draw is not drawn at all: the ``*_is_empty`` predicates tell the renderers to say
so in words instead ("no engagement yet").
"""

from __future__ import annotations

import io
import itertools
import math
import re
import textwrap
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

HUMAN = "#1f6f5c"  # the clinic's green: people
MACHINE = "#9aa5b1"  # grey: machines, set apart, never hidden
ACCENT = "#c2410c"  # the CTA and leads
BOOKED = "#7c3aed"
LOST = "#b91c1c"
GRID = "#e5e7eb"
INK = "#1f2937"

FUNNEL_LABELS = {
    "recipients": "Recipients",
    "delivered": "Delivered",
    "opened": "Opened",
    "clicked": "Clicked",
    "cta": "Clicked “Connect today”",
    "leads": "Became a lead",
    "booked": "Booked",
}


def delivered_label(basis: str) -> str:
    """The funnel's second step says what it counts (see ``figures.funnel``)."""
    return {"sent": "Sent (no delivery reports)", "mixed": "Delivered (or sent*)"}.get(basis, "Delivered")


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _style(ax) -> None:  # type: ignore[no-untyped-def]
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9ca3af")
    ax.tick_params(colors=INK, labelsize=9)
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def _axes(width: float, height: float, *, value_grid: bool = False) -> tuple[Any, Any]:
    """A figure with one styled plot; ``value_grid``: lines across for a chart read upwards."""
    fig = _figure(width, height)
    ax = fig.add_subplot()
    _style(ax)
    if value_grid:
        ax.grid(axis="y", color=GRID, linewidth=0.8)
    return fig, ax


def to_svg(fig, salt: str) -> str:  # type: ignore[no-untyped-def]
    """The chart as an ``<svg>`` element to put inline (no XML prolog, no doctype)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Scale with the page: keep the viewBox, let CSS decide the size.
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r'<svg\1 role="img" focusable="false"', svg, count=1)


def to_png(fig, dpi: int = 144) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _count_axis(axis, largest: float, room: float | None = None) -> None:  # type: ignore[no-untyped-def]
    """Whole-number ticks on an axis that counts people or messages. With nothing above zero
    matplotlib would span 0–0.05 and tick in hundredths; the axis then runs 0–1 instead.
    ``room``: the axis' length in inches when it is horizontal, so that wide numbers such as
    "300,000" get fewer ticks rather than overlapping ones."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    bins: int | Literal["auto"] = "auto"
    if room is not None:
        label = 0.075 * len(f"{max(largest, 1) * 1.6:,.0f}") + 0.25  # inches per label at 9 pt, with a gap
        bins = max(2, int(room / label))
    axis.set_major_locator(MaxNLocator(nbins=bins, integer=True, min_n_ticks=2, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    if largest < 1:
        ax = axis.axes
        set_limits = ax.set_xlim if axis is ax.xaxis else ax.set_ylim
        set_limits(min(0.0, axis.get_view_interval()[0]), 1.0)


def _percent_axis(axis) -> None:  # type: ignore[no-untyped-def]
    """Shares as percentages with as many decimals as the ticks' spacing needs: "0%, 10%, 20%"
    or "0.0%, 0.1%, 0.2%", never "0%, 0%, 0%" nor "0.100%"."""
    from matplotlib.ticker import Formatter

    class Percent(Formatter):
        decimals = 0

        def format_ticks(self, values: Sequence[float]) -> list[str]:
            steps = [abs(b - a) * 100 for a, b in itertools.pairwise(values) if b != a]
            step = min(steps, default=1.0)
            self.decimals = 0 if step >= 1 else min(3, math.ceil(-math.log10(step) - 1e-9))
            return [self(value) for value in values]

        def __call__(self, x: float, pos: int | None = None) -> str:
            if x > 1 + 1e-9:  # room for a bar's label beyond 100 %, not a share anyone had
                return ""
            return f"{100 * x:.{self.decimals}f}%"

    axis.set_major_formatter(Percent())


#: Characters per line of a wrapped chart label, and the most lines one label may take.
LABEL_WIDTH = 30
LABEL_LINES = 6


def wrap_label(text: str, width: int = LABEL_WIDTH) -> str:
    """A label on as many lines as it needs (a long URL breaks anywhere): never cut short, unless
    it would fill more than ``LABEL_LINES`` lines, when the last one ends with "…"."""
    lines = textwrap.wrap(" ".join(text.split()), width=width, break_on_hyphens=False) or [""]
    if len(lines) > LABEL_LINES:
        lines = lines[:LABEL_LINES]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "\n".join(lines)


def hourly_is_empty(hourly: dict[str, Any]) -> bool:
    """Nobody (person or machine) opened or clicked in the window, or sending has not started."""
    return hourly["start"] is None or not any(any(hourly[key]) for key in HOURLY_SERIES)


def funnel_is_empty(funnel: dict[str, Any]) -> bool:
    """Nothing was sent: every bar would be zero."""
    return not funnel["recipients"]


def bars_are_empty(series: Sequence[tuple[str, Sequence[float], str]]) -> bool:
    """Every bar of every series is zero (or missing)."""
    return not any(value for _, values, _ in series for value in values)


def trend_is_empty(weeks: Sequence[dict[str, Any]]) -> bool:
    """No week of the period had a newsletter with a rate to plot."""
    return all(w["rates"][key] is None for w in weeks for key in ("opened", "clicked", "cta"))


def growth_is_empty(weeks: Sequence[dict[str, Any]]) -> bool:
    """Nobody joined or left the list in any week of the period."""
    return not any(w["growth"][key] for w in weeks for key in ("new", *GROWTH_LOST))


def leads_is_empty(weeks: Sequence[dict[str, Any]]) -> bool:
    """No new lead and no booking in any week of the period."""
    return not any(w["leads"]["new"] or w["leads"]["booked"] for w in weeks)


def monday(week: str) -> date:
    """The Monday an ISO week ``2026-W47`` starts on."""
    year, number = week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


def week_label(week: str, *, with_year: bool = False) -> str:
    """ISO week ``2026-W47`` as the date its Monday falls on, "16 Nov" (what a person reads);
    "16 Nov 2026" when the chart spans more than one year."""
    day = monday(week)
    return f"{day.day} {day:%b}" + (f" {day.year}" if with_year else "")


def _week_ticks(ax, weeks: Sequence[dict[str, Any]], width: float) -> None:  # type: ignore[no-untyped-def]
    """Every week's Monday under its point while they fit (about one per 0.55 inch of plot, 0.95
    with the year), else every n-th week's counting back from the latest, so the labels never
    overlap and the week just reported always has its date."""
    with_year = len({monday(w["week"]).year for w in weeks}) > 1
    room = max(1, int((width - 0.9) / (0.95 if with_year else 0.55)))
    step = max(1, math.ceil(len(weeks) / room))
    xs = list(range(len(weeks) - 1, -1, -step))[::-1]
    ax.set_xticks(xs, [week_label(weeks[x]["week"], with_year=with_year) for x in xs])
    ax.set_xlabel("week starting", color=INK, fontsize=9)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def funnel_chart(funnel: dict[str, Any], width: float = 7.5):  # type: ignore[no-untyped-def]
    """Horizontal bars, widest at the top; each bar says its people and its share of delivered."""
    stages = [k for k in FUNNEL_LABELS]
    labels = [delivered_label(funnel["basis"]) if k == "delivered" else FUNNEL_LABELS[k] for k in stages]
    values = [int(funnel[k]) for k in stages]
    base = funnel["delivered"]
    colours = [MACHINE, HUMAN, HUMAN, HUMAN, ACCENT, ACCENT, BOOKED]
    fig, ax = _axes(width, 3.4)
    positions = list(range(len(stages)))[::-1]
    ax.barh(positions, values, color=colours, height=0.68)
    ax.set_yticks(positions, labels)
    top = max(values) or 1
    ax.set_xlim(0, top * (1.3 if width >= 7 else 1.6))
    _count_axis(ax.xaxis, max(values), room=width * 0.55)
    for y, key, value in zip(positions, stages, values, strict=True):
        share = (
            ""
            if key == "recipients"
            else (
                f"  {_pct(value / funnel['recipients'])} of recipients"
                if key == "delivered" and funnel["recipients"]
                else f"  {_pct(value / base)}"
                if base
                else ""
            )
        )
        ax.text(value + top * 0.01, y, f"{value:,}{share}", va="center", fontsize=9, color=INK)
    ax.set_xlabel("people", color=INK, fontsize=9)
    _room_for_value_labels(fig, ax)
    return fig


def _room_for_value_labels(fig, ax) -> None:  # type: ignore[no-untyped-def]
    """Widen the x axis until every label written after its bar ends inside the plot: a text
    of ``w`` pixels starting at data ``x`` fits when the axis reaches ``x·W/(W − w)``, ``W`` the
    plot's width in pixels (the labels' pixel widths do not change with the scale)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not ax.texts:
        return
    FigureCanvasAgg(fig).draw()  # type: ignore[no-untyped-call]  # matplotlib's Agg draw() is unannotated; the layout settles the plot's width
    renderer = fig.canvas.get_renderer()
    plot = ax.get_window_extent(renderer).width
    low, high = ax.get_xlim()
    needed = high
    for text in ax.texts:
        width = text.get_window_extent(renderer).width + 6
        if width < plot:
            needed = max(needed, low + (text.get_position()[0] - low) * plot / (plot - width))
    ax.set_xlim(low, needed)


def hourly_chart(hourly: dict[str, Any], width: float = 7.5):  # type: ignore[no-untyped-def]
    """People reached over the first 72 hours, cumulative: people solid, machines dashed."""
    from itertools import accumulate

    fig, ax = _axes(width, 3.0, value_grid=True)
    hours = list(range(1, int(hourly["hours"]) + 1))
    largest = 0
    for key, label, colour, dash in (
        ("opens_human", "opened (people)", HUMAN, "-"),
        ("opens_machine", "opened (machines)", MACHINE, "--"),
        ("clicks_human", "clicked (people)", ACCENT, "-"),
        ("clicks_machine", "clicked (machines)", MACHINE, ":"),
    ):
        running = list(accumulate(hourly[key]))
        largest = max(largest, running[-1] if running else 0)
        ax.step(hours, running, where="post", color=colour, linestyle=dash, linewidth=2, label=label)
    ax.set_xlim(0, hourly["hours"])
    ax.set_xticks(range(0, int(hourly["hours"]) + 1, 12))
    ax.set_xlabel("hours after sending started", color=INK, fontsize=9)
    ax.set_ylabel("people, cumulative", color=INK, fontsize=9)
    ax.set_ylim(bottom=0)
    _count_axis(ax.yaxis, largest)
    _legend(fig, ax, 4 if width >= 7 else 2)
    return fig


#: The hourly chart's series (``campaign._hourly``).
HOURLY_SERIES = ("opens_human", "opens_machine", "clicks_human", "clicks_machine")


def _legend(fig, ax, columns: int) -> None:  # type: ignore[no-untyped-def]
    """Below the plot, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False, fontsize=8)


def paired_bars(
    labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], width: float = 7.5, percent: bool = False
) -> Any:
    """Horizontal grouped bars (links: people beside machines; tags: rates side by side).
    Labels are wrapped, never cut; a row is as tall as its bars or its label's lines."""
    wrapped = [wrap_label(label) for label in labels]
    row = max([max(0.21 * max(1, len(series)), 0.16 * (label.count("\n") + 1) + 0.1) for label in wrapped], default=0.4)
    fig, ax = _axes(width, 0.9 + row * max(1, len(labels)))
    bar = 0.8 / max(1, len(series))
    for k, (name, values, colour) in enumerate(series):
        ys = [len(labels) - 1 - i + 0.4 - bar * (k + 0.5) for i in range(len(labels))]
        ax.barh(ys, values, height=bar * 0.92, color=colour, label=name)
        for y, v in zip(ys, values, strict=False):
            ax.text(v, y, f" {_pct(v) if percent else f'{int(v):,}'}", va="center", fontsize=8, color=INK)
    ax.set_yticks(range(len(labels))[::-1], wrapped)
    top = max((max(v) for _, v, _ in series if v), default=0) or 1
    ax.set_xlim(0, top * 1.2)
    if percent:
        _percent_axis(ax.xaxis)
    else:
        _count_axis(ax.xaxis, top, room=width * 0.5)
    _legend(fig, ax, len(series))
    _room_for_value_labels(fig, ax)
    return fig


def _weekly_finish(
    fig: Any, ax: Any, weeks: Sequence[dict[str, Any]], width: float, ylabel: str, legend_columns: int
) -> Any:
    """What every chart over the period's weeks ends with: Monday dates under the weeks, the
    unit up the side, the legend below."""
    _week_ticks(ax, weeks, width)
    ax.set_ylabel(ylabel, color=INK, fontsize=9)
    _legend(fig, ax, legend_columns)
    return fig


def trend_chart(weeks: Sequence[dict[str, Any]], width: float = 7.5):  # type: ignore[no-untyped-def]
    """Weekly open, click and CTA rates (weeks without a newsletter leave a gap)."""
    fig, ax = _axes(width, 3.0, value_grid=True)
    xs = list(range(len(weeks)))
    for key, label, colour in (
        ("opened", "opened", HUMAN),
        ("clicked", "clicked", "#0e7490"),
        ("cta", "clicked “Connect today”", ACCENT),
    ):
        values = [w["rates"][key] if w["rates"][key] is not None else float("nan") for w in weeks]
        ax.plot(xs, values, marker="o", markersize=4, color=colour, linewidth=2, label=label)
    ax.set_ylim(bottom=0)
    _percent_axis(ax.yaxis)
    return _weekly_finish(fig, ax, weeks, width, "share of delivered", 3)


#: The ways a subscriber leaves the list, as the growth chart stacks them.
GROWTH_LOST = ("unsubscribed", "bounced", "complained")


def growth_chart(weeks: Sequence[dict[str, Any]], width: float = 7.5):  # type: ignore[no-untyped-def]
    """New subscribers up, the ones who left down (unsubscribed, bounced, complained), net as a line."""
    fig, ax = _axes(width, 3.0, value_grid=True)
    xs = list(range(len(weeks)))
    growth = [w["growth"] for w in weeks]
    ax.bar(xs, [g["new"] for g in growth], color=HUMAN, label="new")
    bottom = [0.0] * len(xs)
    for key, colour in zip(GROWTH_LOST, (LOST, "#f59e0b", "#7f1d1d"), strict=True):
        values = [-g[key] for g in growth]
        ax.bar(xs, values, bottom=bottom, color=colour, label=key)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.plot(xs, [g["net"] for g in growth], color=INK, marker="o", markersize=3, linewidth=1.5, label="net")
    ax.axhline(0, color="#6b7280", linewidth=0.8)
    _count_axis(ax.yaxis, max([abs(g[key]) for g in growth for key in ("new", *GROWTH_LOST, "net")], default=0))
    return _weekly_finish(fig, ax, weeks, width, "subscribers", 5 if width >= 7 else 3)


def leads_chart(weeks: Sequence[dict[str, Any]], width: float = 7.5):  # type: ignore[no-untyped-def]
    """New leads and bookings per week."""
    fig, ax = _axes(width, 2.6, value_grid=True)
    xs = list(range(len(weeks)))
    ax.bar([x - 0.2 for x in xs], [w["leads"]["new"] for w in weeks], width=0.4, color=ACCENT, label="new leads")
    ax.bar([x + 0.2 for x in xs], [w["leads"]["booked"] for w in weeks], width=0.4, color=BOOKED, label="booked")
    _count_axis(ax.yaxis, max([max(w["leads"]["new"], w["leads"]["booked"]) for w in weeks], default=0))
    return _weekly_finish(fig, ax, weeks, width, "people", 2)
