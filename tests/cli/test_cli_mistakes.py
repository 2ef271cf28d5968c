"""Every ordinary mistake gets one line naming the place, never a traceback (issue 14).

The table runs each command the way a person does, in a process of its own: the test imports
``newsletter.cli`` once and forks a child per row, which sets its arguments, environment and
working folder and calls ``main()`` (the ``newsletter`` entry point), with its stdout and stderr
on real files. Forking spares each row Python's start-up and the product's imports (about a
second each), so the whole table stays well under a minute on a busy two-core machine; one row
per kind of failure also runs through ``python -m newsletter`` itself (``test_entry_point…``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cli_runs import base_env, run_many, run_one, run_process
from newsletter.config import Settings
from newsletter.db import make_engine, models, session_scope, upgrade
from newsletter.errors import UserError
from repo_paths import REPO_DIR

REPO = REPO_DIR
SEED = REPO / "articles" / "000-ketamine-assisted-psychotherapy.txt"
UNREACHABLE_PG = "postgresql://clinic:hunter2secret@127.0.0.1:1/newsletter"


def prepare_store(url: str, tmp: Path) -> dict[str, Any]:
    """A store with the seed article, three subscribers, draft campaign 1 and sent campaign 2."""
    from newsletter.audiences import import_subscribers
    from newsletter.campaigns import create_campaign, import_article, send_campaign

    settings = Settings(
        database_url=url,
        secret_key="mistakes-test-key",
        outbox_dir=str(tmp / "outbox"),
        public_url="https://news.example.test",
        sendgrid_api_key=None,
    )
    engine = make_engine(url)
    upgrade(engine)
    people = tmp / "people.csv"
    people.write_text("email,first_name\nann@example.com,Ann\nbob@example.com,Bob\ncy@example.com,Cy\n")
    import_subscribers(engine, people, progress=False)
    with session_scope(engine) as session:
        slug = import_article(session, SEED).row.slug
        ids = [create_campaign(session, settings, article_slug=slug, segment="all").id for _ in range(2)]
    send_campaign(engine, settings, ids[1])
    engine.dispose()
    return {"slug": slug, "draft": ids[0], "sent": ids[1]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One SQLite store, files where folders belong and folders where files belong, a busy port."""
    tmp = tmp_path_factory.mktemp("mistakes")
    url = f"sqlite:///{tmp / 'newsletter.db'}"
    ids = prepare_store(url, tmp)
    (tmp / "a-file.txt").write_text("not a folder\n")
    (tmp / "a-folder.md").mkdir()
    (tmp / "a-folder.html").mkdir()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    yield {"tmp": tmp, "url": url, "busy": busy.getsockname()[1], **ids}
    busy.close()


