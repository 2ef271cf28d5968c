"""The ``newsletter`` command. Thin: every command parses, calls a room's face, prints.

Exit codes: 0 done; 1 a user mistake or a refused action (one line on stderr, no traceback);
2 a usage error (unknown option, missing argument); 3 the command ran but did not finish its
job (a send paused by the provider, or recipients failed or left ambiguous).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from newsletter.commandline import DataTable, JsonOpt, engine_for, esc, print_json, visible
from newsletter.config import Settings, load_settings
from newsletter.errors import UserError
from newsletter.nurture.commands import app as nurture_app
from newsletter.leads.commands import app as leads_app
from newsletter.userpaths import check_output_file, ensure_output_folder, write_output_file

app = typer.Typer(help="Articles to responsive email campaigns: import, segment, send exactly once, track honestly.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
article_app = typer.Typer(help="Import and list articles.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Import subscribers.", no_args_is_help=True)
segment_app = typer.Typer(help="Inspect segments (audiences/*.yaml).", no_args_is_help=True)
campaign_app = typer.Typer(help="Create, preview, send and schedule campaigns.", no_args_is_help=True)
events_app = typer.Typer(help="Stored engagement events.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema: its revision, and the upgrade.", no_args_is_help=True)
app.add_typer(article_app, name="article")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(segment_app, name="segment")
app.add_typer(campaign_app, name="campaign")
app.add_typer(events_app, name="events")
app.add_typer(db_app, name="db")
app.add_typer(nurture_app, name="nurture")
app.add_typer(leads_app, name="leads")

out = Console(emoji=False)  # a value like :warning: in data is printed as written
err = Console(stderr=True, emoji=False)


EXIT_USER_ERROR = 1
EXIT_INCOMPLETE = 3


def _settings() -> Settings:
    return load_settings()




# --- store -----------------------------------------------------------------------------------

@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Create the store or upgrade it to the newest schema (safe to run again; the only command that upgrades)."""
    from newsletter.db import make_engine, upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    before, after = upgrade(engine)
    url = engine.url.render_as_string(hide_password=True)
    if as_json:
        print_json({"database": url, "revision_before": before, "revision": after})
    elif before == after:
        out.print(f"Store {esc(url)} is up to date (revision {after}).")
    else:
        out.print(f"Store {esc(url)} migrated from {before or 'empty'} to revision {after}.")


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Upgrade the store to the newest schema: the same as `newsletter init`."""
    init(as_json=as_json)


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show the store's schema revision and the one this program needs; changes nothing."""
    from newsletter.db import make_engine, schema_status

    status = schema_status(make_engine(_settings().database_url))
    if as_json:
        print_json({"database": status.database, "revision": status.revision, "head": status.head,
                    "state": status.state})
        return
    says = {"current": "up to date", "empty": "empty (created on first use)",
            "behind": "out of date: run `newsletter init`", "newer": "made by a newer newsletter: upgrade the program",
            "unversioned": "has tables but no newsletter revision"}[status.state]
    out.print(f"Store {esc(status.database)}: revision {esc(status.revision or 'none')}, "
              f"this program's {status.head}: {says}.", highlight=False, soft_wrap=True)


# --- articles --------------------------------------------------------------------------------

@article_app.command("import")
def article_import(path: Annotated[Path, typer.Argument(help="A .txt (seed format), .md, .html or RSS file.")],
                   as_json: JsonOpt = False) -> None:
    """Import an article; re-importing the same file updates it in place."""
    from newsletter.campaigns import import_article
    from newsletter.db import session_scope

    settings = _settings()
    with session_scope(engine_for(settings)) as session:
        imported = import_article(session, path)
        data = {"slug": imported.row.slug, "id": imported.row.id, "title": imported.article.title,
                "outcome": imported.outcome, "words": imported.article.word_count,
                "sections": len(imported.article.sections)}
    if as_json:
        print_json(data)
    else:
        out.print(f"[bold]{esc(data['title'])}[/] → slug [cyan]{esc(data['slug'])}[/] ({data['outcome']}, {data['words']} words)")


