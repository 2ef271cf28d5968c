"""``newsletter campaign …``: create, preview, preflight, send, schedule, control and list campaigns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from newsletter.cli.common import EXIT_INCOMPLETE, current_settings, err, out, print_result
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.terminal_text import DataTable, esc
from newsletter.userpaths import (
    check_output_file,
    ensure_output_folder,
    write_output_file,
)

if TYPE_CHECKING:  # the commands import these when they run: `newsletter --help` stays quick
    from rich.progress import Progress
    from sqlalchemy import Engine

    from newsletter.campaigns import SendSummary

app = typer.Typer(help="Create, preview, send and schedule campaigns.", no_args_is_help=True)


@app.command("create")
def campaign_create(
    article: Annotated[str, typer.Option("--article", help="Slug of an imported article.")],
    segment: Annotated[str, typer.Option("--segment", help="Segment name, or 'all'.")],
    subject: Annotated[str | None, typer.Option("--subject", help="Subject line (default: the article title).")] = None,
    preheader: Annotated[str | None, typer.Option("--preheader", help="Inbox preview text.")] = None,
    template: Annotated[str, typer.Option("--template", help="Template in templates/.")] = "newsletter.mjml.j2",
    as_json: JsonOpt = False,
) -> None:
    """Create a draft campaign (renders now, so template errors show now)."""
    from newsletter.campaigns import create_campaign
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        campaign = create_campaign(
            session,
            settings,
            article_slug=article,
            segment=segment,
            subject=subject,
            preheader=preheader,
            template=template,
        )
        html_bytes = len(campaign.html.encode())
        data = {
            "id": campaign.id,
            "subject": campaign.subject,
            "preheader": campaign.preheader,
            "segment": campaign.segment,
            "status": campaign.status,
            "html_bytes": html_bytes,
            "links": len(campaign.links),
        }
    if as_json:
        print_json(data)
    else:
        out.print(
            f"Campaign [bold]{data['id']}[/] created: “{esc(data['subject'])}” → segment {esc(data['segment'])} "
            f"({html_bytes // 1024} KB HTML, {data['links']} tracked links). "
            f"Next: newsletter campaign preview {data['id']}"
        )


@app.command("preview")
def campaign_preview(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the personalised HTML here.")] = None,
    text: Annotated[Path | None, typer.Option("--text", help="Write the text part here.")] = None,
    eml: Annotated[Path | None, typer.Option("--eml", help="Write the whole MIME message (.eml) here.")] = None,
) -> None:
    """Preview the message a sample subscriber would get; prints the text part if no file is given."""
    from newsletter.campaigns import preview
    from newsletter.db import session_scope

    for path, option in ((html, "--html"), (text, "--text"), (eml, "--eml")):
        if path is not None:
            check_output_file(path, option)  # a mistyped folder is said before any work
    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        result = preview(session, settings, campaign_id)
    for path, data, option in (
        (html, result.html.encode(), "--html"),
        (text, result.text.encode(), "--text"),
        (eml, result.eml, "--eml"),
    ):
        if path is not None:
            write_output_file(path, data, option)
            out.print(f"wrote {esc(path)} ({len(data)} bytes)")
    if not (html or text or eml):
        out.print(f"[bold]Subject:[/] {esc(result.subject)}   [dim](personalised for {esc(result.sample_email)})[/]\n")
        out.print(result.text, highlight=False, markup=False)


class _BatchCounts(Protocol):
    """What the progress bar reads of one dispatched batch (delivery's ``DispatchResult``)."""

    sent: int
    failed: int
    suppressed: int
    ambiguous: int


_OnBatch = Callable[[_BatchCounts, int], None]


def _progress_callback(show: bool) -> tuple[Progress | None, _OnBatch | None]:
    if not show:
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)
    task = progress.add_task("send", total=None)

    def update(result: _BatchCounts, total: int) -> None:
        progress.update(task, total=total, completed=result.sent + result.failed + result.suppressed + result.ambiguous)

    return progress, update


ForceOpt = Annotated[
    bool, typer.Option("--force", help="Go ahead although a preflight check fails (recorded on the campaign).")
]