def _table(w: dict[str, Any]) -> list[tuple[str, list[str], dict[str, str], str]]:
    """(label, arguments, environment overrides, what the one line must name)."""
    tmp = w["tmp"]
    missing, afile, adir = f"{tmp}/missing-dir", f"{tmp}/a-file.txt", f"{tmp}/a-folder.html"
    draft, sent, slug, busy = w["draft"], w["sent"], w["slug"], w["busy"]
    sqlite_missing = f"sqlite:///{missing}/x.db"
    return [
        # campaign preview / preflight: files and folders the person names
        (
            "preview --html, missing folder",
            ["campaign", "preview", str(draft), "--html", f"{missing}/p.html"],
            {},
            missing,
        ),
        (
            "preview --text, missing folder",
            ["campaign", "preview", str(draft), "--text", f"{missing}/p.txt"],
            {},
            missing,
        ),
        (
            "preview --eml, a file as its folder",
            ["campaign", "preview", str(draft), "--eml", f"{afile}/p.eml"],
            {},
            afile,
        ),
        ("preview --html, a folder", ["campaign", "preview", str(draft), "--html", adir], {}, adir),
        ("preflight --screenshots, a file", ["campaign", "preflight", str(draft), "--screenshots", afile], {}, afile),
        (
            "preflight --screenshots, under a file",
            ["campaign", "preflight", str(draft), "--screenshots", f"{afile}/s"],
            {},
            afile,
        ),
        # reports and exports
        ("report --html, missing folder", ["report", str(sent), "--html", f"{missing}/r.html"], {}, missing),
        ("trends --html, a folder", ["report", "--html", adir], {}, adir),
        ("report, unknown campaign", ["report", "999"], {}, "999"),
        ("leads export, missing folder", ["leads", "export", "--csv", f"{missing}/l.csv"], {}, missing),
        ("leads export, a folder", ["leads", "export", "--csv", adir], {}, adir),
        # reading files
        ("article import, missing file", ["article", "import", f"{missing}/a.md"], {}, f"{missing}/a.md"),
        ("article import, a folder", ["article", "import", f"{tmp}/a-folder.md"], {}, "a-folder.md"),
        ("subscribers import, missing file", ["subscribers", "import", f"{missing}/s.csv"], {}, "missing-dir/s.csv"),
        ("subscribers import, a folder", ["subscribers", "import", adir], {}, "a-folder.html"),
        # names and ids that do not exist
        ("segment count, unknown", ["segment", "count", "no-such-segment"], {}, "no-such-segment"),
        ("segment list, audiences a file", ["segment", "list"], {"NEWSLETTER_AUDIENCES_DIR": afile}, "a-file.txt"),
        (
            "campaign create, unknown article",
            ["campaign", "create", "--article", "no-such-slug", "--segment", "all"],
            {},
            "no-such-slug",
        ),
        (
            "campaign create, unknown segment",
            ["campaign", "create", "--article", slug, "--segment", "no-such-segment"],
            {},
            "no-such-segment",
        ),
        (
            "campaign create, unknown template",
            ["campaign", "create", "--article", slug, "--segment", "all", "--template", "nope.mjml.j2"],
            {},
            "nope.mjml.j2",
        ),
        ("campaign status, unknown id", ["campaign", "status", "999"], {}, "999"),
        ("campaign send, unknown id", ["campaign", "send", "999"], {}, "999"),
        ("campaign send, already sent", ["campaign", "send", str(sent), "--force"], {}, f"campaign {sent}"),
        (
            "campaign send, outbox a file",
            ["campaign", "send", str(draft), "--force"],
            {"NEWSLETTER_OUTBOX_DIR": afile},
            afile,
        ),
        (
            "campaign schedule, past time",
            ["campaign", "schedule", str(draft), "--at", "2001-01-01T09:00Z", "--force"],
            {},
            "--at",
        ),
        ("campaign pause, a draft", ["campaign", "pause", str(draft)], {}, f"campaign {draft}"),
        ("campaign resume, unknown id", ["campaign", "resume", "999"], {}, "999"),
        ("campaign cancel, already sent", ["campaign", "cancel", str(sent)], {}, f"campaign {sent}"),
        ("campaign resolve, unknown id", ["campaign", "resolve", "999", "--mark-sent"], {}, "999"),
        ("campaign retry-failed, unknown id", ["campaign", "retry-failed", "999"], {}, "999"),
        ("campaign rerender, unknown id", ["campaign", "rerender", "999"], {}, "999"),
        ("events prune, negative days", ["events", "prune", "--days", "-1"], {}, "--days"),
        (
            "events prune, garbage store",
            ["events", "prune"],
            {"NEWSLETTER_DATABASE_URL": "garbage"},
            "NEWSLETTER_DATABASE_URL",
        ),
        (
            "nurture tick, unreachable PostgreSQL",
            ["nurture", "tick"],
            {"NEWSLETTER_DATABASE_URL": UNREACHABLE_PG},
            "127.0.0.1:1",
        ),
        ("nurture simulate, unknown sequence", ["nurture", "simulate", "no-such-sequence"], {}, "no-such-sequence"),
        (
            "nurture enroll, unknown subscriber",
            ["nurture", "enroll", "nobody@example.com", "connect-today"],
            {},
            "nobody@example.com",
        ),
        ("leads show, unknown id", ["leads", "show", "999"], {}, "999"),
        ("leads update, unknown id", ["leads", "update", "999", "--status", "booked"], {}, "999"),
        ("leads add, not a subscriber", ["leads", "add", "nobody@example.com"], {}, "nobody@example.com"),
        # the store's address
        (
            "article list, mysql",
            ["article", "list"],
            {"NEWSLETTER_DATABASE_URL": "mysql://x/y"},
            "NEWSLETTER_DATABASE_URL",
        ),
        (
            "campaign list, garbage",
            ["campaign", "list"],
            {"NEWSLETTER_DATABASE_URL": "garbage"},
            "NEWSLETTER_DATABASE_URL",
        ),
        ("init, sqlite in a missing folder", ["init"], {"NEWSLETTER_DATABASE_URL": sqlite_missing}, missing),
        (
            "leads list, sqlite under a file",
            ["leads", "list"],
            {"NEWSLETTER_DATABASE_URL": f"sqlite:///{afile}/x.db"},
            afile,
        ),
        (
            "nurture status, sqlite file not a store",
            ["nurture", "status", "connect-today"],
            {"NEWSLETTER_DATABASE_URL": f"sqlite:///{afile}"},
            afile,
        ),
        (
            "subscribers import, unreachable PostgreSQL",
            ["subscribers", "import", str(tmp / "people.csv")],
            {"NEWSLETTER_DATABASE_URL": UNREACHABLE_PG},
            "127.0.0.1:1",
        ),
        (
            "worker, unreachable PostgreSQL",
            ["worker", "--exit-when-idle"],
            {"NEWSLETTER_DATABASE_URL": UNREACHABLE_PG},
            "127.0.0.1:1",
        ),
        (
            "serve, unreachable PostgreSQL",
            ["serve", "--port", str(_free_port())],
            {"NEWSLETTER_DATABASE_URL": UNREACHABLE_PG},
            "127.0.0.1:1",
        ),
        (
            "scheduler, unsupported store",
            ["scheduler"],
            {"NEWSLETTER_DATABASE_URL": "mysql://x/y"},
            "NEWSLETTER_DATABASE_URL",
        ),
        # ports
        ("serve, busy port", ["serve", "--port", str(busy)], {}, f"port {busy} is busy"),
        ("demo, busy port", ["demo", "--dir", f"{tmp}/demo", "--port", str(busy)], {}, f"port {busy} is busy"),
        ("demo, --dir a file", ["demo", "--dir", afile, "--no-serve"], {}, afile),
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_mistake_is_one_line_naming_the_place(world):
    """The whole table; every failing row is reported at once, with what the command printed."""
    table = _table(world)
    env = base_env(str(world["url"]), world["tmp"])
    ran = run_many([(args, world["tmp"], {**env, **extra}) for _, args, extra, _ in table])
    problems = []
    for (label, _, _, place), result in zip(table, ran, strict=True):
        said = result.out + result.err
        lines = result.lines()
        if "Traceback" in said or not 0 < result.code <= 3:
            problems.append(f"{label}: exit {result.code}, {said[-600:]!r}")
        elif len(lines) != 1 or place not in lines[0] or not lines[0].startswith("error: "):
            problems.append(f"{label}: expected one line naming {place!r}, got {lines!r}")
        elif "hunter2secret" in said:
            problems.append(f"{label}: the store's password was printed: {lines[0]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads a file whatever its mode; the folder-for-a-file rows cover it"
)
def test_an_unreadable_file_is_one_line(world):
    unreadable = Path(world["tmp"]) / "unreadable.csv"
    unreadable.write_text("email\nann@example.com\n")
    unreadable.chmod(0)
    result = run_one(
        ["subscribers", "import", str(unreadable)], world["tmp"], base_env(str(world["url"]), world["tmp"])
    )
    assert result.code == 1 and "Traceback" not in result.err
    assert len(result.lines()) == 1 and str(unreadable) in result.lines()[0]


def test_an_error_quoting_a_control_character_shows_it_and_does_not_obey_it(world):
    """A path (or a YAML value) in an error line is data: an escape sequence in it is shown as
    ``\\x1b``, so it cannot open a hidden hyperlink or move the cursor on the person's terminal."""
    crafted = Path(world["tmp"]) / "\x1b]8;;evil.example\x07click\x1b]8;;\x07.csv"
    result = run_one(["subscribers", "import", str(crafted)], world["tmp"], base_env(str(world["url"]), world["tmp"]))
    assert result.code == 1 and "Traceback" not in result.err
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert len(result.lines()) == 1 and "\\x1b]8;;evil.example" in result.lines()[0]


def test_entry_point_says_an_unreachable_store_in_one_line(tmp_path):
    """Through ``python -m newsletter`` itself, as installed: the store's host:port and reason, no password."""
    env = base_env(UNREACHABLE_PG, tmp_path)
    result = run_process([sys.executable, "-m", "newsletter", "campaign", "list"], tmp_path, env)
    assert result.returncode == 1, result.stderr
    said = (
        "error: NEWSLETTER_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:1 (database newsletter): "
        "Connection refused"
    )
    assert result.stderr.splitlines() == [said], result.stderr


def test_scheduler_script_says_a_bad_store_in_one_line(tmp_path):
    env = base_env("garbage", tmp_path)
    result = run_process([sys.executable, str(REPO / "scheduler.py")], tmp_path, env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = (
        "error: NEWSLETTER_DATABASE_URL: 'garbage' is not a store address; use sqlite:///path/to/newsletter.db "
        "or postgresql://user@host:5432/dbname"
    )
    assert [line for line in result.stderr.splitlines() if line.strip()] == [said]


# --- the store's address, said where the engine is made ---------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://x/y", "mysql stores are not supported; use sqlite:///path/to/newsletter.db or postgresql://"),
        ("garbage", "'garbage' is not a store address"),
        ("postgresql//clinic:hunter2secret@db/x", "'postgresql//clinic:***@db/x' is not a store address"),
        ("postgresql+psycopg2://u@127.0.0.1/x", "the postgresql+psycopg2 driver is not installed"),
    ],
)
def test_a_bad_store_address_is_a_user_error(url, says):
    if "psycopg2" in url and importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here")
    with pytest.raises(UserError) as refused:
        make_engine(url)
    assert refused.value.where == "NEWSLETTER_DATABASE_URL" and says in refused.value.message
    assert "hunter2secret" not in str(refused.value)