@article_app.command("list")
def article_list(as_json: JsonOpt = False) -> None:
    """List stored articles."""
    from sqlalchemy import select

    from newsletter.db import models, session_scope

    with session_scope(engine_for(_settings())) as session:
        rows = [{"id": a.id, "slug": a.slug, "title": a.title, "published": a.published_on}
                for a in session.scalars(select(models.Article).order_by(models.Article.id))]
    if as_json:
        print_json(rows)
        return
    table = DataTable("id", "slug", "title", "published", copy=("id", "slug"))
    for r in rows:
        table.add_row(str(r["id"]), r["slug"], r["title"], str(r["published"] or ""))
    out.print(table)


# --- subscribers and segments ----------------------------------------------------------------

@subscribers_app.command("import")
def subscribers_import(
    csv_path: Annotated[Path, typer.Argument(help="The project's CSV format or a Mailchimp export.")],
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="Add this tag to every imported subscriber (repeatable).")] = None,
    rejects: Annotated[Optional[Path], typer.Option("--rejects", help="Write the rejected rows (line,email,reason) here; default: NAME.rejected.csv beside the CSV.")] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", help="The file's encoding, e.g. cp1252 or utf-16 (default: detected).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import subscribers: valid rows go in, every rejected row is reported with its line.

    Exit code 0 when every row went in, 3 when some rows were rejected, 1 when all were."""
    from newsletter.audiences import import_subscribers, rejects_path_for

    settings = _settings()
    report = import_subscribers(engine_for(settings), csv_path, tags=tag or (), progress=None if not as_json else False,
                                rejects=rejects or rejects_path_for(csv_path), encoding=encoding)
    if as_json:
        print_json(report.to_dict())
    else:
        for notice in report.notices:
            err.print(f"note: {esc(notice)}", highlight=False)
        out.print(f"{report.created} created, {report.updated} updated, {report.duplicates_merged} duplicates merged, "
                  f"{report.rejected_count} rejected (of {report.total_rows} rows).")
        for rejection in report.rejected[:50]:
            err.print(f"  {esc(csv_path)}:{rejection.line}: {esc(rejection.reason)}", highlight=False)
        if report.rejects_file:
            more = f"… and {report.rejected_count - 50} more; all" if report.rejected_count > 50 else "All"
            err.print(f"  {more} rejected rows are in {esc(report.rejects_file)}", highlight=False)
    if report.all_rejected:
        _print_error(UserError(f"every row was rejected ({report.rejects_file or 'see above'})", report.path))
        raise typer.Exit(EXIT_USER_ERROR)
    if report.rejected_count:
        raise typer.Exit(EXIT_INCOMPLETE)


@segment_app.command("count")
def segment_count(name: Annotated[str, typer.Argument(help="Segment name (file name without .yaml), or 'all'.")],
                  as_json: JsonOpt = False) -> None:
    """Count the subscribers a segment selects (active, not suppressed)."""
    from newsletter.audiences import count_segment, load_segment
    from newsletter.db import session_scope

    settings = _settings()
    segment = load_segment(name, settings.audiences_dir)
    with session_scope(engine_for(settings)) as session:
        count = count_segment(session, segment)
    if as_json:
        print_json({"segment": name, "count": count})
    else:
        out.print(f"{esc(name)}: {count} subscriber(s)")


@segment_app.command("list")
def segment_list(as_json: JsonOpt = False) -> None:
    """List the segments defined in the audiences folder; a broken file is named, the others
    still listed, and the exit code is 3 (the listing is not complete)."""
    from newsletter.audiences import scan_segments

    found, errors = scan_segments(_settings().audiences_dir)
    segments = [{"name": s.name, "description": s.description} for s in found]
    if as_json:
        print_json({"segments": segments, "errors": [{"where": e.where, "message": e.message} for e in errors]})
    else:
        for s in segments:
            out.print(f"[cyan]{esc(s['name'])}[/]  {esc(s['description'] or '')}")
        for error in errors:
            _print_error(error)
    if errors:
        raise typer.Exit(EXIT_INCOMPLETE)


# --- campaigns -------------------------------------------------------------------------------

@campaign_app.command("create")
def campaign_create(
    article: Annotated[str, typer.Option("--article", help="Slug of an imported article.")],
    segment: Annotated[str, typer.Option("--segment", help="Segment name, or 'all'.")],
    subject: Annotated[Optional[str], typer.Option("--subject", help="Subject line (default: the article title).")] = None,
    preheader: Annotated[Optional[str], typer.Option("--preheader", help="Inbox preview text.")] = None,
    template: Annotated[str, typer.Option("--template", help="Template in templates/.")] = "newsletter.mjml.j2",
    as_json: JsonOpt = False,
) -> None:
    """Create a draft campaign (renders now, so template errors show now)."""
    from newsletter.campaigns import create_campaign
    from newsletter.db import session_scope

    settings = _settings()
    with session_scope(engine_for(settings)) as session:
        campaign = create_campaign(session, settings, article_slug=article, segment=segment, subject=subject,
                                   preheader=preheader, template=template)
        data = {"id": campaign.id, "subject": campaign.subject, "preheader": campaign.preheader,
                "segment": campaign.segment, "status": campaign.status, "html_bytes": len(campaign.html.encode()),
                "links": len(campaign.links)}
    if as_json:
        print_json(data)
    else:
        out.print(f"Campaign [bold]{data['id']}[/] created: “{esc(data['subject'])}” → segment {esc(data['segment'])} "
                  f"({data['html_bytes'] // 1024} KB HTML, {data['links']} tracked links). "
                  f"Next: newsletter campaign preview {data['id']}")


@campaign_app.command("preview")
def campaign_preview(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    html: Annotated[Optional[Path], typer.Option("--html", help="Write the personalised HTML here.")] = None,
    text: Annotated[Optional[Path], typer.Option("--text", help="Write the text part here.")] = None,
    eml: Annotated[Optional[Path], typer.Option("--eml", help="Write the whole MIME message (.eml) here.")] = None,
) -> None:
    """Preview the message a sample subscriber would get; prints the text part if no file is given."""
    from newsletter.campaigns import preview
    from newsletter.db import session_scope

    for path, option in ((html, "--html"), (text, "--text"), (eml, "--eml")):
        if path is not None:
            check_output_file(path, option)  # a mistyped folder is said before any work
    settings = _settings()
    with session_scope(engine_for(settings)) as session:
        result = preview(session, settings, campaign_id)
    for path, data, option in ((html, result.html.encode(), "--html"), (text, result.text.encode(), "--text"),
                               (eml, result.eml, "--eml")):
        if path is not None:
            write_output_file(path, data, option)
            out.print(f"wrote {esc(path)} ({len(data)} bytes)")
    if not (html or text or eml):
        out.print(f"[bold]Subject:[/] {esc(result.subject)}   [dim](personalised for {esc(result.sample_email)})[/]\n")
        out.print(result.text, highlight=False, markup=False)


def _progress_callback(show: bool):  # type: ignore[no-untyped-def]
    if not show:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)
    task = progress.add_task("send", total=None)

    def update(result, total):  # type: ignore[no-untyped-def]
        progress.update(task, total=total, completed=result.sent + result.failed + result.suppressed + result.ambiguous)

    return progress, update


ForceOpt = Annotated[bool, typer.Option("--force", help="Go ahead although a preflight check fails (recorded on the campaign).")]


def _gate(engine, settings: Settings, campaign_id: int, force: bool,  # type: ignore[no-untyped-def]
          refuse: Callable[[Any], None]) -> None:
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
        err.print(f"[yellow]preflight {esc(check.name)} failed, overridden with --force:[/] {esc(check.reason)}", highlight=False)


@campaign_app.command("preflight")
def campaign_preflight(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    screenshots: Annotated[Optional[Path], typer.Option("--screenshots", help="Save preflight-375.png and preflight-600.png here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the exact message a sample subscriber would get: spam score, size, headers, footer, links, phone rendering."""
    from newsletter.preflight import preflight_command

    if screenshots is not None:
        ensure_output_folder(screenshots, "--screenshots")
    settings = _settings()
    raise typer.Exit(preflight_command(engine_for(settings), settings, campaign_id, as_json=as_json,
                                       screenshots=screenshots, console=out))


