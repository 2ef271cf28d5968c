"""The reports as terminal tables (rich): every figure of ``campaign_report`` / ``trends_report``.

Nothing is computed here beyond a share of two printed numbers, so the table and ``--json``
can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console

from newsletter.terminal_text import DataTable, esc

STAGES = (
    ("recipients", "recipients"),
    ("delivered", "delivered"),
    ("opened", "opened"),
    ("clicked", "clicked"),
    ("cta", "clicked “Connect today”"),
    ("leads", "became a lead"),
    ("booked", "booked"),
)
WINDOWS = (1, 6, 24, 48, 72)


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _n(value: int) -> str:
    return f"{value:,}"


def _when(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC") if value else "not started"


def _table(*columns: str, title: str, copy: tuple[str, ...] = ()) -> DataTable:
    """A report table; its cells (subjects, segments, link labels, tags) are data, printed literally."""
    table = DataTable(*columns, copy=copy, title=title, title_justify="left", title_style="bold")
    for k, column in enumerate(table.columns):
        column.justify = "left" if k == 0 else "right"
    return table


def _after_delivery(funnel: dict[str, Any], rates: dict[str, Any]) -> list[str]:
    """A funnel row's cells from opened to booked: the same five columns wherever rows are
    compared (weeks, segments, newsletters)."""
    return [
        f"{_n(funnel['opened'])} {_pct(rates['opened'])}",
        f"{_n(funnel['clicked'])} {_pct(rates['clicked'])}",
        f"{_n(funnel['cta'])} {_pct(rates['cta'])}",
        _n(funnel["leads"]),
        _n(funnel["booked"]),
    ]


def _group_cells(group: dict[str, Any]) -> list[str]:
    """A group of newsletters (a week, a segment): how many, delivered, then as each newsletter."""
    return [_n(group["campaigns"]), _n(group["funnel"]["delivered"]), *_after_delivery(group["funnel"], group["rates"])]


def _funnel_table(
    funnel: dict[str, Any], rates: dict[str, Any], machines: dict[str, int] | None = None, title: str = "Funnel"
) -> DataTable:
    basis = "sent" if funnel["basis"] == "sent" else "delivered"
    columns = ["", "people", f"of {basis}", "of step before"] + (["machines"] if machines is not None else [])
    table = _table(*columns, title=f"{title} (rates are of {basis} messages)")
    previous = None
    for key, label in STAGES:
        if key == "delivered" and funnel["basis"] != "delivered":
            label = (
                "sent (no delivery reports yet)" if funnel["basis"] == "sent" else "delivered (or sent, no reports yet)"
            )
        share = (
            ""
            if key == "recipients"
            else (f"{_pct(rates['delivered'])} of recipients" if key == "delivered" else _pct(rates[key]))
        )
        row = [label, _n(funnel[key]), share, _rate(funnel[key], funnel[previous]) if previous else ""]
        if machines is not None:
            row.append(_n(machines[key]) if key in machines else "")
        table.add_row(*row)
        previous = key
    return table


def print_report(console: Console, data: dict[str, Any]) -> None:
    """``newsletter report ID``: the funnel, people beside machines, delivery, 72 hours, links, tags."""
    console.print(
        f"[bold]Campaign {data['campaign_id']}[/] “{esc(data['subject'])}” — {esc(data['status'])} · "
        f"{esc(data['kind'])} · segment {esc(data['segment'])} · started {_when(data['started_at'])}",
        highlight=False,
    )
    machines = {
        "opened": data["opens"]["unique_machine"],
        "clicked": data["clicks"]["unique_machine"],
        "cta": data["cta_machine"],
    }
    console.print(_funnel_table(data["funnel"], data["rates"], machines))
    console.print(
        f"click-to-open {_pct(data['rates']['click_to_open'])}; “opened” counts the pixel or a click", highlight=False
    )
    _people_and_machines(console, data)
    _delivery(console, data)
    _hourly(console, data["hourly"])
    _links(console, data["links"])
    _tags(console, data["by_tag"])


def _people_and_machines(console: Console, data: dict[str, Any]) -> None:
    table = _table("", "people", "machines", "raw events", title="People and machines")
    table.add_row(
        "opened (the pixel)",
        _n(data["opens"]["unique_human"]),
        _n(data["opens"]["unique_machine"]),
        _n(data["opens"]["total"]),
    )
    table.add_row(
        "clicked", _n(data["clicks"]["unique"]), _n(data["clicks"]["unique_machine"]), _n(data["clicks"]["total"])
    )
    table.add_row("clicked “Connect today”", _n(data["clicks"]["cta_unique"]), _n(data["cta_machine"]), "")
    console.print(table)
    console.print(
        f"CTA → lead: {data['cta_leads']} of {data['clicks']['cta_unique']} people "
        f"({data['clicks']['cta_confirmed']} confirmed on the continue page, {data['clicks']['uncertain']} doubted "
        f"clicks); {data['leads']} lead(s) started with this campaign; {data['booked']} booked",
        highlight=False,
    )
    reasons = data["machine_reasons"]
    if reasons["opens"] or reasons["clicks"]:
        from newsletter.reports.labels import machine_reason

        # plain words, never the key ("honeypot", "apple_mpp")
        why = _table("judged a machine because", "opens", "clicks", title="Machine reasons")
        for reason in sorted(set(reasons["opens"]) | set(reasons["clicks"])):
            why.add_row(
                machine_reason(reason), _n(reasons["opens"].get(reason, 0)), _n(reasons["clicks"].get(reason, 0))
            )
        console.print(why)


def _delivery(console: Console, data: dict[str, Any]) -> None:
    p = data["provider"]
    table = _table("", "messages", title="Sending and delivery")
    table.add_row("recipients (ledger)", _n(data["recipients"]))
    table.add_row("sent (accepted by the provider)", _n(data["sent"]))
    for key in ("failed", "ambiguous", "suppressed", "queued"):
        if data[key]:
            table.add_row(key, _n(data[key]))
    if data["delivered"] or data["bounced"] or p["processed"] or data["deferred"] or data["dropped"]:
        table.add_row("delivered (provider events)", _n(data["delivered"]))
        table.add_row("deferred (attempts / messages)", f"{_n(data['deferred'])} / {_n(p['deferred_messages'])}")
        table.add_row("bounced (hard / soft)", f"{_n(p['bounced_hard'])} / {_n(p['bounced_soft'])}")
        table.add_row("dropped", _n(data["dropped"]))
    else:  # the outbox, or SendGrid's Event Webhook not (yet) heard from: unknown is not zero
        table.add_row("delivered / deferred / bounced / dropped", "— no provider events yet")
    table.add_row("complaints", _n(data["complaints"]))
    table.add_row("unsubscribed (people)", _n(data["unsubscribes"]))
    console.print(table)


def _hourly(console: Console, hourly: dict[str, Any]) -> None:
    from newsletter.reports.charts import hourly_is_empty

    if hourly_is_empty(hourly):  # a table of zeros says less than these words
        why = "nobody has opened or clicked" if hourly["start"] else "sending has not started"
        console.print(f"[bold]First {hourly['hours']} hours:[/] no engagement yet ({why}).", highlight=False)
        return
    table = _table(
        "people by hour",
        *(str(h) for h in WINDOWS),
        title=f"First {hourly['hours']} hours (cumulative, from {_when(hourly['start'])})",
    )
    for key, label in (
        ("opens_human", "opened, people"),
        ("opens_machine", "opened, machines"),
        ("clicks_human", "clicked, people"),
        ("clicks_machine", "clicked, machines"),
    ):
        table.add_row(label, *(_n(sum(hourly[key][:h])) for h in WINDOWS))
    console.print(table)


def _links(console: Console, links: list[dict[str, Any]]) -> None:
    if not links:
        return
    from newsletter.reports.labels import link_kind

    # plain words, never the key ("honeypot", "read_more")
    table = _table("#", "what it is", "link", "people", "machines", "raw clicks", title="Links")
    for link in links:
        table.add_row(
            str(link["position"]),
            link_kind(link["kind"]),
            link["label"] or link["url"],
            _n(link["unique_human"]),
            _n(link["unique_machine"]),
            _n(link["total"]),
        )
    table.columns[2].justify = "left"
    table.columns[2].overflow = "fold"  # a long address wraps, it is not cut
    table.columns[1].justify = "left"
    console.print(table)


def _tags(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = _table(
        "tag",
        "recipients",
        "sent",
        "opened",
        "clicked",
        "CTA",
        "leads",
        title="By tag of the recipients (rates of sent messages)",
    )
    for t in rows:
        table.add_row(
            t["tag"],
            _n(t["recipients"]),
            _n(t["sent"]),
            *(f"{_n(t[k])} {_pct(t['rates'][k])}" for k in ("opened", "clicked", "cta")),
            _n(t["leads"]),
        )
    console.print(table)


def print_trends(console: Console, data: dict[str, Any]) -> None:
    """``newsletter report`` (no id): weeks, best and worst, segments, list growth, nurture."""
    period, totals = data["period"], data["totals"]
    console.print(
        f"[bold]Newsletters {esc(period['first_week'])} – {esc(period['last_week'])}[/] ({period['weeks']} weeks, "
        f"{esc(period['timezone'])}): {totals['campaigns']} newsletter(s); {_n(totals['active_subscribers'])} active "
        "subscribers now",
        highlight=False,
    )
    weeks = _table(
        "week",
        "newsletters",
        "delivered",
        "opened",
        "clicked",
        "CTA",
        "leads",
        "booked",
        "new leads",
        "bookings",
        title="Week by week (newsletters by the week they started; leads and bookings from any source)",
    )
    for w in data["weeks"]:
        weeks.add_row(
            w["week"],
            *_group_cells(w),
            _n(w["leads"]["new"]),
            _n(w["leads"]["booked"]),
        )
    console.print(weeks)
    console.print(_funnel_table(totals["funnel"], totals["rates"], title="All newsletters of the period"))
    for title, rows in (
        ("Best by “Connect today” rate", data["best"]),
        ("Worst by “Connect today” rate", data["worst"]),
        ("Every newsletter", data["campaigns"]),
        ("Nurture steps (all time)", data["nurture"]),
    ):
        _campaigns(console, title, rows)
    segments = _table(
        "segment", "newsletters", "delivered", "opened", "clicked", "CTA", "leads", "booked", title="By segment"
    )
    for s in data["by_segment"]:
        segments.add_row(s["segment"], *_group_cells(s))
    console.print(segments)
    growth = _table(
        "week", "new", "unsubscribed", "bounced", "complained", "net", "active at week end", title="The list"
    )
    for w in data["weeks"]:
        g = w["growth"]
        growth.add_row(
            w["week"],
            _n(g["new"]),
            _n(g["unsubscribed"]),
            _n(g["bounced"]),
            _n(g["complained"]),
            f"{g['net']:+,}",
            _n(g["subscribers_at_end"]),
        )
    console.print(growth)


def _campaigns(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    table = _table(
        "#", "week", "subject", "segment", "delivered", "opened", "clicked", "CTA", "leads", "booked", title=title
    )
    for c in rows:
        f, r = c["funnel"], c["rates"]
        table.add_row(
            str(c["campaign_id"]),
            c["week"] or "",
            c["subject"],
            c["segment"],
            _n(f["delivered"]) + ("*" if f["basis"] == "sent" else ""),
            *_after_delivery(f, r),
        )
    if not rows:
        table.add_row("", "", "none", "", "", "", "", "", "", "")
    for k in (1, 2, 3):
        table.columns[k].justify = "left"
    console.print(table)
