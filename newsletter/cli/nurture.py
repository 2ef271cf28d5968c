"""``newsletter nurture …``: simulate, list, status, enroll, remove, tick. Thin: parse, call the room, print.

Mounted by :func:`newsletter.cli.build_app`; a :class:`UserError` raised here is printed by the
main command as one line, exit 1.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import typer

from newsletter.cli.common import EXIT_INCOMPLETE, current_settings, err, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.errors import UserError
from newsletter.terminal_text import DataTable
from newsletter.terminal_text import esc as escape

app = typer.Typer(
    help="Nurture sequences (audiences/nurture/*.yaml): simulate, inspect, enroll or remove a reader, run a tick.",
    no_args_is_help=True,
)

SequenceArg = Annotated[str, typer.Argument(help="The sequence: its YAML file's name without .yaml.")]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _start(text: str | None, tz) -> datetime:  # type: ignore[no-untyped-def]
    if not text:
        return datetime.now(tz).replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{text!r} is not an ISO 8601 date-time (e.g. 2026-03-07T14:30 or 2026-03-07T14:30-05:00)", where="--start"
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


@app.command("simulate")
def simulate_cmd(
    sequence: SequenceArg,
    days: Annotated[int, typer.Option("--days", help="How many days to follow the lead.")] = 30,
    events: Annotated[
        str | None, typer.Option("--events", help='What the reader does, e.g. "day2:open,day5:click,day9:booked".')
    ] = None,
    tz_name: Annotated[
        str | None, typer.Option("--timezone", help="The reader's IANA time zone (default NEWSLETTER_TIMEZONE).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="When the lead enters, ISO 8601 (default now); without an offset, in --timezone."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the timeline a lead would live through, with local send times. Sends nothing, stores nothing."""
    from newsletter.nurture import load_sequence, parse_events, simulate
    from newsletter.settings_types import zone_named

    settings = current_settings()
    seq = load_sequence(sequence, settings.audiences_dir, settings.templates_dir)
    tz = zone_named(tz_name, "--timezone") if tz_name else settings.zone
    timeline = simulate(
        seq,
        start=_start(start, tz),
        days=days,
        events=parse_events(events),
        tz=tz,
        quiet=settings.quiet,
        lead_points=settings.point_values,
        half_life_days=settings.lead_half_life_days,
    )
    if as_json:
        print_json(timeline.to_dict())
        return
    _print_timeline(seq, timeline, events)


def _print_timeline(seq, timeline, events: str | None) -> None:  # type: ignore[no-untyped-def]
    first = timeline.entries[0]
    out.print(f"[bold]{escape(seq.name)}[/]: {escape(seq.description)}", highlight=False)
    out.print(
        f"One lead entering {escape(first.local)} ({escape(timeline.timezone)}), followed for {timeline.days} days; "
        f"quiet hours {timeline.quiet_hours}; events: {escape(events or 'none')}",
        highlight=False,
    )
    table = DataTable("day", "local time", "what", "step", "details")
    for entry in timeline.entries:
        detail = entry.subject.replace("%%first_name%%", "(first name)") if entry.subject else ""
        detail = "; ".join(part for part in (detail, entry.note) if part)
        table.add_row(str(entry.day), entry.local, entry.kind, str(entry.step or ""), detail)
    out.print(table)
    sent = len(timeline.sent)
    if timeline.status == "active":
        tail = (
            f"still active; step {timeline.next_step} comes up {timeline.next_due_local}"
            if timeline.next_due_local
            else "still active"
        )
    else:
        tail = escape(timeline.status) + (f" ({escape(timeline.exit_reason)})" if timeline.exit_reason else "")
    out.print(f"{sent} email(s) would be sent; {tail}. Simulation only: nothing was sent or stored.", highlight=False)