def test_an_unreachable_postgres_names_host_port_and_reason_never_the_password():
    engine = make_engine(UNREACHABLE_PG)
    with pytest.raises(UserError) as refused, engine.connect():
        pass
    assert str(refused.value) == (
        "NEWSLETTER_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:1 (database newsletter): Connection refused"
    )


def test_a_postgres_without_the_database_says_so(pg_url):
    from sqlalchemy.engine import make_url

    missing = make_url(pg_url).set(database="no_such_database_here").render_as_string(hide_password=False)
    with (
        pytest.raises(UserError, match='database "no_such_database_here" does not exist'),
        make_engine(missing).connect(),
    ):
        pass


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("missing-dir/x.db", "folder {tmp}/missing-dir does not exist"),
        ("a-file/x.db", "{tmp}/a-file is a file, not a folder"),
        ("a-folder", "{tmp}/a-folder is a folder, not a database file"),
        ("a-file", "{tmp}/a-file is not an SQLite database"),
    ],
)
def test_an_sqlite_store_that_cannot_be_opened_names_the_file_or_folder(tmp_path, path, says):
    (tmp_path / "a-file").write_text("plain text, not a database\n")
    (tmp_path / "a-folder").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / path}")
    with pytest.raises(UserError) as refused, engine.connect():
        pass
    assert refused.value.message.startswith(says.format(tmp=tmp_path)), refused.value.message


