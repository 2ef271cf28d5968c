"""Settings: compound values are parsed once, at load, and a bad one is one line naming its variable.

The time zone, quiet hours, digest time, weekly report time and lead points used to be kept as
strings that three or four rooms parsed again (three HH:MM readers, four zone lookups), so a
bad value surfaced late (at 08:00, inside a tick) or not at all. These tests pin the one place.
"""

from __future__ import annotations

import ast
import json
import sys
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cli_runs import env_without_settings, run_process
from newsletter.config import Settings, load_settings
from newsletter.errors import UserError
from newsletter.settings_types import QuietHours, WeeklyTime, read_clock

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"

BAD = [
    ("NEWSLETTER_TIMEZONE", "Mars/Olympus", "unknown time zone"),
    ("NEWSLETTER_TIMEZONE", "../../etc/passwd", "unknown time zone"),
    ("NEWSLETTER_QUIET_HOURS", "late", "HH:MM-HH:MM"),
    ("NEWSLETTER_QUIET_HOURS", "09:00-09:00", "same time"),
    ("NEWSLETTER_DIGEST_AT", "8am", "HH:MM"),
    ("NEWSLETTER_DIGEST_AT", "24:00", "HH:MM"),
    ("NEWSLETTER_WEEKLY_REPORT_AT", "someday 08:00", "weekday"),
    ("NEWSLETTER_WEEKLY_REPORT_AT", "mon 25:00", "HH:MM"),
    ("NEWSLETTER_LEAD_POINTS", "open=lots", "must be a number"),
    ("NEWSLETTER_LEAD_POINTS", "views=3", "kind one of open, click, cta"),
    ("NEWSLETTER_LEAD_POINTS", "cta=-5", "zero or more"),
]


@pytest.mark.parametrize(("variable", "value", "words"), BAD)
def test_a_bad_compound_setting_stops_the_load_naming_its_variable(tmp_path, variable, value, words) -> None:
    with pytest.raises(UserError) as caught:
        load_settings(environ={variable: value}, workdir=tmp_path)
    assert caught.value.where == variable
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_value_from_newsletter_toml_names_the_variable_too(tmp_path) -> None:
    (tmp_path / "newsletter.toml").write_text('[newsletter]\nquiet_hours = "all night"\n', encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_settings(environ={}, workdir=tmp_path)
    assert caught.value.where == "NEWSLETTER_QUIET_HOURS"


def test_good_values_arrive_typed(tmp_path) -> None:
    settings = load_settings(
        environ={
            "NEWSLETTER_TIMEZONE": "Europe/London",
            "NEWSLETTER_QUIET_HOURS": "21:30-8:00",
            "NEWSLETTER_DIGEST_AT": "7:05",
            "NEWSLETTER_WEEKLY_REPORT_AT": "Friday 17:00",
            "NEWSLETTER_LEAD_POINTS": "open=2, cta=40",
        },
        workdir=tmp_path,
    )
    assert settings.zone == ZoneInfo("Europe/London")
    assert settings.quiet == QuietHours(time(21, 30), time(8, 0))
    assert settings.digest_time == time(7, 5)
    assert settings.weekly_report_time == WeeklyTime(4, time(17, 0))
    assert settings.point_values == {"open": 2.0, "click": 3.0, "cta": 40.0}
    assert settings.default_timezone == "Europe/London"  # what the user wrote is kept, for display


def test_the_defaults_parse() -> None:
    settings = Settings()
    assert settings.zone == ZoneInfo("UTC") and str(settings.quiet) == "20:00-09:00"
    assert settings.digest_time == time(8) and settings.weekly_report_time == WeeklyTime(0, time(8))
    assert settings.point_values == {"open": 1.0, "click": 3.0, "cta": 10.0}


def test_overrides_are_parsed_again() -> None:
    settings = Settings()
    assert not settings.with_overrides(quiet_hours="none").quiet.active
    assert settings.with_overrides(default_timezone="America/Chicago").zone == ZoneInfo("America/Chicago")
    assert settings.with_overrides(weekly_report_at="sun 23:59").weekly_report_time == WeeklyTime(6, time(23, 59))
    with pytest.raises(UserError) as caught:
        settings.with_overrides(digest_at="8am")
    assert caught.value.where == "NEWSLETTER_DIGEST_AT"


def test_parsed_values_stay_out_of_the_json_and_the_repr() -> None:
    settings = Settings()
    shown = settings.redacted()
    assert "zone" not in shown and "quiet" not in shown and shown["quiet_hours"] == "20:00-09:00"
    json.dumps(shown)  # --json prints it
    assert "ZoneInfo" not in repr(settings)
    assert settings == Settings()  # equality is over what was configured


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("08:00", time(8)),
        ("8:00", time(8)),
        (" 23:59 ", time(23, 59)),
        ("24:00", None),
        ("08:60", None),
        ("8", None),
        ("8:5", None),
        ("٠٨:٠٠", None),
        ("", None),
        (None, None),
    ],
)
def test_the_one_clock_reader(text, clock) -> None:
    assert read_clock(text) == clock


