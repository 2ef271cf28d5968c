"""The scheduler's automation tick: its settings, the weekly report's due time, and one part
failing without stopping the others."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsletter.errors import UserError
from newsletter.scheduling.periodic import automation_tick, check_settings, weekly_report_due


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(("now", "due"), [
    ("2026-11-30 13:59", False),  # Monday 07:59 in Chicago (UTC-6)
    ("2026-11-30 14:00", True),   # Monday 08:00 there
    ("2026-12-06 23:00", True),   # Sunday evening: late, still owed (sent once by its key)
    ("2026-11-29 20:00", True),   # Sunday of the week before: that week's report
    ("2026-11-30 12:00", False),  # Monday 06:00 in Chicago, though past 08:00 in UTC: local time counts
])
def test_weekly_report_is_due_from_its_local_time(settings, now, due):
    chicago = settings.with_overrides(default_timezone="America/Chicago", weekly_report_at="mon 08:00")
    assert weekly_report_due(chicago, _utc(now)) is due


@pytest.mark.parametrize(("field", "value", "variable"), [
    ("digest_at", "8am", "NEWSLETTER_DIGEST_AT"),
    ("weekly_report_at", "someday 08:00", "NEWSLETTER_WEEKLY_REPORT_AT"),
    ("default_timezone", "Mars/Olympus", "NEWSLETTER_TIMEZONE"),
    ("nurture_tick_seconds", 0.0, "NEWSLETTER_NURTURE_TICK_SECONDS"),
    ("quiet_hours", "late", "NEWSLETTER_QUIET_HOURS"),
    ("lead_points", "open=lots", "NEWSLETTER_LEAD_POINTS"),
])
def test_bad_settings_name_their_variable(settings, field, value, variable):
    with pytest.raises(UserError) as caught:
        check_settings(settings.with_overrides(**{field: value}))
    assert caught.value.where == variable


def test_one_part_failing_leaves_the_others_running(engine, settings, tmp_path):
    broken = tmp_path / "audiences"
    (broken / "nurture").mkdir(parents=True)
    (broken / "nurture" / "broken.yaml").write_text("steps: [unclosed\n", encoding="utf-8")
    report = automation_tick(engine, settings.with_overrides(audiences_dir=str(broken), outbox_dir=str(tmp_path / "out")),
                             _utc("2026-11-30 15:00"))
    assert "broken.yaml" in report.failed["nurture"]
    assert {"leads", "daily digest"} <= set(report.ran) and "leads" not in report.failed
