"""Reports: figures computed from the ledger and raw events. Public face: ``campaign_report``."""

from newsletter.reports.campaign import campaign_report

__all__ = ["campaign_report"]
