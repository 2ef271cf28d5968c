"""``newsletter init`` and ``newsletter db upgrade|status``: the store's schema (the only commands that upgrade it)."""

from __future__ import annotations

import typer

from newsletter.cli.common import current_settings, out
from newsletter.cli.output import JsonOpt, print_json
from newsletter.terminal_text import esc

app = typer.Typer(help="The store's schema: its revision, and the upgrade.", no_args_is_help=True)


def init(as_json: JsonOpt = False) -> None:
    """Create the store or upgrade it to the newest schema (safe to run again; the only command that upgrades)."""
    from newsletter.db import make_engine, upgrade

    settings = current_settings()
    engine = make_engine(settings.database_url)
    before, after = upgrade(engine)
    url = engine.url.render_as_string(hide_password=True)
    if as_json:
        print_json({"database": url, "revision_before": before, "revision": after})
    elif before == after:
        out.print(f"Store {esc(url)} is up to date (revision {after}).")
    else:
        out.print(f"Store {esc(url)} migrated from {before or 'empty'} to revision {after}.")


@app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Upgrade the store to the newest schema: the same as `newsletter init`."""
    init(as_json=as_json)


@app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show the store's schema revision and the one this program needs; changes nothing."""
    from newsletter.db import make_engine, schema_status

    status = schema_status(make_engine(current_settings().database_url))
    if as_json:
        print_json(
            {"database": status.database, "revision": status.revision, "head": status.head, "state": status.state}
        )
        return
    says = {
        "current": "up to date",
        "empty": "empty (created on first use)",
        "behind": "out of date: run `newsletter init`",
        "newer": "made by a newer newsletter: upgrade the program",
        "unversioned": "has tables but no newsletter revision",
    }[status.state]
    out.print(
        f"Store {esc(status.database)}: revision {esc(status.revision or 'none')}, "
        f"this program's {status.head}: {says}.",
        highlight=False,
        soft_wrap=True,
    )
