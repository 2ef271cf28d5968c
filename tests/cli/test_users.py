"""``newsletter users …`` and ``newsletter audit`` as people and scripts use them: real
subprocesses on both stores, the password piped in (``--password-stdin``), one-line refusals
naming the field, exit 1, and nothing written by a refused command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_runs import run_newsletter

GOOD = "tea kettle on the windowsill"


@pytest.fixture
def users(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    env = {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "users-test-key",
        "NEWSLETTER_PUBLIC_URL": "https://news.example.test",
        "USER": "tester",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }

    def run(*args: str, stdin: str | None = "") -> subprocess.CompletedProcess[str]:
        return run_newsletter(list(args), tmp_path, env, stdin=stdin)

    return run


def _json(result: subprocess.CompletedProcess[str]):  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_session_of_user_commands_and_its_audit_trail(users) -> None:  # type: ignore[no-untyped-def]
    added = users("users", "add", "Ann@Clinic.example", "--role", "marketer", "--name", "Ann Lee", "--password-stdin",
                  stdin=GOOD + "\n")  # fmt: skip
    assert added.returncode == 0 and added.stdout.strip() == "Added marketer ann@clinic.example (Ann Lee), id 1.", added
    bob = _json(users("users", "add", "bob@clinic.example", "--role", "director", "--password-stdin", "--json",
                      stdin=GOOD))  # fmt: skip
    assert bob["role"] == "director" and bob["password_set"] and bob["active"]
    assert users("users", "set-role", "bob@clinic.example", "marketer").stdout.strip() == (
        "bob@clinic.example is now marketer."
    )
    disabled = users("users", "disable", "BOB@clinic.example")
    assert disabled.returncode == 0 and "bob@clinic.example: disabled " in disabled.stdout
    reset = users(
        "users", "reset-password", "ann@clinic.example", "--password-stdin", stdin="another fine passphrase\n"
    )
    assert reset.stdout.strip() == "New password set for ann@clinic.example (Ann Lee).", reset

    listed = _json(users("users", "list", "--json"))
    assert [(u["email"], u["role"], u["active"]) for u in listed] == [
        ("ann@clinic.example", "marketer", True),
        ("bob@clinic.example", "marketer", False),
    ]
    table = users("users", "list")
    assert table.returncode == 0 and "ann@clinic.example" in table.stdout and "disabled" in table.stdout

    entries = _json(users("audit", "--json"))
    assert [(e["action"], e["target"]) for e in entries] == [
        ("user.set_password", "ann@clinic.example"),
        ("user.disable", "bob@clinic.example"),
        ("user.set_role", "bob@clinic.example"),
        ("user.add", "bob@clinic.example"),
        ("user.add", "ann@clinic.example"),
    ]
    assert {(e["actor"], e["source"], e["outcome"]) for e in entries} == {("cli:tester", "cli", "ok")}
    assert len(_json(users("audit", "--json", "--limit", "2"))) == 2
    human = users("audit")
    assert human.returncode == 0 and "user.set_role" in human.stdout and "cli:tester" in human.stdout
    everything = table.stdout + human.stdout + json.dumps(entries) + json.dumps(listed)
    assert GOOD not in everything and "argon2" not in everything


def test_empty_store_says_so(users) -> None:  # type: ignore[no-untyped-def]
    assert "No staff accounts yet" in users("users", "list").stdout
    assert users("audit").stdout.strip() == "The audit log is empty."


MISTAKES = [
    (["users", "add", "eve@clinic.example", "--role", "admin"], "", "error: password: standard input is not a terminal"),
    (["users", "add", "eve@clinic.example", "--role", "boss", "--password-stdin"], GOOD, "error: role: 'boss' is not a role"),
    (["users", "add", "eve@clinic.example", "--role", "admin", "--password-stdin"], "short\n",
     "error: password: at least 12 characters"),
    (["users", "add", "eve@clinic.example", "--role", "admin", "--password-stdin"], "qwerty123456\n",
     "error: password: one of the 10,000 most common passwords"),
    (["users", "add", "eve@clinic.example", "--role", "admin", "--password-stdin"], "y" * 100_000,
     "error: password: at most 1,024 characters"),
    (["users", "add", "eve@clinic.example", "--role", "admin", "--password-stdin"], GOOD + "\x00",
     "error: password: no NUL characters"),
    (["users", "add", "eve@clinic.example", "--role", "admin", "--password-stdin"], GOOD + "\nsecond line\n",
     "error: password: one line on standard input"),
    (["users", "add", "eve\x07@clinic.example", "--role", "admin", "--password-stdin"], GOOD, "error: email: "),
    (["users", "add", "ANN@clinic.example", "--role", "admin", "--password-stdin"], GOOD,
     "error: email: ann@clinic.example already has a staff account"),
    (["users", "disable", "nobody@clinic.example"], "", "error: email: no staff account with email nobody@clinic.example"),
    (["users", "set-role", "ann@clinic.example", "owner"], "", "error: role: 'owner' is not a role"),
    (["users", "reset-password", "nobody@clinic.example", "--password-stdin"], GOOD,
     "error: email: no staff account with email nobody@clinic.example"),
    (["users", "reset-password", "ann@clinic.example", "--password-stdin"], "short",
     "error: password: at least 12 characters"),
]  # fmt: skip


def test_each_mistake_is_one_line_exit_1_and_writes_nothing(users) -> None:  # type: ignore[no-untyped-def]
    assert (
        users("users", "add", "ann@clinic.example", "--role", "marketer", "--password-stdin", stdin=GOOD).returncode
        == 0
    )
    for args, stdin, says in MISTAKES:
        result = users(*args, stdin=stdin)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(says), (args, result)
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert [u["email"] for u in _json(users("users", "list", "--json"))] == ["ann@clinic.example"]
    assert [e["action"] for e in _json(users("audit", "--json"))] == ["user.add"]


def test_a_bad_limit_is_a_usage_error(users) -> None:  # type: ignore[no-untyped-def]
    assert users("audit", "--limit", "0").returncode == 2


def _at_a_terminal(args: list[str], env: dict[str, str], cwd: Path, answers: list[str]) -> tuple[int, str]:
    """Run ``python -m newsletter ARGS`` on a pseudo-terminal of its own, typing each answer after
    each prompt; its exit code and everything it wrote to the terminal."""
    import os
    import pty
    import sys
    import time

    from cli_runs import env_without_settings
    from repo_paths import REPO_DIR

    full_env = env_without_settings(env) | {"PYTHONPATH": str(REPO_DIR), "COLUMNS": "200"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, so getpass asks there
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "newsletter", *args], full_env)
    seen, pending, deadline = b"", list(answers), time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child has gone: the terminal is closed
            break
        if not chunk:
            break
        seen += chunk
        if pending and seen.count(b"Password") > len(answers) - len(pending):
            os.write(fd, (pending.pop(0) + "\n").encode())
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_at_a_terminal_the_password_is_asked_twice_hidden(tmp_path: Path, db_url: str) -> None:
    env = {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET_KEY": "k", "NEWSLETTER_PUBLIC_URL": "https://n.test"}
    add = ["users", "add", "ann@clinic.example", "--role", "admin"]
    code, said = _at_a_terminal(add, env, tmp_path, [GOOD, GOOD + "x"])
    assert code == 1 and "password: the two entries differ; nothing was changed" in said, said
    code, said = _at_a_terminal(add, env, tmp_path, [GOOD, GOOD])
    assert code == 0 and "Password (again):" in said and "Added admin ann@clinic.example" in said, said
    assert GOOD not in said  # never echoed


def test_at_a_terminal_a_bad_email_or_role_is_refused_before_the_password_is_asked(tmp_path: Path, db_url: str) -> None:
    env = {"NEWSLETTER_DATABASE_URL": db_url, "NEWSLETTER_SECRET_KEY": "k", "NEWSLETTER_PUBLIC_URL": "https://n.test"}
    for args, says in (
        (["users", "add", "not an email", "--role", "admin"], "email: "),
        (["users", "add", "ann@clinic.example", "--role", "owner"], "role: 'owner' is not a role"),
    ):
        code, said = _at_a_terminal(args, env, tmp_path, [])
        assert code == 1 and says in said and "Password" not in said, said