def test_errors_on_an_open_connection_are_not_translated(engine):
    """Only a connection that cannot be opened is the user's to fix; a failing statement is not,
    and its SQLAlchemy error (which callers retry on or report) is kept."""
    from sqlalchemy.exc import DBAPIError

    with engine.connect() as connection, pytest.raises(DBAPIError):
        connection.execute(text("SELECT * FROM no_such_table"))


def test_a_dropped_postgres_connection_is_still_replaced_by_pre_ping(pg_url):
    """The pool's pre-ping goes through the same error hook: a connection the server dropped is
    replaced quietly, not turned into a UserError."""
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    admin = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.begin() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        admin.dispose()


# --- order of checks, and wording ------------------------------------------------------------


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> dict[str, Any]:
    return {"tmp": tmp_path, "url": db_url, **prepare_store(db_url, tmp_path)}


def _campaign(url: str, campaign_id: int) -> models.Campaign:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            campaign = session.get(models.Campaign, campaign_id)
        assert campaign is not None
        return campaign
    finally:
        engine.dispose()


def test_schedule_refuses_a_past_time_before_running_the_preflight(store):
    """The preflight's overridden failures used to be printed (and --force recorded on the
    campaign) before "is in the past"."""
    env = base_env(str(store["url"]), store["tmp"])
    result = run_one(
        ["campaign", "schedule", str(store["draft"]), "--at", "2001-01-01T09:00Z", "--force"], store["tmp"], env
    )
    assert result.code == 1 and result.lines() == [
        "error: --at: 2001-01-01T09:00:00+00:00 is in the past; use `newsletter campaign send` to send now"
    ]
    campaign = _campaign(str(store["url"]), int(store["draft"]))
    assert campaign.status == "draft" and campaign.forced_by is None


