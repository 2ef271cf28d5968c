#!/usr/bin/env python3
"""Refresh the README's report screenshots in docs/reports/ (campaign report, trends report,
weekly email) from a larger random store, rendered in headless Chromium the way the page tests
render (network blocked, page scripts off, 1000 px wide; the email at 640 px).

A refresher is a script, not a test that always skips: run it by hand after changing how a
report looks, look at the pictures, and commit them only if they changed for a reason (a
Chromium or font update alone moves a few pixels).

    python scripts/refresh_screenshots.py [--out docs/reports]

Needs Debian's ``chromium`` and the test extras (the random store is the one the report tests
build: ``tests/reports/test_reports.py``). The preflight screenshots in docs/preflight/ come from the
product itself: ``newsletter campaign preflight ID --screenshots docs/preflight``.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from PIL import Image

from newsletter.config import Settings
from newsletter.db import make_engine, models, session_scope, upgrade
from newsletter.preflight.chromium import Browser, find_chromium
from newsletter.reports import (
    campaign_html,
    campaign_report,
    trends_html,
    trends_report,
    weekly_report_email,
)

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(REPO / "tests" / "reports"),
    str(REPO / "tests"),
]  # the report tests' random store, shared rather than copied
from test_reports import T0, build_random_world  # noqa: E402 (importable only once tests/ is on the path)

WIDTH = 1000  # as tests/reports/test_report_html.py renders the reports
TALLEST = 2300  # the README shows the top of each report
SUBJECTS = {
    "A": ("Ketamine-assisted psychotherapy: what a session is like", "all"),
    "B": ("Sleep and anxiety: five small changes", "anxiety"),
    "C": ("When grief does not lift", "all"),
    "D": ("Neuroplasticity and therapy", "all"),
    "E": ("Esketamine: questions we hear", "ketamine"),
    "F": ("Your first consultation", "all"),
    "G": ("Depression in winter", "depression"),
    "H": ("Family support, step by step", "all"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "reports", help="folder for the PNGs")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("headless Chromium not found: install Debian package chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        written = refresh(chromium, Path(folder), args.out)
    for path in written:
        print(f"wrote {path}")
    return 0


def refresh(chromium: str, folder: Path, out: Path) -> list[Path]:
    """Build the random store in ``folder``, render the three pictures into ``out``."""
    settings = Settings(
        database_url=f"sqlite:///{folder / 'screenshots.db'}",
        secret_key="screenshots-only",
        outbox_dir=str(folder / "outbox"),
        public_url="https://news.example.test",
        sendgrid_api_key=None,
    )
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        world = build_random_world(engine, 2000, 7, ledger=(98, 1, 1, 0, 0), campaigns=8)
        with session_scope(engine) as s:
            for name, (subject, segment) in SUBJECTS.items():
                campaign = s.get_one(models.Campaign, world.campaigns[name])
                campaign.subject, campaign.segment = subject, segment
            report = campaign_report(s, world.campaigns["A"])
            trends = trends_report(s, weeks=10, now=T0 + timedelta(days=52))
        written = []
        for html, name in ((campaign_html(report), "campaign-report.png"), (trends_html(trends), "trends-report.png")):
            with _page(chromium, html, WIDTH) as browser:
                browser.evaluate("window.scrollTo(0, 0)")
                page = Image.open(io.BytesIO(browser.screenshot(WIDTH)))
            written.append(_save(page.crop((0, 0, WIDTH, min(page.height, TALLEST))), out / name))
        _, html, _, images = weekly_report_email(engine, settings, T0 + timedelta(days=56, hours=15))
        for cid, png in images.items():  # the email's charts are inline (cid:); a page needs them inline too
            html = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
        with _page(chromium, html, 640) as browser:
            written.append(_save(Image.open(io.BytesIO(browser.screenshot(640))), out / "weekly-email.png"))
        return written
    finally:
        engine.dispose()


@contextmanager
def _page(chromium: str, html: str, width: int) -> Iterator[Browser]:
    with Browser(chromium) as browser:  # network blocked, page scripts off: as a mail client would
        browser.set_viewport(width, 900)
        browser.load_html(html)
        yield browser


def _save(image: Image.Image, path: Path) -> Path:
    """A 256-colour PNG: a third of the bytes, the same look for flat charts and text."""
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
