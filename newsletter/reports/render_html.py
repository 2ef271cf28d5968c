"""The HTML reports: one self-contained file (inline CSS, inline SVG charts, no script, no
font or image fetched), so it opens from a disk, an attachment or a shared drive, offline.

Templates live in ``newsletter/reports/templates/`` (inside the package, so the wheel carries
them). The figures come from the report dicts unchanged; every number a table shows is the
number ``--json`` prints. A chart with nothing to draw is left out of ``charts`` and the
template says why in words ("No engagement yet") instead of showing empty axes; machine keys
(link kinds, machine reasons) are shown through :mod:`.labels`.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter.reports.labels import link_kind, machine_reason

TEMPLATES = Path(__file__).resolve().parent / "templates"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:,}"


def when(value: str | None, fmt: str = "%a %d %b %Y, %H:%M UTC") -> str:
    return "—" if not value else datetime.fromisoformat(value).strftime(fmt)


def week(value: str, end: bool = False) -> str:
    """An ISO week ``2026-W47`` as people say it: the date of its Monday, "16 Nov 2026" (its
    Sunday with ``end``). The ISO code stays in ``--json``, ``--csv`` and the data attributes."""
    from datetime import timedelta

    from newsletter.reports.charts import monday

    day = monday(value) + timedelta(days=6 if end else 0)
    return f"{day.day} {day:%b %Y}"


def _escape(name: str | None) -> bool:
    """HTML-escape everything but the text parts (``*.txt.j2``)."""
    return not (name or "").endswith(".txt.j2")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=_escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, num=num, when=when, week=week, link_kind=link_kind, machine_reason=machine_reason)
    return env


def _svg(fig, salt: str) -> str:  # type: ignore[no-untyped-def]
    from newsletter.reports.charts import to_svg

    return to_svg(fig, salt)


def link_chart_label(link: dict[str, Any]) -> str:
    """A link as the chart names it: its number and its label (or its address), as the table does."""
    return f"{link['position']}. {link['label'] or link['url']}"


def campaign_charts(report: dict[str, Any]) -> dict[str, str]:
    """Inline SVGs for a campaign report, by chart id; a chart with nothing to draw is absent."""
    from newsletter.reports import charts

    out = {}
    if not charts.funnel_is_empty(report["funnel"]):
        out["funnel"] = _svg(charts.funnel_chart(report["funnel"]), "funnel")
    if not charts.hourly_is_empty(report["hourly"]):
        out["hourly"] = _svg(charts.hourly_chart(report["hourly"]), "hourly")
    links = [
        ("people", [link["unique_human"] for link in report["links"]], charts.HUMAN),
        ("machines", [link["unique_machine"] for link in report["links"]], charts.MACHINE),
    ]
    if report["links"] and not charts.bars_are_empty(links):
        out["links"] = _svg(charts.paired_bars([link_chart_label(link) for link in report["links"]], links), "links")
    tags = report["by_tag"]
    rates = [
        ("opened", [t["rates"]["opened"] or 0 for t in tags], charts.HUMAN),
        ("clicked", [t["rates"]["clicked"] or 0 for t in tags], "#0e7490"),
        ("clicked “Connect today”", [t["rates"]["cta"] or 0 for t in tags], charts.ACCENT),
    ]
    if tags and not charts.bars_are_empty(rates):
        out["tags"] = _svg(charts.paired_bars([t["tag"] for t in tags], rates, percent=True), "tags")
    return out


def trends_charts(report: dict[str, Any]) -> dict[str, str]:
    """Inline SVGs for the trends report, by chart id; a chart with nothing to draw is absent."""
    from newsletter.reports import charts

    weeks, out = report["weeks"], {}
    if not charts.trend_is_empty(weeks):
        out["trend"] = _svg(charts.trend_chart(weeks), "trend")
    if not charts.funnel_is_empty(report["totals"]["funnel"]):
        out["funnel"] = _svg(charts.funnel_chart(report["totals"]["funnel"]), "funnel")
    if not charts.growth_is_empty(weeks):
        out["growth"] = _svg(charts.growth_chart(weeks), "growth")
    if not charts.leads_is_empty(weeks):
        out["leads"] = _svg(charts.leads_chart(weeks), "leads")
    return out


def campaign_html(
    report: dict[str, Any], *, brand: str = "Roots Mental Wellness", generated_at: str | None = None
) -> str:
    """The campaign report as one HTML document."""
    if generated_at is None:
        from newsletter.db.models import utcnow

        generated_at = utcnow().isoformat()
    return (
        environment()
        .get_template("campaign.html.j2")
        .render(r=report, charts=campaign_charts(report), brand=brand, generated_at=generated_at)
    )


def trends_html(report: dict[str, Any], *, brand: str = "Roots Mental Wellness") -> str:
    """The across-campaigns report as one HTML document."""
    return environment().get_template("trends.html.j2").render(r=report, charts=trends_charts(report), brand=brand)