def test_send_refuses_a_sent_campaign_before_running_the_preflight(store):
    env = base_env(str(store["url"]), store["tmp"])
    result = run_one(["campaign", "send", str(store["sent"]), "--force"], store["tmp"], env)
    sent = store["sent"]
    assert result.code == 1 and result.lines() == [
        f"error: campaign {sent}: is sent; only a draft or scheduled campaign can be sent"
    ]
    assert _campaign(str(store["url"]), int(sent)).forced_by is None


def test_send_with_a_file_for_the_outbox_folder_is_refused_before_the_ledger_is_built(store):
    env = {**base_env(str(store["url"]), store["tmp"]), "NEWSLETTER_OUTBOX_DIR": str(store["tmp"] / "people.csv")}
    result = run_one(["campaign", "send", str(store["draft"]), "--force"], store["tmp"], env)
    assert result.code == 1 and result.lines()[-1] == (
        f"error: NEWSLETTER_OUTBOX_DIR {store['tmp'] / 'people.csv'}: is a file, not a folder"
    ), result.err
    campaign = _campaign(str(store["url"]), int(store["draft"]))
    engine = make_engine(str(store["url"]))
    try:
        with session_scope(engine) as session:
            rows = session.query(models.Delivery).filter_by(campaign_id=campaign.id).count()
    finally:
        engine.dispose()
    assert campaign.status == "draft" and rows == 0


def test_schedule_names_the_scheduler_command_and_status_says_scheduled_once(store):
    env = base_env(str(store["url"]), store["tmp"])
    draft = store["draft"]
    scheduled = run_one(["campaign", "schedule", str(draft), "--at", "2099-01-01T09:00Z", "--force"], store["tmp"], env)
    assert scheduled.code == 0, scheduled.err
    assert "must be running: newsletter scheduler" in " ".join(scheduled.out.split())
    assert "scheduler.py" not in scheduled.out
    status = run_one(["campaign", "status", str(draft)], store["tmp"], env)
    first = " ".join(status.out.split("\n┏")[0].split())
    assert status.code == 0 and "is scheduled for 2099-01-01T09:00:00+00:00" in first, status.out
    assert "scheduled, scheduled" not in first