def _gate(engine: Engine, settings: Settings, campaign_id: int, force: bool, refuse: Callable[[Any], None]) -> None:
    """Preflight before anything leaves: a failing check stops the command unless --force.
    ``refuse`` (the room's own check of the campaign and the arguments) runs first: a campaign
    already sent or a time in the past is said at once, not after the preflight, and no --force
    is recorded on a campaign the command then refuses."""
    import getpass

    from newsletter.campaigns import get_campaign
    from newsletter.db import session_scope
    from newsletter.preflight import ensure_preflight_passes

    with session_scope(engine) as session:
        refuse(get_campaign(session, campaign_id))
    with session_scope(engine) as session:
        report = ensure_preflight_passes(session, settings, campaign_id, force=force, operator=getpass.getuser())
    for check in report.failed:
        err.print(
            f"[yellow]preflight {esc(check.name)} failed, overridden with --force:[/] {esc(check.reason)}",
            highlight=False,
        )


@app.command("preflight")
def campaign_preflight(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    screenshots: Annotated[
        Path | None, typer.Option("--screenshots", help="Save preflight-375.png and preflight-600.png here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the exact message a sample subscriber would get: spam score, size, headers, footer, links, phone rendering."""
    from newsletter.preflight import preflight_command

    if screenshots is not None:
        ensure_output_folder(screenshots, "--screenshots")
    settings = current_settings()
    raise typer.Exit(
        preflight_command(
            engine_for(settings), settings, campaign_id, as_json=as_json, screenshots=screenshots, console=out
        )
    )


@app.command("send")
def campaign_send(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")], force: ForceOpt = False, as_json: JsonOpt = False
) -> None:
    """Send now (after preflight): build the ledger, then dispatch batches (outbox unless SENDGRID_API_KEY is set)."""
    from newsletter.campaigns import check_sendable, send_campaign

    settings = current_settings()
    _gate(engine_for(settings), settings, campaign_id, force, check_sendable)
    summary = _with_progress(
        as_json, lambda update: send_campaign(engine_for(settings), settings, campaign_id, on_batch=update)
    )
    _print_summary(summary, as_json, settings)


def _with_progress(as_json: bool, run: Callable[[_OnBatch | None], SendSummary]) -> SendSummary:
    """``run(on_batch)`` with a progress bar on a terminal (none for --json or a pipe)."""
    progress, update = _progress_callback(not as_json and err.is_terminal)
    if progress:
        progress.start()
    try:
        return run(update)
    finally:
        if progress:
            progress.stop()


def _print_summary(summary: SendSummary, as_json: bool, settings: Settings) -> None:
    if as_json:
        print_json(summary.to_dict())
    else:
        where = (
            f" to {esc(settings.outbox_dir)}/campaign-{summary.campaign_id}/"
            if summary.transport == "outbox"
            else " through SendGrid"
        )
        out.print(
            f"Campaign {summary.campaign_id}: {summary.sent} sent{where}, {summary.failed} failed, "
            f"{summary.suppressed} suppressed, {summary.ambiguous} ambiguous."
        )
        if summary.paused_reason:
            err.print(f"[red]paused:[/] {esc(summary.paused_reason)}")
    if summary.paused_reason or summary.failed or summary.ambiguous:
        raise typer.Exit(EXIT_INCOMPLETE)


def _drain_now(campaign_id: int, as_json: bool, settings: Settings) -> None:
    from newsletter.campaigns import drain

    summary = _with_progress(
        as_json, lambda update: drain(engine_for(settings), settings, campaign_id, on_batch=update)
    )
    _print_summary(summary, as_json, settings)


QueueOnly = Annotated[bool, typer.Option("--queue-only", help="Only queue; leave the sending to `newsletter worker`.")]


@app.command("pause")
def campaign_pause(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")]) -> None:
    """Pause: workers stop after the batches in flight; nothing queued goes out until resumed."""
    from newsletter.campaigns import pause

    pause(engine_for(current_settings()), campaign_id)
    out.print(f"Campaign {campaign_id} paused.")


@app.command("resume")
def campaign_resume(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    queue_only: QueueOnly = False,
    as_json: JsonOpt = False,
) -> None:
    """Resume a paused campaign and send what is still queued."""
    from newsletter.campaigns import resume

    settings = current_settings()
    resume(engine_for(settings), campaign_id)
    if queue_only:
        out.print(f"Campaign {campaign_id} resumed; workers will send the rest.")
    else:
        _drain_now(campaign_id, as_json, settings)


@app.command("cancel")
def campaign_cancel(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")]) -> None:
    """Cancel for good: nothing not yet sent will be sent."""
    from newsletter.campaigns import cancel
    from newsletter.scheduling import unschedule_campaign

    settings = current_settings()
    engine = engine_for(settings)
    left = cancel(engine, campaign_id)
    unschedule_campaign(engine, campaign_id)
    out.print(f"Campaign {campaign_id} cancelled; {left} queued recipient(s) will not be sent.")


@app.command("resolve")
def campaign_resolve(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    resend_ambiguous: Annotated[
        bool, typer.Option("--resend-ambiguous", help="Send the ambiguous rows again (some may get it twice).")
    ] = False,
    mark_sent: Annotated[bool, typer.Option("--mark-sent", help="Accept the ambiguous rows as sent.")] = False,
    queue_only: QueueOnly = False,
    as_json: JsonOpt = False,
) -> None:
    """Decide about rows whose outcome is unknown (a worker died, or the answer was lost)."""
    from newsletter.campaigns import resolve_ambiguous

    if resend_ambiguous == mark_sent:
        raise UserError("choose exactly one of --resend-ambiguous or --mark-sent", where="campaign resolve")
    settings = current_settings()
    moved = resolve_ambiguous(engine_for(settings), campaign_id, resend=resend_ambiguous)
    if mark_sent or queue_only or not moved:
        verb = "re-queued" if resend_ambiguous else "marked sent"
        print_result(
            as_json,
            {"campaign_id": campaign_id, "moved": moved, "action": verb},
            f"Campaign {campaign_id}: {moved} ambiguous row(s) {verb}.",
        )
        return
    _drain_now(campaign_id, as_json, settings)


@app.command("retry-failed")
def campaign_retry_failed(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    queue_only: QueueOnly = False,
    as_json: JsonOpt = False,
) -> None:
    """Send again to the failed recipients only."""
    from newsletter.campaigns import retry_failed

    settings = current_settings()
    moved = retry_failed(engine_for(settings), campaign_id)
    if queue_only or not moved:
        out.print(f"Campaign {campaign_id}: {moved} failed row(s) queued again.")
        return
    _drain_now(campaign_id, as_json, settings)


@app.command("schedule")
def campaign_schedule(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    at: Annotated[str, typer.Option("--at", help="ISO 8601 time with offset, e.g. 2026-12-01T09:00-08:00.")],
    tz: Annotated[str | None, typer.Option("--tz", help="IANA zone for a time given without offset.")] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Schedule a send (after preflight); `newsletter scheduler` (or `python scheduler.py`) fires it."""
    from newsletter.campaigns import check_schedulable, parse_send_time
    from newsletter.scheduling import schedule_campaign

    settings = current_settings()
    when, zone = parse_send_time(at, tz)
    engine = engine_for(settings)
    _gate(engine, settings, campaign_id, force, lambda campaign: check_schedulable(campaign, when))
    schedule_campaign(engine, settings, campaign_id, when, zone)
    data = {"campaign_id": campaign_id, "scheduled_at": when.isoformat(), "timezone": zone, "status": "scheduled"}
    if as_json:
        print_json(data)
    else:
        out.print(
            f"Campaign {campaign_id} scheduled for {when.isoformat()} (UTC; given in {zone}). "
            "The scheduler daemon must be running: newsletter scheduler"
        )


@app.command("status")
def campaign_status_cmd(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")], as_json: JsonOpt = False
) -> None:
    """Where a campaign stands: queued / in flight / sent / failed / ambiguous / suppressed; exit 3 when it needs a decision."""
    from newsletter.campaigns import NEEDS_DECISION, campaign_status
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        data = campaign_status(session, campaign_id)
    if as_json:
        print_json(data)
    else:
        _print_status(data)
    if data["status"] == NEEDS_DECISION:  # done sending, but not done: a person must decide
        raise typer.Exit(EXIT_INCOMPLETE)


def _print_status(data: dict[str, Any]) -> None:
    """The status line, the ledger's counts, and what to do next when something waits on a person."""
    from newsletter.campaigns import NEEDS_DECISION

    campaign_id, decide = data["campaign_id"], data["status"] == NEEDS_DECISION
    state = (
        f"[bold red]needs a decision[/] ({esc(data['lifecycle_status'])}; {data['ambiguous']} recipient(s) ambiguous)"
        if decide
        else f"is [bold]{esc(data['status'])}[/]"
    )
    when = f" for {esc(data['scheduled_at'])}" if data["scheduled_at"] else ""
    scheduled = data["status"] == "scheduled"  # "is scheduled for …", not "is scheduled, scheduled for …"
    out.print(
        f"Campaign {campaign_id} “{esc(data['subject'])}” {state}"
        + (when if scheduled else "")
        + (f" ({esc(data['status_reason'])})" if data["status_reason"] else "")
        + (f", scheduled{when}" if when and not scheduled else "")
    )
    table = DataTable("queued", "in flight", "sent", "failed", "ambiguous", "suppressed", "total")
    table.add_row(
        *(str(data[k]) for k in ("queued", "in_flight", "sent", "failed", "ambiguous", "suppressed", "recipients"))
    )
    out.print(table)
    for lease in data["in_flight_leases"]:
        out.print(
            f"{lease['rows']} recipient(s) in flight with worker {esc(lease['worker'] or '?')}, whose lease runs "
            f"until {esc(lease['lease_until'])}: if it is still sending, its answers will be recorded; if it "
            "died, they become ambiguous then.",
            highlight=False,
        )
    if decide:
        reasons = "; ".join(f"{n}: {esc(reason)}" for reason, n in data["ambiguous_reasons"].items())
        out.print(f"Ambiguous: SendGrid may or may not have these ({reasons}). Decide:", highlight=False)
        out.print(
            f"  newsletter campaign resolve {campaign_id} --mark-sent          accept them as sent", highlight=False
        )
        out.print(
            f"  newsletter campaign resolve {campaign_id} --resend-ambiguous   send them again (some may get it twice)",
            highlight=False,
        )
    elif data["in_flight_leases"]:
        out.print(
            f"After that, if rows are ambiguous, decide: newsletter campaign resolve {campaign_id} "
            "--mark-sent | --resend-ambiguous",
            highlight=False,
        )


@app.command("rerender")
def campaign_rerender(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id (a draft or scheduled campaign).")],
    as_json: JsonOpt = False,
) -> None:
    """Render a draft or scheduled campaign again with today's settings (public URL, sender, footer, templates)."""
    from newsletter.campaigns import rerender_campaign
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        result = rerender_campaign(session, settings, campaign_id)
    if as_json:
        print_json(result.to_dict())
        return
    was = (
        f" (was {esc(result.rendered_for_before)})"
        if result.rendered_for_before and result.rendered_for_before != result.public_url
        else ""
    )
    out.print(
        f"Campaign {result.campaign_id} re-rendered for {esc(result.public_url)}{was}: {result.html_bytes // 1024} "
        f"KB HTML, {result.links} tracked links; subject, preheader, segment and schedule kept "
        f"({esc(result.status)}). Next: newsletter campaign preflight {result.campaign_id}",
        highlight=False,
    )


def _cell(value: object) -> str | None:
    """One value of a ``list_campaigns`` row (typed ``object`` there; each is text or None) as a table cell."""
    return None if value is None else str(value)


@app.command("list")
def campaign_list(
    include_nurture: Annotated[
        bool, typer.Option("--all", help="Also list the nurture sequences' step campaigns.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List newsletters, newest first (nurture steps, which the scheduler sends, with --all)."""
    from newsletter.campaigns import NEEDS_DECISION, list_campaigns
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        rows = list_campaigns(session, include_nurture=include_nurture)
    if as_json:
        print_json(rows)
        return
    table = DataTable(
        "id", *(("kind",) if include_nurture else ()), "status", "subject", "segment", "scheduled (UTC)", copy=("id",)
    )
    for r in rows:
        status = "needs a decision" if r["status"] == NEEDS_DECISION else r["status"]
        table.add_row(
            str(r["id"]),
            *((_cell(r["kind"]),) if include_nurture else ()),
            _cell(status),
            _cell(r["subject"]),
            _cell(r["segment"]),
            _cell(r["scheduled_at"]) or "",
        )
    out.print(table)
