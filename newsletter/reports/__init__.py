"""Reports: figures computed from the ledger and raw events, as tables, JSON, CSV, HTML and email.

Public face: ``campaign_report`` (one campaign), ``trends_report`` (weeks across newsletters),
``campaign_figures`` (the funnel figures every report shares), ``to_csv``, ``campaign_html`` /
``trends_html`` / ``write_html``, ``weekly_report_email`` and ``send_weekly_report`` (the
director's Monday mail). The text tables are ``render_text.print_report`` / ``print_trends``.
"""

from newsletter.reports.campaign import campaign_report
from newsletter.reports.figures import campaign_figures
from newsletter.reports.output import write_html
from newsletter.reports.render_csv import to_csv
from newsletter.reports.render_html import campaign_html, trends_html
from newsletter.reports.trends import trends_report
from newsletter.reports.weekly import send_weekly_report, weekly_report_email

__all__ = [
    "campaign_report",
    "trends_report",
    "campaign_figures",
    "to_csv",
    "campaign_html",
    "trends_html",
    "write_html",
    "weekly_report_email",
    "send_weekly_report",
]
