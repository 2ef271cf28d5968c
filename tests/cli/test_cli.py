"""The command as people and scripts use it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_runs import run_newsletter as run
from repo_paths import REPO_DIR

REPO = REPO_DIR


@pytest.fixture
def workdir(tmp_path: Path, db_url: str) -> tuple[Path, dict[str, str]]:
    return tmp_path, {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "cli-test-key",
        "NEWSLETTER_PUBLIC_URL": "https://news.example.test",
    }


def _json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_full_flow_by_command_line(workdir, seed_article_path):
    cwd, env = workdir
    assert run(["init"], cwd, env).returncode == 0
    article = _json(run(["article", "import", str(seed_article_path), "--json"], cwd, env))
    csv = cwd / "people.csv"
    csv.write_text("email,first_name,tags\nann@example.com,Ann,ketamine\nBOB@Example.com,Bob,\nnot-an-email,X,\n")
    imported = run(["subscribers", "import", str(csv), "--tag", "newsletter", "--json"], cwd, env)
    assert imported.returncode == 3, imported.stderr  # done, but a row was rejected
    report = json.loads(imported.stdout)
    assert report["created"] == 2 and [r["line"] for r in report["rejected"]] == [4]
    assert _json(run(["segment", "count", "all", "--json"], cwd, env)) == {"segment": "all", "count": 2}
    created = _json(
        run(
            ["campaign", "create", "--article", article["slug"], "--segment", "all", "--subject", "Hello", "--json"],
            cwd,
            env,
        )
    )
    eml = cwd / "preview.eml"
    assert run(["campaign", "preview", str(created["id"]), "--eml", str(eml)], cwd, env).returncode == 0
    assert b"multipart/alternative" in eml.read_bytes()
    sent = _json(run(["campaign", "send", str(created["id"]), "--json"], cwd, env))
    assert sent["sent"] == 2 and sent["transport"] == "outbox"
    status = _json(run(["campaign", "status", str(created["id"]), "--json"], cwd, env))
    assert {k: status[k] for k in ("queued", "in_flight", "sent", "failed", "ambiguous", "suppressed")} == {
        "queued": 0,
        "in_flight": 0,
        "sent": 2,
        "failed": 0,
        "ambiguous": 0,
        "suppressed": 0,
    }
    report = _json(run(["report", str(created["id"]), "--json"], cwd, env))
    for key in (
        "campaign_id",
        "recipients",
        "sent",
        "failed",
        "delivered",
        "bounced",
        "opens",
        "clicks",
        "unsubscribes",
        "complaints",
        "leads",
    ):
        assert key in report
    assert set(report["opens"]) >= {"unique_human", "unique_machine", "total"}
    assert set(report["clicks"]) >= {"unique", "total", "cta_unique"}
    human = run(["report", str(created["id"])], cwd, env)
    assert human.returncode == 0 and "Connect today" in human.stdout


@pytest.mark.parametrize(
    "args, where",
    [
        (["campaign", "status", "999"], "campaign"),
        (["article", "import", "missing.txt"], "missing.txt"),
        (["segment", "count", "no-such-segment"], "no-such-segment"),
        (["campaign", "schedule", "1", "--at", "tomorrow"], "--at"),
        (["events", "prune", "--days", "-1"], "--days"),
        (["campaign", "resolve", "1"], "campaign resolve"),
    ],
)
def test_user_mistakes_are_one_line_without_traceback(workdir, args, where):
    cwd, env = workdir
    result = run(args, cwd, env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and where in lines[0]


def test_send_is_gated_by_preflight_unless_forced(workdir, seed_article_path):
    cwd, env = workdir
    env = {**env, "NEWSLETTER_PUBLIC_URL": "http://127.0.0.1:8000"}  # List-Unsubscribe must be https
    article = _json(run(["article", "import", str(seed_article_path), "--json"], cwd, env))
    csv = cwd / "people.csv"
    csv.write_text("email,first_name\nann@example.com,Ann\n")
    assert run(["subscribers", "import", str(csv)], cwd, env).returncode == 0
    created = _json(run(["campaign", "create", "--article", article["slug"], "--segment", "all", "--json"], cwd, env))
    refused = run(["campaign", "send", str(created["id"])], cwd, env)
    assert refused.returncode == 1 and "preflight failed" in refused.stderr and "Traceback" not in refused.stderr
    assert _json(run(["campaign", "status", str(created["id"]), "--json"], cwd, env))["sent"] == 0
    forced = run(["campaign", "send", str(created["id"]), "--force", "--json"], cwd, env)
    assert forced.returncode == 0, forced.stderr
    assert "overridden with --force" in forced.stderr and json.loads(forced.stdout)["sent"] == 1
    from newsletter.db import make_engine, models, session_scope

    with session_scope(make_engine(env["NEWSLETTER_DATABASE_URL"])) as session:
        assert "mime" in session.get(models.Campaign, created["id"]).forced_by


def test_every_command_has_help(tmp_path):
    for args in (["--help"], ["campaign", "send", "--help"], ["subscribers", "import", "--help"], ["demo", "--help"]):
        result = run(args, tmp_path)
        assert result.returncode == 0 and "Usage" in result.stdout


def test_usage_error_exits_2(tmp_path):
    assert run(["campaign", "send"], tmp_path).returncode == 2


def test_demo_without_serving(tmp_path):
    result = run(["demo", "--no-serve", "--dir", str(tmp_path / "demo")], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Sent" in result.stdout
    outbox = list((tmp_path / "demo" / "outbox").glob("campaign-1/*.eml"))
    assert len(outbox) >= 250
    report = json.loads(run(["report", "1", "--json"], tmp_path / "demo").stdout)
    assert report["sent"] == len(outbox)
    # The simulated readers went through the tracking rules: people and machines both present,
    # each person's CTA click a lead, an alert per lead, and the director's HTML report written.
    leads = json.loads(run(["leads", "list", "--json"], tmp_path / "demo").stdout)
    assert report["opens"]["unique_human"] > 0 and report["opens"]["unique_machine"] > 0
    assert len(leads) == report["leads"] > 0
    assert sum(lead["status"] == "booked" for lead in leads) == 3
    assert len(list((tmp_path / "demo" / "outbox" / "staff").glob("lead-alert-*.eml"))) == len(leads)
    html = (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "http://" not in html.split("<body", 1)[1].split("Connect today", 1)[0]


def test_campaign_list_shows_newsletters_and_nurture_steps_only_when_asked(workdir, seed_article_path):
    from newsletter.db import make_engine, models, session_scope

    cwd, env = workdir
    assert run(["init"], cwd, env).returncode == 0
    article = _json(run(["article", "import", str(seed_article_path), "--json"], cwd, env))
    newsletter = _json(
        run(["campaign", "create", "--article", article["slug"], "--segment", "all", "--json"], cwd, env)
    )
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    with session_scope(engine) as session:
        step = models.Campaign(
            kind="nurture", name="connect-today step 1", subject="A note", segment="all", template="t", html="", text=""
        )
        session.add(step)
        session.flush()
        step_id = step.id
    engine.dispose()
    listed = _json(run(["campaign", "list", "--json"], cwd, env))
    assert [(c["id"], c["kind"]) for c in listed] == [(newsletter["id"], "newsletter")]
    everything = _json(run(["campaign", "list", "--all", "--json"], cwd, env))
    assert [(c["id"], c["kind"]) for c in everything] == [(step_id, "nurture"), (newsletter["id"], "newsletter")]
    human = run(["campaign", "list", "--all"], cwd, env)
    assert human.returncode == 0 and "nurture" in human.stdout and "kind" in human.stdout
