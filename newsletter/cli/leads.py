"""``newsletter leads list|show|update|add|export``: thin commands over the leads room's face.

Human output (rich) by default, ``--json`` for scripts. Mistakes raise ``UserError``, which
the ``newsletter`` command turns into one line on stderr and exit code 1.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from newsletter.cli.common import current_settings, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.leads import (
    LABELS,
    STATUSES,
    TRANSITIONS,
    create_signup_lead,
    export_csv,
    history,
    lead_row,
    list_leads,
    score_leads,
    update_status,
)
from newsletter.terminal_text import DataTable, esc, plain

app = typer.Typer(help="People who asked to connect: list, update, export.", no_args_is_help=True)

StatusHelp = f"One of: {', '.join(STATUSES)}."


def _who(by: str | None) -> str:
    """``--by``, else the login name: every change in the history says who made it."""
    if by is not None:
        return by
    name = os.environ.get("USER") or os.environ.get("LOGNAME") or os.environ.get("USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except Exception:  # no login name on this system (a bare container): ask for one
            name = ""
    if not name.strip():
        raise UserError("no login name to record; say who you are with --by NAME", where="--by")
    return name


def _local(value: Any, settings: Settings) -> str:
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M") if value else ""


@app.command("list")
def leads_list(
    status: Annotated[str | None, typer.Option("--status", help=StatusHelp)] = None, as_json: JsonOpt = False
) -> None:
    """List leads, warmest first (scores are brought up to date first)."""
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        score_leads(session, datetime.now(timezone.utc), settings)
        rows = list_leads(session, status)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        out.print("No leads" + (f" with status {esc(status)}." if status else " yet."))
        return
    table = DataTable(
        "id",
        "status",
        "score",
        "name",
        "email",
        "source",
        "campaign",
        "created",
        "last engaged",
        copy=("id", "email"),
        title=f"{len(rows)} lead(s), times in {esc(settings.default_timezone)}",
    )
    for r in rows:
        table.add_row(
            str(r.id),
            LABELS[r.status],
            str(r.score),
            r.name,
            r.email,
            r.source,
            r.campaign or "",
            _local(r.created_at, settings),
            _local(r.last_engaged_at, settings),
        )
    out.print(table)


@app.command("show")
def leads_show(lead_id: Annotated[int, typer.Argument(help="Lead id.")], as_json: JsonOpt = False) -> None:
    """One lead and its status history: who changed what, when, and why."""
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        score_leads(session, datetime.now(timezone.utc), settings)
        changes = history(session, lead_id)  # NotFound for an unknown id
        row = lead_row(session, lead_id)
    assert row is not None
    if as_json:
        print_json({**row.to_dict(), "next": list(TRANSITIONS[row.status]), "history": [c.to_dict() for c in changes]})
        return
    out.print(f"[bold]Lead #{row.id}[/] — {esc(LABELS[row.status])}, score {row.score}", highlight=False)
    out.print(
        f"{esc(row.name) or '(no name)'} <{esc(row.email)}>, source {esc(row.source)}"
        + (f", campaign “{esc(row.campaign)}” (#{row.campaign_id})" if row.campaign else ""),
        highlight=False,
    )
    if row.note:
        out.print(f"Note: {esc(row.note, multiline=True)}", highlight=False)
    table = DataTable("when", "from", "to", "by", "note", title="History")
    for c in changes:
        table.add_row(
            _local(c.changed_at, settings),
            c.from_status or "—",
            c.to_status,
            c.changed_by,
            plain(c.note or "", multiline=True),
        )
    out.print(table)
    nxt = TRANSITIONS[row.status]
    out.print(f"Next: {', '.join(nxt)}" if nxt else "This status is final.", highlight=False)


@app.command("update")
def leads_update(
    lead_id: Annotated[int, typer.Argument(help="Lead id.")],
    status: Annotated[str, typer.Option("--status", help=StatusHelp)],
    note: Annotated[str | None, typer.Option("--note", help="Why, or what happened (kept in the history).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who made the change (default: your login name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a lead along: new → contacted → booked → client (or not_a_fit / lost)."""
    from newsletter.db import session_scope

    who = _who(by)
    with session_scope(engine_for(current_settings())) as session:
        change = update_status(session, lead_id, status, by=who, note=note)
    if as_json:
        print_json(change.to_dict())
    else:
        out.print(
            f"Lead #{change.lead_id}: {LABELS[change.from_status or 'new']} → {LABELS[change.to_status]} "
            f"(by {esc(change.changed_by)})",
            highlight=False,
        )


@app.command("add")
def leads_add(
    email: Annotated[str, typer.Argument(help="The subscriber's email address (they must be a subscriber).")],
    source: Annotated[
        str, typer.Option("--source", help="signup: asked for a consultation when signing up; staff: added by hand.")
    ] = "signup",
    note: Annotated[str | None, typer.Option("--note", help="Anything worth knowing.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who added it (default: system:<source>).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a subscriber a lead (a signup that asked for a consultation)."""
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        result = create_signup_lead(session, email, source=source, by=by, note=note)
    if as_json:
        print_json({"lead_id": result.lead_id, "created": result.created, "status": result.status})
    elif result.created:
        out.print(f"Lead #{result.lead_id} created (new).", highlight=False)
    else:
        out.print(f"Already lead #{result.lead_id} ({LABELS[result.status]}); nothing changed.", highlight=False)


@app.command("export")
def leads_export(
    csv_path: Annotated[Path, typer.Option("--csv", help="The CSV file to write (replaced whole).")],
    status: Annotated[str | None, typer.Option("--status", help=StatusHelp)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write leads to a CSV file (UTF-8; cells that look like formulas are kept as text)."""
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        score_leads(session, datetime.now(timezone.utc), settings)
        count = export_csv(session, csv_path, status)
    if as_json:
        print_json({"path": str(csv_path), "rows": count})
    else:
        out.print(f"{count} lead(s) written to {esc(csv_path)}.", highlight=False)
