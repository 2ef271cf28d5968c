"""Scheduling: APScheduler with its job store in the product's own database.

Public face: ``schedule_campaign`` (for the CLI and the web: writes the campaign and its job),
``unschedule_campaign``, ``run_scheduler`` (the daemon behind ``python scheduler.py``),
``automation_tick`` (leads, nurture, digest and weekly report; run by the daemon every
``NEWSLETTER_NURTURE_TICK_SECONDS``).
"""

from newsletter.scheduling.daemon import run_scheduler
from newsletter.scheduling.jobs import job_id, run_campaign_job, schedule_campaign, unschedule_campaign
from newsletter.scheduling.periodic import automation_tick, weekly_report_due

__all__ = [
    "schedule_campaign",
    "unschedule_campaign",
    "run_scheduler",
    "run_campaign_job",
    "job_id",
    "automation_tick",
    "weekly_report_due",
]
