"""``newsletter campaign preflight ID [--json] [--screenshots DIR]``: the report, for a person or a script."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.preflight.model import NOT_OVERRIDABLE, PreflightReport
from newsletter.preflight.run import run_preflight

if TYPE_CHECKING:  # rich is imported when a report is printed, not when the module loads
    from rich.console import Console

EXIT_PASSED = 0
EXIT_FAILED = 1  # "a refused action": this campaign would be refused by send and schedule

_STYLE = {"pass": "[green]PASS[/]", "warn": "[yellow]WARN[/]", "fail": "[bold red]FAIL[/]"}


def preflight_command(
    engine: Engine,
    settings: Settings,
    campaign_id: int,
    *,
    as_json: bool = False,
    screenshots: Path | None = None,
    console: Console | None = None,
    stream: TextIO | None = None,
) -> int:
    """Run the preflight, print it, return the exit status (0 when no check fails, else 1)."""
    with session_scope(engine) as session:
        report = run_preflight(session, settings, campaign_id, screenshots_dir=screenshots)
    if as_json:
        (stream or sys.stdout).write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    else:
        print_report(report, console)
    return EXIT_FAILED if report.failed else EXIT_PASSED


def print_report(report: PreflightReport, console: Console | None = None) -> None:
    from rich.console import Console

    from newsletter.terminal_text import esc as escape  # control characters shown too, not only markup

    out = console or Console()
    out.print(
        f"Preflight of campaign {report.campaign_id}, as [bold]{escape(report.sample_email or '?')}[/] would get it:"
    )
    for check in report.checks:
        out.print(f"  {_STYLE[check.status]}  [bold]{escape(check.title)}[/]: {escape(check.reason)}", highlight=False)
        if check.status != "pass" and check.fix_hint:
            out.print(f"        [dim]fix:[/] {escape(check.fix_hint)}", highlight=False)
    if report.screenshots:
        out.print(f"Screenshots: {escape(', '.join(report.screenshots))}")
    failed, warned = len(report.failed), len(report.warnings)
    if any(check.name in NOT_OVERRIDABLE for check in report.failed):
        out.print(
            f"[bold red]Not checked further:[/] send and schedule refuse this campaign, even with --force, "
            f"until it is rendered again (`newsletter campaign rerender {report.campaign_id}`)."
        )
    elif failed:
        out.print(
            f"[bold red]{failed} check(s) failed[/]"
            + (f", {warned} warning(s)" if warned else "")
            + ": send and schedule refuse this campaign unless --force (recorded on the campaign)."
        )
    else:
        out.print("[green]Every check passed[/]" + (f" ({warned} warning(s))" if warned else "") + ".")
