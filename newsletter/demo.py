"""``newsletter demo``: the whole pipeline on the embedded default, for a newcomer.

It works in a folder of its own (SQLite store, outbox, signing key), forces the outbox
transport whatever the environment says (a demo never sends real email), and points the
booking button at a local page so clicking through works without the internet.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from newsletter.config import Settings, load_settings
from newsletter.errors import UserError
from newsletter.resources import articles_dir, audiences_dir

if TYPE_CHECKING:
    from sqlalchemy import Engine  # passed through to the rooms' faces, never used here

MARKER = ".newsletter-demo"
SEED_ARTICLE = "000-ketamine-assisted-psychotherapy.txt"


def _prepare_folder(directory: Path) -> Path:
    """Recreate the demo folder, refusing to wipe one the demo did not make."""
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise UserError("is a file, not a folder; choose another --dir", where=str(directory))
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise UserError("exists and was not made by `newsletter demo`; choose another --dir", where=str(directory))
        shutil.rmtree(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot make the demo folder: {error.strerror or error}; choose another --dir", where=str(directory)
        ) from None
    (directory / MARKER).write_text("made by `newsletter demo`; safe to delete\n", encoding="utf-8")
    return directory


def demo_settings(directory: Path, port: int) -> Settings:
    public = f"http://127.0.0.1:{port}"
    base = load_settings(workdir=directory)
    return base.with_overrides(
        database_url=f"sqlite:///{directory / 'newsletter.db'}",
        outbox_dir=str(directory / "outbox"),
        sendgrid_api_key=None,
        public_url=public,
        booking_url=f"{public}/demo/booking",
        secret_key=None,
    )


def _nurture_summary(engine: Engine, settings: Settings) -> dict[str, int]:
    """What steps 7 and 8 say: leads scored, readers who entered a sequence, readers taken out;
    read through the leads and nurture rooms' faces (the demo builds no statements of its own)."""
    from newsletter.db import session_scope
    from newsletter.leads import list_leads
    from newsletter.nurture import list_summaries

    with session_scope(engine) as session:
        leads = len(list_leads(session))
    sequences = list_summaries(engine, settings)
    return {
        "leads": leads,
        "enrolled": sum(row["active"] + row["completed"] + row["exited"] for row in sequences),
        "exited": sum(row["exited"] for row in sequences),
    }


def run_demo(directory: Path, *, serve_after: bool, port: int, console: Console) -> dict[str, object]:
    from newsletter.audiences import import_subscribers
    from newsletter.campaigns import create_campaign, import_article, send_campaign
    from newsletter.db import ensure_current, make_engine, session_scope
    from newsletter.demo_activity import backdate, simulate_readers, staff_books
    from newsletter.reports import campaign_report, write_html
    from newsletter.reports.render_text import print_report
    from newsletter.scheduling import automation_tick

    if serve_after:  # before the pipeline, not after it: "port 8000 is busy: use --port"
        from newsletter.web import check_port_free

        check_port_free("127.0.0.1", port)
    directory = _prepare_folder(directory)
    os.chdir(directory)  # the signing key file and relative paths live in the demo folder
    settings = demo_settings(directory, port)
    engine = make_engine(settings.database_url)
    ensure_current(engine)  # the folder is new, so the store is empty: created at the newest schema
    console.print(f"[bold]1.[/] Store: {directory / 'newsletter.db'} (SQLite)")
    with session_scope(engine) as session:
        imported = import_article(session, articles_dir() / SEED_ARTICLE)
        slug = imported.row.slug
    console.print(f"[bold]2.[/] Article: “{imported.article.title}” ({imported.article.word_count} words) → {slug}")
    audience = import_subscribers(engine, audiences_dir() / "demo.csv", progress=False)
    console.print(
        f"[bold]3.[/] Audience: {audience.created} subscribers imported, "
        f"{audience.duplicates_merged} duplicates merged, {audience.rejected_count} rejected"
    )
    with session_scope(engine) as session:
        campaign = create_campaign(session, settings, article_slug=slug, segment="all")
        campaign_id = campaign.id
    console.print(f"[bold]4.[/] Campaign {campaign_id}: “{campaign.subject}”")
    summary = send_campaign(engine, settings, campaign_id)
    console.print(f"[bold]5.[/] Sent {summary.sent} messages to {settings.outbox_dir}/campaign-{campaign_id}/")
    backdate(engine, campaign_id)
    activity = simulate_readers(engine, campaign_id)
    console.print(
        f"[bold]6.[/] [yellow]Simulated[/] three days of readers (demo only), judged by the tracking rules: "
        f"{activity.human_opens} opens by people, {activity.machine_opens} by machines; "
        f"{activity.human_clicks} clicks by people ({activity.connect_today} on “Connect today”), "
        f"{activity.machine_clicks} by scanners"
    )
    tick = automation_tick(engine, settings)
    nurture = _nurture_summary(engine, settings)
    console.print(
        f"[bold]7.[/] Scheduler tick: {nurture['leads']} leads scored, the director alerted of each "
        f"({settings.outbox_dir}/staff/); {nurture['enrolled']} readers entered the “connect-today” "
        "nurture sequence (first email a day later, in each reader's daytime)"
        + (f"; [red]failed: {tick.failed}[/]" if tick.failed else "")
    )
    booked = staff_books(engine)
    tick = automation_tick(engine, settings)
    nurture = _nurture_summary(engine, settings)
    console.print(
        f"[bold]8.[/] [yellow]Simulated[/] front desk: leads {', '.join(map(str, booked))} booked a consultation; "
        f"the next tick took them out of the sequence ({nurture['exited']} exited). "
        "Try `newsletter leads list` and `newsletter nurture simulate connect-today`."
    )
    with session_scope(engine) as session:
        report = campaign_report(session, campaign_id)
    print_report(console, report)
    html_path = directory / "report.html"
    write_html(html_path, report, brand=settings.brand_name)
    console.print(f"\n[bold]Director's report:[/] {html_path} (open it in a browser; no network needed)")
    engine.dispose()
    if serve_after:
        from newsletter.web import serve

        console.print(
            f"\n[bold green]Open {settings.public_base}/[/] to read the sent emails and click through; "
            "tracking is live. Then run `newsletter report "
            f"{campaign_id}` in {directory} (Ctrl+C stops the server)."
        )
        serve(settings, "127.0.0.1", port)
    return report
