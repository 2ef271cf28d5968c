"""The report charts, drawn with matplotlib from the report dicts (never from the database).

SVG for the HTML report: text is drawn as paths (``svg.fonttype = path``), so the file needs
no font and no network; each chart gets its own id salt so several can sit in one page
without their clip-path ids colliding, and no date, so the output is reproducible. PNG for
the weekly email (mail clients do not show inline SVG). ``matplotlib.figure.Figure`` is used
directly, never ``pyplot``: no global figure state, no GUI backend, safe in a server.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

HUMAN = "#1f6f5c"  # the clinic's green: people
MACHINE = "#9aa5b1"  # grey: machines, set apart, never hidden
ACCENT = "#c2410c"  # the CTA and leads
BOOKED = "#7c3aed"
LOST = "#b91c1c"
GRID = "#e5e7eb"
INK = "#1f2937"

FUNNEL_LABELS = {"recipients": "Recipients", "delivered": "Delivered", "opened": "Opened", "clicked": "Clicked",
                 "cta": "Clicked “Connect today”", "leads": "Became a lead", "booked": "Booked"}


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


def to_svg(fig, salt: str) -> str:  # type: ignore[no-untyped-def]
    """The chart as an ``<svg>`` element to put inline (no XML prolog, no doctype)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    # Scale with the page: keep the viewBox, let CSS decide the size.
    return re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r'<svg\1 role="img" focusable="false"', svg, count=1)


def to_png(fig, dpi: int = 144) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def funnel_chart(funnel: dict[str, Any], width: float = 7.5):  # type: ignore[no-untyped-def]
    """Horizontal bars, widest at the top; each bar says its people and its share of delivered."""
    stages = [k for k in FUNNEL_LABELS]
    labels = [delivered_label(funnel["basis"]) if k == "delivered" else FUNNEL_LABELS[k] for k in stages]
    values = [int(funnel[k]) for k in stages]
    base = funnel["delivered"]
    colours = [MACHINE, HUMAN, HUMAN, HUMAN, ACCENT, ACCENT, BOOKED]
    fig = _figure(width, 3.4)
    ax = fig.add_subplot()
    _style(ax)
    positions = list(range(len(stages)))[::-1]
    ax.barh(positions, values, color=colours, height=0.68)
    ax.set_yticks(positions, labels)
    top = max(values) or 1
    ax.set_xlim(0, top * (1.3 if width >= 7 else 1.6))
    ax.xaxis.get_major_locator().set_params(integer=True)
    for y, key, value in zip(positions, stages, values):
        share = "" if key == "recipients" else (f"  {_pct(value / funnel['recipients'])} of recipients" if key == "delivered"
                                                 and funnel["recipients"] else f"  {_pct(value / base)}" if base else "")
        ax.text(value + top * 0.01, y, f"{value:,}{share}", va="center", fontsize=9, color=INK)
    ax.set_xlabel("people", color=INK, fontsize=9)
    return fig


