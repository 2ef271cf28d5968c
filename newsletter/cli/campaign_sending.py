"""``newsletter campaign preflight / send / pause / resume / cancel / resolve / retry-failed /
schedule``: the commands that let a campaign leave, and steer it while it does.

The functions are plain here; :mod:`newsletter.cli.campaigns` registers them on its ``app``
between ``preview`` and ``status`` (:data:`COMMANDS` in that order), because the order of
registration is the order ``newsletter campaign --help`` lists them in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from newsletter.cli.common import EXIT_INCOMPLETE, current_settings, err, out, print_result
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.terminal_text import esc
from newsletter.userpaths import ensure_output_folder

if TYPE_CHECKING:  # the commands import these when they run: `newsletter --help` stays quick
    from rich.progress import Progress
    from sqlalchemy import Engine

    from newsletter.campaigns import SendSummary


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


def campaign_pause(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")]) -> None:
    """Pause: workers stop after the batches in flight; nothing queued goes out until resumed."""
    from newsletter.campaigns import pause

    pause(engine_for(current_settings()), campaign_id)
    out.print(f"Campaign {campaign_id} paused.")


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


def campaign_cancel(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")]) -> None:
    """Cancel for good: nothing not yet sent will be sent."""
    from newsletter.campaigns import cancel
    from newsletter.scheduling import unschedule_campaign

    settings = current_settings()
    engine = engine_for(settings)
    left = cancel(engine, campaign_id)
    unschedule_campaign(engine, campaign_id)
    out.print(f"Campaign {campaign_id} cancelled; {left} queued recipient(s) will not be sent.")


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


#: (name, command), in the order the help lists them.
COMMANDS = (
    ("preflight", campaign_preflight),
    ("send", campaign_send),
    ("pause", campaign_pause),
    ("resume", campaign_resume),
    ("cancel", campaign_cancel),
    ("resolve", campaign_resolve),
    ("retry-failed", campaign_retry_failed),
    ("schedule", campaign_schedule),
)
