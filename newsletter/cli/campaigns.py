"""``newsletter campaign …``: create, preview, preflight, send, schedule, control and list campaigns.

Create, preview, status, rerender and list are here; preflight, send, its controls and schedule
are in :mod:`newsletter.cli.campaign_sending`, registered on this ``app`` in the help's order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from newsletter.cli import campaign_sending
from newsletter.cli.common import EXIT_INCOMPLETE, current_settings, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.terminal_text import DataTable, esc
from newsletter.userpaths import check_output_file, write_output_file

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


# preflight, send, the controls of a send and schedule live in campaign_sending.py; registered
# here so that the help lists them where they always stood, between preview and status.
for _name, _command in campaign_sending.COMMANDS:
    app.command(_name)(_command)


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