@app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Every sequence, with how many readers are in it, finished it, or left it."""
    from newsletter.nurture import list_summaries

    settings = current_settings()
    rows = list_summaries(engine_for(settings), settings)
    if as_json:
        print_json(rows)
        return
    table = DataTable("sequence", "steps", "active", "completed", "exited", "description", copy=("sequence",))
    for r in rows:
        table.add_row(
            r["name"],
            str(r["steps"] or "?"),
            str(r["active"]),
            str(r["completed"]),
            str(r["exited"]),
            r["error"] and f"[broken] {r['error']}" or r["description"],
        )
    out.print(table)


@app.command("status")
def status_cmd(sequence: SequenceArg, as_json: JsonOpt = False) -> None:
    """One sequence: readers per step, sends, human opens and clicks, exits by reason."""
    from newsletter.nurture import sequence_status

    settings = current_settings()
    data = sequence_status(engine_for(settings), settings, sequence)
    if as_json:
        print_json(data)
        return
    out.print(
        f"[bold]{escape(data['name'])}[/]: {data['active']} active, {data['completed']} completed, "
        f"{data['exited']} exited"
        + (f"; next step due {escape(data['next_due_at'])} (UTC)" if data["next_due_at"] else ""),
        highlight=False,
    )
    table = DataTable(
        "step", "name", "delay", "condition", "campaign", "waiting here", "sent", "queued", "opened", "clicked"
    )
    for s in data["steps"]:
        condition = f"{s['when']} (else {s['if_not']})" if s["when"] else ""
        table.add_row(
            str(s["step"]),
            s["name"],
            s["delay"],
            condition,
            str(s["campaign_id"] or "—"),
            str(s["waiting_here"]),
            str(s["sent"]),
            str(s["queued"]),
            str(s["human_opens"]),
            str(s["human_clicks"]),
        )
    out.print(table)
    if data["exits"]:
        out.print("exits: " + ", ".join(f"{escape(k)} {v}" for k, v in sorted(data["exits"].items())), highlight=False)


@app.command("enroll")
def enroll_cmd(
    email: Annotated[str, typer.Argument(help="The subscriber's email address.")],
    sequence: SequenceArg,
    as_json: JsonOpt = False,
) -> None:
    """Put a reader into a sequence by hand (after a call, say); its first step goes out when due,
    in their daytime. A reader who is already in it, or left it, is not enrolled again."""
    from newsletter.nurture import enroll

    settings = current_settings()
    enrollment_id, created = enroll(engine_for(settings), settings, sequence, email, _now())
    if as_json:
        print_json({"email": email, "sequence": sequence, "enrollment_id": enrollment_id, "enrolled": created})
    elif created:
        out.print(
            f"Enrolled {escape(email)} in {escape(sequence)}; its first step goes out when due, in their daytime.",
            highlight=False,
        )
    else:
        out.print(
            f"{escape(email)} was already enrolled in {escape(sequence)} (or left it); nothing changed.",
            highlight=False,
        )


@app.command("remove")
def remove_cmd(
    email: Annotated[str, typer.Argument(help="The subscriber's email address.")],
    sequence: SequenceArg,
    as_json: JsonOpt = False,
) -> None:
    """Take a reader out of a sequence now; nothing more of it is sent to them."""
    from newsletter.nurture import remove

    settings = current_settings()
    changed = remove(engine_for(settings), sequence, email, _now())
    if as_json:
        print_json({"email": email, "sequence": sequence, "removed": changed})
    elif changed:
        out.print(
            f"Removed {escape(email)} from {escape(sequence)}; nothing more of it will be sent to them.",
            highlight=False,
        )
    else:
        out.print(f"{escape(email)} had already left or finished {escape(sequence)}.", highlight=False)


@app.command("tick")
def tick_cmd(as_json: JsonOpt = False) -> None:
    """Run one nurture tick now (what the scheduler does every NEWSLETTER_NURTURE_TICK_SECONDS)."""
    from newsletter.nurture import nurture_tick

    settings = current_settings()
    result = nurture_tick(engine_for(settings), settings, _now())
    if as_json:
        print_json(result.to_dict())
    else:
        exited = sum(result.exited.values())
        out.print(
            f"Nurture tick: {result.enrolled} enrolled, {exited} exited, {result.queued} step(s) queued, "
            f"{result.skipped} skipped, {result.waiting} waiting, {result.deferred} deferred to daytime; "
            f"{result.sent} sent ({settings.transport_name}), {result.failed} failed, "
            f"{result.ambiguous} ambiguous.",
            highlight=False,
        )
        for error in result.errors:
            err.print(f"[red]error:[/] {escape(error)}", highlight=False)
    if result.errors or result.failed or result.ambiguous:
        raise typer.Exit(EXIT_INCOMPLETE)