@campaign_app.command("send")
def campaign_send(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")], force: ForceOpt = False,
                  as_json: JsonOpt = False) -> None:
    """Send now (after preflight): build the ledger, then dispatch batches (outbox unless SENDGRID_API_KEY is set)."""
    from newsletter.campaigns import send_campaign
    from newsletter.campaigns.send import check_sendable

    settings = _settings()
    _gate(engine_for(settings), settings, campaign_id, force, check_sendable)
    progress, update = _progress_callback(not as_json and err.is_terminal)
    if progress:
        progress.start()
    try:
        summary = send_campaign(engine_for(settings), settings, campaign_id, on_batch=update)
    finally:
        if progress:
            progress.stop()
    _print_summary(summary, as_json, settings)


def _print_summary(summary, as_json: bool, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print_json(summary.to_dict())
    else:
        where = f" to {esc(settings.outbox_dir)}/campaign-{summary.campaign_id}/" if summary.transport == "outbox" else " through SendGrid"
        out.print(f"Campaign {summary.campaign_id}: {summary.sent} sent{where}, {summary.failed} failed, "
                  f"{summary.suppressed} suppressed, {summary.ambiguous} ambiguous.")
        if summary.paused_reason:
            err.print(f"[red]paused:[/] {esc(summary.paused_reason)}")
    if summary.paused_reason or summary.failed or summary.ambiguous:
        raise typer.Exit(EXIT_INCOMPLETE)


def _drain_now(campaign_id: int, as_json: bool, settings: Settings) -> None:
    from newsletter.campaigns import drain

    progress, update = _progress_callback(not as_json and err.is_terminal)
    if progress:
        progress.start()
    try:
        summary = drain(engine_for(settings), settings, campaign_id, on_batch=update)
    finally:
        if progress:
            progress.stop()
    _print_summary(summary, as_json, settings)


QueueOnly = Annotated[bool, typer.Option("--queue-only", help="Only queue; leave the sending to `newsletter worker`.")]


@campaign_app.command("pause")
def campaign_pause(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")]) -> None:
    """Pause: workers stop after the batches in flight; nothing queued goes out until resumed."""
    from newsletter.campaigns import pause

    pause(engine_for(_settings()), campaign_id)
    out.print(f"Campaign {campaign_id} paused.")


@campaign_app.command("resume")
def campaign_resume(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
                    queue_only: QueueOnly = False, as_json: JsonOpt = False) -> None:
    """Resume a paused campaign and send what is still queued."""
    from newsletter.campaigns import resume

    settings = _settings()
    resume(engine_for(settings), campaign_id)
    if queue_only:
        out.print(f"Campaign {campaign_id} resumed; workers will send the rest.")
    else:
        _drain_now(campaign_id, as_json, settings)


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")]) -> None:
    """Cancel for good: nothing not yet sent will be sent."""
    from newsletter.campaigns import cancel
    from newsletter.scheduling import unschedule_campaign

    settings = _settings()
    engine = engine_for(settings)
    left = cancel(engine, campaign_id)
    unschedule_campaign(engine, campaign_id)
    out.print(f"Campaign {campaign_id} cancelled; {left} queued recipient(s) will not be sent.")


@campaign_app.command("resolve")
def campaign_resolve(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    resend_ambiguous: Annotated[bool, typer.Option("--resend-ambiguous", help="Send the ambiguous rows again (some may get it twice).")] = False,
    mark_sent: Annotated[bool, typer.Option("--mark-sent", help="Accept the ambiguous rows as sent.")] = False,
    queue_only: QueueOnly = False,
    as_json: JsonOpt = False,
) -> None:
    """Decide about rows whose outcome is unknown (a worker died, or the answer was lost)."""
    from newsletter.campaigns import resolve_ambiguous

    if resend_ambiguous == mark_sent:
        raise UserError("choose exactly one of --resend-ambiguous or --mark-sent", where="campaign resolve")
    settings = _settings()
    moved = resolve_ambiguous(engine_for(settings), campaign_id, resend=resend_ambiguous)
    if mark_sent or queue_only or not moved:
        verb = "re-queued" if resend_ambiguous else "marked sent"
        if as_json:
            print_json({"campaign_id": campaign_id, "moved": moved, "action": verb})
        else:
            out.print(f"Campaign {campaign_id}: {moved} ambiguous row(s) {verb}.")
        return
    _drain_now(campaign_id, as_json, settings)


@campaign_app.command("retry-failed")
def campaign_retry_failed(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
                          queue_only: QueueOnly = False, as_json: JsonOpt = False) -> None:
    """Send again to the failed recipients only."""
    from newsletter.campaigns import retry_failed

    settings = _settings()
    moved = retry_failed(engine_for(settings), campaign_id)
    if queue_only or not moved:
        out.print(f"Campaign {campaign_id}: {moved} failed row(s) queued again.")
        return
    _drain_now(campaign_id, as_json, settings)


@campaign_app.command("schedule")
def campaign_schedule(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    at: Annotated[str, typer.Option("--at", help="ISO 8601 time with offset, e.g. 2026-12-01T09:00-08:00.")],
    tz: Annotated[Optional[str], typer.Option("--tz", help="IANA zone for a time given without offset.")] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Schedule a send (after preflight); `newsletter scheduler` (or `python scheduler.py`) fires it."""
    from newsletter.campaigns import parse_send_time
    from newsletter.campaigns.status import check_schedulable
    from newsletter.scheduling import schedule_campaign

    settings = _settings()
    when, zone = parse_send_time(at, tz)
    engine = engine_for(settings)
    _gate(engine, settings, campaign_id, force, lambda campaign: check_schedulable(campaign, when))
    schedule_campaign(engine, settings, campaign_id, when, zone)
    data = {"campaign_id": campaign_id, "scheduled_at": when.isoformat(), "timezone": zone, "status": "scheduled"}
    if as_json:
        print_json(data)
    else:
        out.print(f"Campaign {campaign_id} scheduled for {when.isoformat()} (UTC; given in {zone}). "
                  "The scheduler daemon must be running: newsletter scheduler")


@campaign_app.command("status")
def campaign_status_cmd(campaign_id: Annotated[int, typer.Argument(help="Campaign id.")], as_json: JsonOpt = False) -> None:
    """Where a campaign stands: queued / in flight / sent / failed / ambiguous / suppressed; exit 3 when it needs a decision."""
    from newsletter.campaigns import campaign_status
    from newsletter.campaigns.status import NEEDS_DECISION
    from newsletter.db import session_scope

    with session_scope(engine_for(_settings())) as session:
        data = campaign_status(session, campaign_id)
    if as_json:
        print_json(data)
    else:
        _print_status(data)
    if data["status"] == NEEDS_DECISION:  # done sending, but not done: a person must decide
        raise typer.Exit(EXIT_INCOMPLETE)


def _print_status(data: dict) -> None:  # type: ignore[type-arg]
    """The status line, the ledger's counts, and what to do next when something waits on a person."""
    from newsletter.campaigns.status import NEEDS_DECISION

    campaign_id, decide = data["campaign_id"], data["status"] == NEEDS_DECISION
    state = (f"[bold red]needs a decision[/] ({esc(data['lifecycle_status'])}; {data['ambiguous']} recipient(s) "
             "ambiguous)" if decide else f"is [bold]{esc(data['status'])}[/]")
    when = f" for {esc(data['scheduled_at'])}" if data["scheduled_at"] else ""
    scheduled = data["status"] == "scheduled"  # "is scheduled for …", not "is scheduled, scheduled for …"
    out.print(f"Campaign {campaign_id} “{esc(data['subject'])}” {state}" + (when if scheduled else "")
              + (f" ({esc(data['status_reason'])})" if data["status_reason"] else "")
              + (f", scheduled{when}" if when and not scheduled else ""))
    table = DataTable("queued", "in flight", "sent", "failed", "ambiguous", "suppressed", "total")
    table.add_row(*(str(data[k]) for k in ("queued", "in_flight", "sent", "failed", "ambiguous", "suppressed", "recipients")))
    out.print(table)
    for lease in data["in_flight_leases"]:
        out.print(f"{lease['rows']} recipient(s) in flight with worker {esc(lease['worker'] or '?')}, whose lease runs "
                  f"until {esc(lease['lease_until'])}: if it is still sending, its answers will be recorded; if it "
                  "died, they become ambiguous then.", highlight=False)
    if decide:
        reasons = "; ".join(f"{n}: {esc(reason)}" for reason, n in data["ambiguous_reasons"].items())
        out.print(f"Ambiguous: SendGrid may or may not have these ({reasons}). Decide:", highlight=False)
        out.print(f"  newsletter campaign resolve {campaign_id} --mark-sent          accept them as sent", highlight=False)
        out.print(f"  newsletter campaign resolve {campaign_id} --resend-ambiguous   send them again "
                  "(some may get it twice)", highlight=False)
    elif data["in_flight_leases"]:
        out.print(f"After that, if rows are ambiguous, decide: newsletter campaign resolve {campaign_id} "
                  "--mark-sent | --resend-ambiguous", highlight=False)


@campaign_app.command("rerender")
def campaign_rerender(campaign_id: Annotated[int, typer.Argument(help="Campaign id (a draft or scheduled campaign).")],
                      as_json: JsonOpt = False) -> None:
    """Render a draft or scheduled campaign again with today's settings (public URL, sender, footer, templates)."""
    from newsletter.campaigns import rerender_campaign
    from newsletter.db import session_scope

    settings = _settings()
    with session_scope(engine_for(settings)) as session:
        result = rerender_campaign(session, settings, campaign_id)
    if as_json:
        print_json(result.to_dict())
        return
    was = (f" (was {esc(result.rendered_for_before)})"
           if result.rendered_for_before and result.rendered_for_before != result.public_url else "")
    out.print(f"Campaign {result.campaign_id} re-rendered for {esc(result.public_url)}{was}: {result.html_bytes // 1024} "
              f"KB HTML, {result.links} tracked links; subject, preheader, segment and schedule kept "
              f"({esc(result.status)}). Next: newsletter campaign preflight {result.campaign_id}", highlight=False)


@campaign_app.command("list")
def campaign_list(
    include_nurture: Annotated[bool, typer.Option("--all", help="Also list the nurture sequences' step campaigns.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List newsletters, newest first (nurture steps, which the scheduler sends, with --all)."""
    from newsletter.campaigns import list_campaigns
    from newsletter.campaigns.status import NEEDS_DECISION
    from newsletter.db import session_scope

    with session_scope(engine_for(_settings())) as session:
        rows = list_campaigns(session, include_nurture=include_nurture)
    if as_json:
        print_json(rows)
        return
    table = DataTable("id", *(("kind",) if include_nurture else ()), "status", "subject", "segment", "scheduled (UTC)",
                      copy=("id",))
    for r in rows:
        status = "needs a decision" if r["status"] == NEEDS_DECISION else r["status"]
        table.add_row(str(r["id"]), *((r["kind"],) if include_nurture else ()), status, r["subject"], r["segment"],
                      r["scheduled_at"] or "")
    out.print(table)


@events_app.command("prune")
def events_prune(days: Annotated[Optional[int], typer.Option("--days", help="Keep details this many days (default NEWSLETTER_EVENT_RETENTION_DAYS).")] = None,
                 as_json: JsonOpt = False) -> None:
    """Drop raw details (IP prefix, user agent, payload) of old events; the counts stay."""
    from newsletter.db import session_scope
    from newsletter.tracking import options_from_settings, prune_event_details

    settings = _settings()
    options = options_from_settings(settings)  # checked even with --days: a bad setting is said early
    keep = days if days is not None else options.retention_days
    if keep < 0:
        raise UserError("must be zero or more", where="--days")
    with session_scope(engine_for(settings)) as session:
        pruned = prune_event_details(session, keep)
    if as_json:
        print_json({"pruned": pruned, "older_than_days": keep})
    else:
        out.print(f"{pruned} event(s) older than {keep} days pruned to their counts.")


# --- reports ---------------------------------------------------------------------------------

@app.command()
def report(
    campaign_id: Annotated[Optional[int], typer.Argument(help="Campaign id; leave out for the trends across newsletters.")] = None,
    weeks: Annotated[Optional[int], typer.Option("--weeks", help="Trends: how many weeks back, the current one included (default 12).")] = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print one long CSV table (section,item,metric,value) instead of text.")] = False,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML report with charts to this file.")] = None,
) -> None:
    """Engagement for one campaign (people first, machines set apart), or, with no id, weekly trends across newsletters."""
    from newsletter.db import session_scope
    from newsletter.reports import campaign_report, trends_report

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json or --csv", param_hint="--csv")
    if campaign_id is not None and weeks is not None:
        raise typer.BadParameter("--weeks is for the trends report: leave out the campaign id", param_hint="--weeks")
    if html is not None:
        check_output_file(html, "--html")  # before the report is computed
    settings = _settings()
    with session_scope(engine_for(settings)) as session:
        if campaign_id is not None:
            data = campaign_report(session, campaign_id)
        else:
            data = trends_report(session, weeks=12 if weeks is None else weeks, timezone=settings.default_timezone)
    if html is not None:
        from newsletter.reports import write_html

        write_html(html, data, brand=settings.brand_name)
        (err if as_json or as_csv else out).print(f"wrote {esc(html)}", highlight=False)
    if as_json:
        print_json(data)
    elif as_csv:
        from newsletter.reports import to_csv

        sys.stdout.write(to_csv(data))
    elif campaign_id is not None:
        from newsletter.reports.render_text import print_report

        print_report(out, data)
    else:
        from newsletter.reports.render_text import print_trends

        print_trends(out, data)


# --- long-running --------------------------------------------------------------------------

@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000) -> None:
    """Serve tracking (opens, clicks, unsubscribes), public pages and, with the outbox, the sent mail."""
    from newsletter.web.server import check_port_free
    from newsletter.web.server import serve as run

    check_port_free(host, port)  # a busy port, then an unreachable store, each said in one line before starting
    settings = _settings()
    engine_for(settings)
    run(settings, host, port)


@app.command()
def worker(exit_when_idle: Annotated[bool, typer.Option("--exit-when-idle", help="Stop when no sending campaign has work left.")] = False,
           as_json: JsonOpt = False) -> None:
    """Send queued ledger rows of every sending campaign; run as many as you like against PostgreSQL."""
    from dataclasses import asdict

    from newsletter.campaigns import run_worker

    logging.basicConfig(level=os.environ.get("NEWSLETTER_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    settings = _settings()
    try:
        stats = run_worker(engine_for(settings), settings, exit_when_idle=exit_when_idle)
    except KeyboardInterrupt:
        return
    if as_json:
        print_json(asdict(stats))
    else:
        out.print(f"worker done: {stats.sent} sent, {stats.failed} failed, {stats.suppressed} suppressed, "
                  f"{stats.ambiguous} ambiguous in {stats.batches} batches")
        for held in stats.held:
            err.print(f"not waiting: {esc(held.describe())}", highlight=False)


@app.command()
def scheduler() -> None:
    """Run the scheduler daemon (same as `python scheduler.py`)."""
    scheduler_main()


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Working folder for the demo (recreated each run).")] = Path("newsletter-demo"),
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the app after the report.")] = True,
    port: Annotated[int, typer.Option(help="Port for the app.")] = 8000,
) -> None:
    """The whole pipeline on SQLite: seed article → demo audience → campaign → outbox → report → app."""
    from newsletter.demo import run_demo

    run_demo(directory, serve_after=serve_after, port=port, console=out)


def scheduler_main() -> None:
    """``newsletter scheduler`` and ``python scheduler.py``: the daemon, with the command's manners
    (a mistake is one line, a bug one line and a crash log)."""
    from newsletter.scheduling import run_scheduler

    logging.basicConfig(level=os.environ.get("NEWSLETTER_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def run() -> None:
        try:
            run_scheduler(load_settings())
        except KeyboardInterrupt:
            pass

    _guarded(run)


def _print_error(error: UserError) -> None:
    """One line on stderr; the message is printed as written (a ``[...]`` in it is not markup,
    and a control character quoted from a file is shown, not obeyed) and not wrapped at the
    terminal's width (a script reads one line)."""
    err.print("[red]error:[/] ", end="", highlight=False)
    err.print(visible(error), markup=False, highlight=False, soft_wrap=True)


def _guarded(run: Callable[[], object]) -> None:
    """Run a command so that nothing reaches the person as a Python traceback: a user's mistake
    is one line and exit 1; anything else is a bug, said in one line with the crash log that
    holds its full trace (``newsletter.crashlog``), exit 70. SystemExit (typer's usage errors
    and exit codes included) and KeyboardInterrupt pass through untouched."""
    from newsletter.crashlog import EXIT_BUG, crash_line, write_crash_log

    try:
        run()
    except UserError as error:
        _print_error(error)
        sys.exit(EXIT_USER_ERROR)
    except BrokenPipeError:  # `newsletter … | head`: the reader left; nothing to say to them
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_USER_ERROR)
    except Exception as error:  # noqa: BLE001 (the last resort: a bug, said in one line, its trace logged)
        line = crash_line(error, write_crash_log(error))
        err.print("[red]error:[/] ", end="", highlight=False)
        err.print(visible(line), markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_BUG)


def main() -> None:
    _guarded(app)
