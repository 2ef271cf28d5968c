"""The long-running commands and the first ones a newcomer runs: ``serve``, ``worker``,
``scheduler`` and ``demo`` (``init`` is in :mod:`newsletter.cli.db`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import configure_logging, current_settings, err, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.terminal_text import esc


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve tracking (opens, clicks, unsubscribes), public pages and, with the outbox, the sent mail."""
    from newsletter.web import check_port_free
    from newsletter.web import serve as run

    check_port_free(host, port)  # a busy port, then an unreachable store, each said in one line before starting
    settings = current_settings()
    engine_for(settings)
    run(settings, host, port)


def worker(
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Stop when no sending campaign has work left.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send queued ledger rows of every sending campaign; run as many as you like against PostgreSQL."""
    from dataclasses import asdict

    from newsletter.campaigns import run_worker

    configure_logging()
    settings = current_settings()
    try:
        stats = run_worker(engine_for(settings), settings, exit_when_idle=exit_when_idle)
    except KeyboardInterrupt:
        return
    if as_json:
        print_json(asdict(stats))
    else:
        out.print(
            f"worker done: {stats.sent} sent, {stats.failed} failed, {stats.suppressed} suppressed, "
            f"{stats.ambiguous} ambiguous in {stats.batches} batches"
        )
        for held in stats.held:
            err.print(f"not waiting: {esc(held.describe())}", highlight=False)


def scheduler() -> None:
    """Run the scheduler daemon (same as `python scheduler.py`)."""
    from newsletter.cli import scheduler_main

    scheduler_main()


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Working folder for the demo (recreated each run).")] = Path(
        "newsletter-demo"
    ),
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the app after the report.")] = True,
    port: Annotated[int, typer.Option(help="Port for the app.")] = 8000,
) -> None:
    """The whole pipeline on SQLite: seed article → demo audience → campaign → outbox → report → app."""
    from newsletter.demo import run_demo

    run_demo(directory, serve_after=serve_after, port=port, console=out)
