"""What the commands print: values from data printed as written (never rich markup, never a
terminal control code), columns a person copies kept whole at 80 columns, and ``--help`` and
the README's command table in agreement.

Anyone can put text into the store (a reader's first name on the preference page, an article's
title, a provider's bounce reason), so every command that prints data is run here, as a person
runs it (a subprocess, a terminal forced on so hyperlinks and colours would be written), over
values that are rich markup and raw escape sequences.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from cli_runs import env_without_settings, run_process
from newsletter.cli import app
from newsletter.db import models, session_scope
from newsletter.terminal_text import DataTable, esc, visible
from repo_paths import REPO_DIR

REPO = REPO_DIR

MARKUP = "[/] x [link=https://evil.example]Zed[/link] [bold]Loud :warning:"
#: the same, then an OSC 8 hyperlink and a clear-screen written as raw escape sequences
HOSTILE = MARKUP + " \x1b]8;;https://evil.example\x1b\\Esc\x1b]8;;\x1b\\ \x1b[2J"
SHOWN = MARKUP + " \\x1b]8;;https://evil.example\\x1b\\Esc\\x1b]8;;\\x1b\\ \\x1b[2J"
BY = "[/] by [link=https://evil.example]Zed[/link]"
SGR = re.compile(r"\x1b\[[0-9;]*m")  # colours and bold: what a forced terminal may legitimately get


def run(args: list[str], cwd: Path, env_extra: dict[str, str], columns: int = 1000) -> subprocess.CompletedProcess:
    """``newsletter ARGS`` as in a terminal (rich writes colours, and would write hyperlinks)."""
    env = env_without_settings(env_extra)
    env.update(PYTHONPATH=str(REPO), COLUMNS=str(columns), FORCE_COLOR="1", TTY_COMPATIBLE="1", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    return run_process([sys.executable, "-m", "newsletter", *args], cwd, env, timeout=300)


def terminal_text(result: subprocess.CompletedProcess) -> str:
    """stdout and stderr as a person would read them: colours dropped; anything else that is an
    escape sequence (a hyperlink, a cursor move) stays in, to be caught."""
    return SGR.sub("", result.stdout + result.stderr)


def problems(name: str, result: subprocess.CompletedProcess, ok_codes: tuple[int, ...] = (0,)) -> list[str]:
    found = []
    if result.returncode not in ok_codes:
        found.append(f"{name}: exit {result.returncode}: {result.stderr[-600:]}")
    if "Traceback" in result.stderr or "MarkupError" in result.stderr:
        found.append(f"{name}: traceback: {result.stderr[-600:]}")
    if "\x1b]8;" in result.stdout + result.stderr:
        found.append(f"{name}: a terminal hyperlink (OSC 8) was written")
    if "\x1b" in terminal_text(result):
        found.append(f"{name}: an escape sequence other than a colour was written")
    return found


# --- the helpers -----------------------------------------------------------------------------


def test_visible_shows_control_characters_and_esc_keeps_brackets() -> None:
    assert visible(HOSTILE) == SHOWN
    assert visible("Ann\r\nBob\t\u202eevil") == "Ann\\x0d\\x0aBob\t\\u202eevil"
    assert visible("line one\nline two", multiline=True) == "line one\nline two"
    assert visible(None) == "" and visible(7) == "7"
    console = Console(width=200, record=True, force_terminal=True, emoji=False)
    backslash = "trailing backslash \\"
    console.print(f"[bold]{esc(HOSTILE)}[/] and {esc(backslash)}")
    text = console.export_text()
    assert SHOWN in text and "trailing backslash \\" in text


def test_data_table_prints_cells_literally_on_a_terminal() -> None:
    stream = io.StringIO()
    console = Console(file=stream, width=400, force_terminal=True, color_system="truecolor", emoji=False)
    table = DataTable("id", "name", copy=("id",))
    table.add_row("1", HOSTILE)
    table.add_row(2, None)
    console.print(table)
    raw = stream.getvalue()
    assert "\x1b]8;" not in raw and "\x1b" not in SGR.sub("", raw) and SHOWN in SGR.sub("", raw)


def test_copy_columns_stay_whole_as_the_others_shrink_then_rows_become_blocks() -> None:
    slug = "the-emergence-of-ketamine-assisted-psychotherapy-transforming-mental-health"  # 74 characters
    title = "The Emergence of Ketamine Assisted Psychotherapy: Transforming Mental Health Treatment"
    for width in (80, 100, 120):
        console = Console(width=width, record=True, color_system=None)
        table = DataTable("id", "slug", "title", "published", copy=("id", "slug"))
        table.add_row("1234", slug, title, "2023-08-07")
        table.add_row("5", "short", "Short", "")
        console.print(table)
        lines = console.export_text().splitlines()
        assert any(slug in line for line in lines), (width, lines)
        assert any(re.search(r"\b1234\b", line) for line in lines)
        assert all(len(line) <= width for line in lines)
        words = " ".join(line.strip(" │┃") for line in lines)
        assert all(word in words for word in ("Emergence", "Treatment", "2023-08-07")), (width, lines)
    console = Console(width=120, record=True, color_system=None)
    table = DataTable("id", "slug", "title", "published", copy=("id", "slug"))
    table.add_row("1", slug, title, "2023-08-07")
    console.print(table)
    assert "│ " + slug + " │" in console.export_text()  # wide enough: a table, the title wrapped
    with pytest.raises(ValueError, match="copy columns"):
        DataTable("id", copy=("slug",))


# --- every command over hostile data ---------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path, db_url: str, engine, seed_article_path: Path):  # type: ignore[no-untyped-def]
    """A store and an audiences folder whose names, titles, subjects, notes, labels and
    descriptions are markup and escape sequences; returns (cwd, env, campaign id, lead id)."""
    from newsletter.leads.model import create_signup_lead

    audiences = tmp_path / "audiences"
    shutil.copytree(REPO / "audiences", audiences)
    segment = audiences / "ketamine-curious.yaml"
    segment.write_text(
        segment.read_text().replace(
            "description: Readers interested in ketamine therapy, depression or PTSD", f"description: '{MARKUP}'"
        )
    )
    sequence = audiences / "nurture" / "connect-today.yaml"
    text = sequence.read_text()
    text = re.sub(r"^description: .*$", f"description: '{MARKUP}'", text, count=1, flags=re.MULTILINE)
    sequence.write_text(text.replace("  - name: first-consultation", f"  - name: '{BY}'", 1))
    env = {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "cli-output-key",
        "NEWSLETTER_PUBLIC_URL": "https://news.example.test",
        "NEWSLETTER_AUDIENCES_DIR": str(audiences),
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "USER": "reception",
    }
    seed = tmp_path / "seed.txt"
    seed.write_text(seed_article_path.read_text(encoding="utf-8"), encoding="utf-8")
    with session_scope(engine) as session:
        session.add(models.Subscriber(email="zed@example.com", first_name=HOSTILE, last_name="Doe", status="active"))
        session.flush()
        lead = create_signup_lead(session, "zed@example.com", source="staff", by=BY, note=HOSTILE)
    return tmp_path, env, lead.lead_id, seed


def test_every_command_prints_hostile_values_as_written(hostile, engine) -> None:  # type: ignore[no-untyped-def]
    cwd, env, lead_id, seed = hostile
    found: list[str] = []

    def check(args: list[str], *expected: str, ok_codes: tuple[int, ...] = (0,)) -> str:
        result = run(args, cwd, env)
        found.extend(problems(" ".join(args), result, ok_codes))
        shown = terminal_text(result)
        found.extend(f"{' '.join(args)}: {e!r} not printed as written" for e in expected if e not in shown)
        return shown

    hostile_article = cwd / "hostile.txt"
    hostile_article.write_text(f"{MARKUP}\n\n" + seed.read_text(encoding="utf-8").split("\n", 1)[1], encoding="utf-8")
    check(["article", "import", str(hostile_article)], MARKUP)
    check(["article", "import", str(seed)])
    check(["article", "list"], MARKUP)
    with session_scope(engine) as session:
        slug = session.scalars(select(models.Article.slug).where(models.Article.title != MARKUP)).one()
    created = check(["campaign", "create", "--article", slug, "--segment", "all", "--subject", MARKUP], MARKUP)
    campaign_id = int(re.search(r"Campaign (\d+) created", created).group(1)) if "created" in created else 1
    with session_scope(engine) as session:
        campaign = session.get(models.Campaign, campaign_id)
        campaign.subject, campaign.name, campaign.status_reason = HOSTILE, HOSTILE, HOSTILE
        session.scalars(
            select(models.CampaignLink).where(models.CampaignLink.campaign_id == campaign_id)
        ).first().label = HOSTILE
        session.get(models.Lead, lead_id).campaign_id = campaign_id
    check(["campaign", "list"], SHOWN)
    check(["campaign", "status", str(campaign_id)], SHOWN)
    check(["report", str(campaign_id)], SHOWN)
    check(["report"])
    check(["leads", "list"], SHOWN)
    check(["leads", "show", str(lead_id)], SHOWN, BY)
    check(["segment", "list"], MARKUP)
    check(["nurture", "list"], MARKUP)
    check(["nurture", "status", "connect-today"], BY)
    check(["nurture", "simulate", "connect-today", "--days", "3"], MARKUP)
    people = cwd / "people [bold]loud [red].csv"  # the rejection lines name the file
    people.write_text(f'email,first_name\nann@example.com,Ann\n"{MARKUP}@x",Bob\n', encoding="utf-8")
    check(["subscribers", "import", str(people)], f"{people}:3: ", ok_codes=(0, 3))
    assert not found, "\n".join(found)


# --- at 80 columns ---------------------------------------------------------------------------


def test_slug_and_email_are_whole_at_80_columns(tmp_path: Path, db_url: str, engine, seed_article_path: Path) -> None:  # type: ignore[no-untyped-def]
    from newsletter.leads.model import create_signup_lead

    email = "alexandra.montgomery-smith@a-rather-long-clinic-domain.example.org"
    with session_scope(engine) as session:
        session.add(models.Subscriber(email=email, first_name="Alexandra", last_name="Montgomery-Smith"))
        session.flush()
        create_signup_lead(session, email, source="signup", note="asked about evening appointments")
    env = {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET_KEY": "cli-output-key"}
    imported = run(["article", "import", str(seed_article_path)], tmp_path, env, columns=80)
    assert imported.returncode == 0, imported.stderr
    with session_scope(engine) as session:
        slug = session.scalars(select(models.Article.slug)).one()
    assert len(slug) > 60  # the seed's slug: longer than an 80-column table leaves a column
    for args, whole in ((["article", "list"], slug), (["leads", "list"], email), (["campaign", "list"], "")):
        result = run(args, tmp_path, env, columns=80)
        assert result.returncode == 0, result.stderr
        lines = terminal_text(result).splitlines()
        assert all(len(line) <= 80 for line in lines), lines
        assert any(whole in line for line in lines), (args, lines)


# --- the README and --help ---------------------------------------------------------------------


def _commands(command: typer.core.TyperGroup | typer.core.TyperCommand, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Every command of the app with its path: ('campaign', 'send'), ('init',), ..."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def _groups(command, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    if getattr(command, "commands", None) is not None:
        yield path
        for name, sub in command.commands.items():
            yield from _groups(sub, (*path, name))


def _readme_commands() -> tuple[dict[tuple[str, ...], str], set[tuple[str, ...]]]:
    """The README's "Command line" table: the text of each command's entry, by command path;
    and the commands named in the sentence that lists those without ``--json``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    groups = {path[0] for path in _groups(typer.main.get_command(app)) if path}
    entries: dict[tuple[str, ...], str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        group: str | None = None
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.replace("\\|", "|").split()
            if words[0] == "newsletter":
                words = words[1:]
                group = words[0] if words[0] in groups else None
            elif words[0] in groups:
                group = words[0]
            elif group is not None:
                words = [group, *words]
            else:
                continue  # `python scheduler.py`
            path = tuple(words[:2]) if words[0] in groups else (words[0],)
            entries[path] = entries.get(path, "") + " " + span
    without_json = re.search(r"every one but (.*?) takes `--json`", section, re.DOTALL)
    assert without_json, "the README names the commands without --json"
    no_json = {tuple(name.split()) for name in re.findall(r"`([^`]+)`", without_json.group(1))}
    return entries, no_json


def test_every_command_and_option_is_in_the_readme() -> None:
    entries, no_json = _readme_commands()
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        name = " ".join(path)
        if path not in entries:
            missing.append(f"`newsletter {name}` has no entry in the README's command table")
            continue
        options = [p for p in command.params if p.param_type_name == "option"]
        has_json = any("--json" in p.opts for p in options)
        if has_json == (path in no_json):
            missing.append(f"{name}: the README says it {'does not take' if has_json else 'takes'} --json")
        for option in options:
            if "--json" in option.opts:
                continue
            if not any(
                re.search(re.escape(o) + r"(?![\w-])", entries[path]) for o in (*option.opts, *option.secondary_opts)
            ):
                missing.append(f"{name}: {'/'.join(option.opts)} is not in its README entry ({entries[path].strip()})")
    assert not missing, "\n".join(missing)


def test_help_of_every_command_shows_no_type_beside_a_flag() -> None:
    """Typer 0.29's rich help printed ``--json <bool>`` and ``--help <bool>``, as if they took a value."""
    root = typer.main.get_command(app)
    paths = [*_groups(root), *(path for path, _ in _commands(root))]
    assert len(paths) > 30
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output and "<bool>" not in result.output, (path, result.output)
    assert "<int>" in runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "120"}).output  # a value's type stays


def test_preflight_report_prints_a_hostile_subject_and_sample_address_as_written() -> None:
    """What preflight quotes back (the subject, a link's address, the sample reader) is data."""
    from newsletter.preflight.command import print_report
    from newsletter.preflight.model import Check, PreflightReport

    report = PreflightReport(
        (Check("subject", "warn", f"the subject “{HOSTILE}” is long", HOSTILE),), campaign_id=3, sample_email=HOSTILE
    )
    stream = io.StringIO()
    print_report(report, Console(file=stream, width=1000, force_terminal=True, color_system="truecolor", emoji=False))
    raw = stream.getvalue()
    assert "\x1b]8;" not in raw and "\x1b" not in SGR.sub("", raw)
    assert f"the subject “{SHOWN}” is long" in SGR.sub("", raw)