def test_the_command_stops_at_load_with_one_line(tmp_path) -> None:
    env = env_without_settings(
        {
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
            "NEWSLETTER_QUIET_HOURS": "late",
            "XDG_STATE_HOME": str(tmp_path / "state"),
        }
    )
    ran = run_process([sys.executable, "-m", "newsletter", "article", "list"], tmp_path, env)
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert 0 < ran.returncode <= 3 and "Traceback" not in ran.stderr, ran.stderr
    assert len(lines) == 1 and lines[0].startswith("error: NEWSLETTER_QUIET_HOURS:"), lines
    assert not (tmp_path / "n.db").exists()  # stopped before the store was touched


# --- one parser, one lookup: no room parses a setting's string again -----------------------------

PARSERS = {
    "parse_points",
    "parse_weekly",
    "parse_daily",
    "parse_clock",
    "read_clock",
    "digest_time",
    "local_zone",
    "default_zone",
}
PARSE_HOME = {"config.py", "settings_types.py"}
#: Zones that are not settings: a person's ``--tz`` for a send time and an imported subscriber's
#: zone column. They are checked where they are typed; they never read NEWSLETTER_TIMEZONE.
ZONE_ELSEWHERE = {"campaigns/status.py", "audiences/values.py"}
SETTING_STRINGS = {"quiet_hours", "digest_at", "weekly_report_at", "lead_points"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(PACKAGE)), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return f"{owner}.{func.attr}" if owner else func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_no_room_parses_a_setting_or_looks_up_a_zone_itself() -> None:
    found = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = _called(node)
                short = called.rpartition(".")[2]
                if name not in PARSE_HOME and (short in PARSERS or called == "QuietHours.parse"):
                    found.append(f"{name}:{node.lineno} calls {called}")
                if short == "ZoneInfo" and name != "settings_types.py" and name not in ZONE_ELSEWHERE:
                    found.append(f"{name}:{node.lineno} looks up a zone itself")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in SETTING_STRINGS
                and name not in PARSE_HOME
                and isinstance(node.value, ast.Name)
                and node.value.id == "settings"
            ):
                found.append(f"{name}:{node.lineno} reads settings.{node.attr} (use the parsed value)")
    assert not found, "\n".join(found)


def _env_key(node: ast.AST) -> ast.expr | None:
    """The key of ``os.environ.get(KEY)``, ``os.getenv(KEY)`` or ``os.environ[KEY]``, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        inner = node.func.value
        if (
            node.func.attr == "get" and isinstance(inner, ast.Attribute) and inner.attr == "environ"
        ) or node.func.attr == "getenv":
            return node.args[0]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
        return node.slice
    return None


def test_rooms_do_not_read_the_environment_for_settings() -> None:
    """Only ``config`` reads a ``NEWSLETTER_*`` variable (the CLI's log level, read before any
    setting to configure logging, is the one exception); other variables (the crash log's
    XDG folder, the login name) are not settings."""
    found = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            key = _env_key(node)
            if key is None or name == "config.py":
                continue
            literal = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
            if literal == "NEWSLETTER_LOG_LEVEL" and (name == "cli.py" or name.startswith("cli/")):
                continue
            if literal is None or literal.startswith(("NEWSLETTER_", "SENDGRID_")):
                found.append(f"{name}:{node.lineno} reads {literal or ast.unparse(key)} from the environment")
    assert not found, "\n".join(found)


def test_the_simulator_scores_with_the_same_points_as_the_leads_room() -> None:
    """``NEWSLETTER_LEAD_POINTS=cta=10`` leaves opens at their default 1 point in the leads room;
    the simulator used to parse the string its own way and count them as 0."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from newsletter.nurture import load_sequence, parse_events, simulate
    from newsletter.nurture.sequences import Conditions

    base = load_sequence("connect-today")
    gated = replace(base.steps[1], when=Conditions(score_above=10.5), if_not="skip")
    sequence = replace(base, steps=(base.steps[0], gated))
    settings = Settings(lead_points="cta=10", quiet_hours="none")
    timeline = simulate(
        sequence,
        start=datetime(2026, 3, 10, 10, tzinfo=timezone.utc),
        days=10,
        events=parse_events("day1@12:00:open"),
        tz=settings.zone,
        quiet=settings.quiet,
        lead_points=settings.point_values,
        half_life_days=1e9,
    )
    step_two = [e.kind for e in timeline.entries if e.step == 2]
    assert step_two == ["sent"], timeline.entries  # 10 (the CTA) + 1 (the open) is above 10.5