def hourly_chart(hourly: dict[str, Any], width: float = 7.5):  # type: ignore[no-untyped-def]
    """People reached over the first 72 hours, cumulative: people solid, machines dashed."""
    from itertools import accumulate

    fig = _figure(width, 3.0)
    ax = fig.add_subplot()
    _style(ax)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    hours = list(range(1, int(hourly["hours"]) + 1))
    for key, label, colour, dash in (("opens_human", "opened (people)", HUMAN, "-"),
                                     ("opens_machine", "opened (machines)", MACHINE, "--"),
                                     ("clicks_human", "clicked (people)", ACCENT, "-"),
                                     ("clicks_machine", "clicked (machines)", MACHINE, ":")):
        ax.step(hours, list(accumulate(hourly[key])), where="post", color=colour, linestyle=dash, linewidth=2, label=label)
    ax.set_xlim(0, hourly["hours"])
    ax.set_xticks(range(0, int(hourly["hours"]) + 1, 12))
    ax.set_xlabel("hours after sending started", color=INK, fontsize=9)
    ax.set_ylabel("people, cumulative", color=INK, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    _legend(fig, ax, 4)
    return fig


def _legend(fig, ax, columns: int) -> None:  # type: ignore[no-untyped-def]
    """Below the plot, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False, fontsize=8)


def paired_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], width: float = 7.5,
                percent: bool = False):  # type: ignore[no-untyped-def]
    """Horizontal grouped bars (links: people beside machines; tags: rates side by side)."""
    rows = max(len(labels), 1)
    fig = _figure(width, 0.9 + 0.42 * rows * max(1, len(series)) / 2)
    ax = fig.add_subplot()
    _style(ax)
    bar = 0.8 / max(1, len(series))
    for k, (name, values, colour) in enumerate(series):
        ys = [len(labels) - 1 - i + 0.4 - bar * (k + 0.5) for i in range(len(labels))]
        ax.barh(ys, values, height=bar * 0.92, color=colour, label=name)
        for y, v in zip(ys, values):
            ax.text(v, y, f" {_pct(v) if percent else f'{int(v):,}'}", va="center", fontsize=8, color=INK)
    ax.set_yticks(range(len(labels))[::-1], [_short(label) for label in labels])
    top = max((max(v) for _, v, _ in series if v), default=0) or 1
    ax.set_xlim(0, top * 1.2)
    if percent:
        ax.xaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(fig, ax, len(series))
    return fig


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trend_chart(weeks: Sequence[dict[str, Any]], width: float = 7.5):  # type: ignore[no-untyped-def]
    """Weekly open, click and CTA rates (weeks without a newsletter leave a gap)."""
    fig = _figure(width, 3.0)
    ax = fig.add_subplot()
    _style(ax)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    labels = [w["week"][-3:] for w in weeks]
    xs = list(range(len(weeks)))
    for key, label, colour in (("opened", "opened", HUMAN), ("clicked", "clicked", "#0e7490"),
                               ("cta", "clicked “Connect today”", ACCENT)):
        values = [w["rates"][key] if w["rates"][key] is not None else float("nan") for w in weeks]
        ax.plot(xs, values, marker="o", markersize=4, color=colour, linewidth=2, label=label)
    ax.set_xticks(xs, labels)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(lambda y, _: f"{100 * y:.0f}%")
    ax.set_ylabel("share of delivered", color=INK, fontsize=9)
    _legend(fig, ax, 3)
    return fig


def growth_chart(weeks: Sequence[dict[str, Any]], width: float = 7.5):  # type: ignore[no-untyped-def]
    """New subscribers up, the ones who left down (unsubscribed, bounced, complained), net as a line."""
    fig = _figure(width, 3.0)
    ax = fig.add_subplot()
    _style(ax)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    xs = list(range(len(weeks)))
    growth = [w["growth"] for w in weeks]
    ax.bar(xs, [g["new"] for g in growth], color=HUMAN, label="new")
    bottom = [0.0] * len(xs)
    for key, colour in (("unsubscribed", LOST), ("bounced", "#f59e0b"), ("complained", "#7f1d1d")):
        values = [-g[key] for g in growth]
        ax.bar(xs, values, bottom=bottom, color=colour, label=key)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.plot(xs, [g["net"] for g in growth], color=INK, marker="o", markersize=3, linewidth=1.5, label="net")
    ax.axhline(0, color="#6b7280", linewidth=0.8)
    ax.set_xticks(xs, [w["week"][-3:] for w in weeks])
    ax.set_ylabel("subscribers", color=INK, fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    _legend(fig, ax, 5)
    return fig


def leads_chart(weeks: Sequence[dict[str, Any]], width: float = 7.5):  # type: ignore[no-untyped-def]
    """New leads and bookings per week."""
    fig = _figure(width, 2.6)
    ax = fig.add_subplot()
    _style(ax)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    xs = list(range(len(weeks)))
    ax.bar([x - 0.2 for x in xs], [w["leads"]["new"] for w in weeks], width=0.4, color=ACCENT, label="new leads")
    ax.bar([x + 0.2 for x in xs], [w["leads"]["booked"] for w in weeks], width=0.4, color=BOOKED, label="booked")
    ax.set_xticks(xs, [w["week"][-3:] for w in weeks])
    ax.yaxis.get_major_locator().set_params(integer=True)
    _legend(fig, ax, 2)
    return fig
