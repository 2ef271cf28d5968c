"""Scheduling: APScheduler with its job store in the product's own database.

Public face: ``schedule_campaign`` (for the CLI and the web: writes the campaign and its job),
``unschedule_campaign``, ``run_scheduler`` (the daemon behind ``python scheduler.py``).
"""

from newsletter.scheduling.daemon import run_scheduler
from newsletter.scheduling.jobs import job_id, run_campaign_job, schedule_campaign, unschedule_campaign

__all__ = ["schedule_campaign", "unschedule_campaign", "run_scheduler", "run_campaign_job", "job_id"]
