"""Writing a report file: all or nothing (a half-written report is worse than none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from newsletter.errors import UserError
from newsletter.files import write_bytes_atomically


def write_html(path: Path, report: dict[str, Any], *, brand: str = "Roots Mental Wellness") -> None:
    """The campaign or trends report (by the dict's shape) as one HTML file at ``path``."""
    from newsletter.reports.render_html import campaign_html, trends_html

    if path.is_dir():
        raise UserError("is a folder; give a file name such as report.html", where=str(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError("folder does not exist", where=str(folder))
    html = campaign_html(report, brand=brand) if "campaign_id" in report else trends_html(report, brand=brand)
    write_bytes_atomically(path, html.encode("utf-8"), fsync=False)