def test_a_refusal_names_the_campaign_once(store):
    """Not "error: campaign 2: campaign 2 is sent"."""
    env = base_env(str(store["url"]), store["tmp"])
    sent = str(store["sent"])
    ran = run_many([(["campaign", verb, sent], store["tmp"], env) for verb in ("pause", "resume", "cancel", "send")])
    for result in ran:
        (line,) = result.lines()
        assert (
            result.code == 1
            and line.startswith(f"error: campaign {sent}: is sent; ")
            and line.count(f"campaign {sent}") == 1
        ), line


# --- what escapes: one line and a crash log --------------------------------------------------


def _crash(monkeypatch, capsys, tmp_path: Path, run) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with pytest.raises(SystemExit) as stopped:
        run()
    err = capsys.readouterr().err
    code = stopped.value.code
    assert isinstance(code, int)
    return code, [line for line in err.splitlines() if line.strip()]


def test_an_unexpected_error_is_one_line_and_a_private_crash_log(monkeypatch, capsys, tmp_path):
    import newsletter.cli.common
    from newsletter.cli import main
    from newsletter.crashlog import EXIT_BUG

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug in postgresql://clinic:hunter2secret@db/news\nand a second line")

    monkeypatch.setattr(newsletter.cli.common, "load_settings", broken)  # what every command calls first
    monkeypatch.setattr(sys, "argv", ["newsletter", "article", "list"])
    code, lines = _crash(monkeypatch, capsys, tmp_path, main)
    assert code == EXIT_BUG and len(lines) == 1, lines
    logs = list((tmp_path / "state" / "newsletter").glob("crash-*.log"))
    assert len(logs) == 1
    assert lines[0] == (
        f"error: unexpected ZeroDivisionError: a bug in postgresql://clinic:***@db/news; full trace "
        f"written to {logs[0]} (this is a bug: please report it with that file)"
    )
    assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(logs[0].parent.stat().st_mode) == 0o700
    trace = logs[0].read_text()
    assert "Traceback (most recent call last)" in trace and "in broken" in trace and "ZeroDivisionError" in trace
    assert "command: newsletter article list" in trace and "hunter2secret" not in trace


def test_the_crash_log_falls_back_to_the_temporary_folder(monkeypatch, capsys, tmp_path):
    import newsletter.cli.common
    from newsletter.cli import main

    monkeypatch.setattr(newsletter.cli.common, "load_settings", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(sys, "argv", ["newsletter", "article", "list"])
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state folder would be\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(SystemExit):
        monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
        main()
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    (log,) = (tmp_path / "tmp").glob("newsletter-crash-*.log")
    assert str(log) in line and stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_scheduler_reports_a_bug_the_same_way(monkeypatch, capsys, tmp_path):
    import newsletter.scheduling
    from newsletter.cli import scheduler_main
    from newsletter.crashlog import EXIT_BUG

    def broken(_settings):  # type: ignore[no-untyped-def]
        raise RuntimeError("the scheduler broke")

    monkeypatch.setattr(newsletter.scheduling, "run_scheduler", broken)
    monkeypatch.chdir(tmp_path)
    code, lines = _crash(monkeypatch, capsys, tmp_path, scheduler_main)
    assert code == EXIT_BUG and len(lines) == 1 and "unexpected RuntimeError: the scheduler broke" in lines[0]
    assert list((tmp_path / "state" / "newsletter").glob("crash-*.log"))


def test_usage_errors_and_user_mistakes_are_not_crashes(monkeypatch, capsys, tmp_path):
    from newsletter.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "garbage")
    monkeypatch.setattr(sys, "argv", ["newsletter", "campaign", "status", "not-a-number"])
    assert _crash(monkeypatch, capsys, tmp_path, main)[0] == 2
    monkeypatch.setattr(sys, "argv", ["newsletter", "campaign", "list"])
    assert _crash(monkeypatch, capsys, tmp_path, main)[0] == 1
    assert not (tmp_path / "state").exists()
