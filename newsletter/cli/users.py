"""``newsletter users add|list|set-role|disable|reset-password`` and ``newsletter audit``: staff
accounts and the audit log from the command line. Thin: parse, call the staff room's face, print.

A password is read hidden from the terminal (asked twice), or from standard input with
``--password-stdin`` (one line; for scripts); it is never an argument (it would sit in the shell's
history and the process list) and never printed or logged. Every change is recorded in the audit
log as ``cli:<login name>``, source ``cli``.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer

from newsletter.cli.common import current_settings, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.errors import UserError
from newsletter.staff import (
    MAX_LENGTH,
    ROLES,
    StaffUserInfo,
    add_user,
    check_email,
    check_new_password,
    check_role,
    disable_user,
    get_user,
    list_entries,
    list_users,
    set_password,
    set_role,
)
from newsletter.terminal_text import DataTable, esc

app = typer.Typer(
    help="Staff accounts for the coming browser console: add, list, change role, disable.", no_args_is_help=True
)

EmailArg = Annotated[str, typer.Argument(help="The staff member's email address.")]
RoleHelp = f"One of: {', '.join(ROLES)}."
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (one line), for scripts.")
]


def _read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or asked twice, hidden, at a terminal."""
    if from_stdin:
        raw = sys.stdin.buffer.read(MAX_LENGTH * 4 + 3)  # enough for MAX_LENGTH characters of UTF-8
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("not valid UTF-8 on standard input", where="password") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if "\n" in text or "\r" in text:
            raise UserError("one line on standard input, without a line break inside", where="password")
        return check_new_password(text)
    if not sys.stdin.isatty():
        raise UserError(
            "standard input is not a terminal, so the password cannot be asked; pipe it in with "
            "--password-stdin (the one-time set-password link comes with the browser console)",
            where="password",
        )
    first = check_new_password(getpass.getpass("Password: "))
    if getpass.getpass("Password (again): ") != first:
        raise UserError("the two entries differ; nothing was changed", where="password")
    return first


def _status(user: StaffUserInfo) -> str:
    return "active" if user.active else f"disabled {user.disabled_at:%Y-%m-%d %H:%M} UTC"


def _who(user: StaffUserInfo) -> str:
    return f"{esc(user.email)}" + (f" ({esc(user.name)})" if user.name else "")


@app.command("add")
def add_cmd(
    email: EmailArg,
    role: Annotated[str, typer.Option("--role", help=RoleHelp)],
    name: Annotated[str | None, typer.Option("--name", help="The person's name, as the console shows it.")] = None,
    password_stdin: StdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a staff account with a role and a password (asked twice, hidden, or --password-stdin)."""
    from newsletter.db import session_scope

    check_email(email), check_role(role)  # before the password is asked for
    settings = current_settings()
    password = _read_password(password_stdin)
    with session_scope(engine_for(settings)) as session:
        user = add_user(session, email, role, name=name, password=password)
    if as_json:
        print_json(user.to_dict())
        return
    out.print(f"Added {user.role} {_who(user)}, id {user.id}.", highlight=False)


@app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Every staff account: email, name, role, active or disabled, whether a password is set."""
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        users = list_users(session)
    if as_json:
        print_json([u.to_dict() for u in users])
        return
    if not users:
        out.print("No staff accounts yet; add one with: newsletter users add EMAIL --role admin")
        return
    table = DataTable("id", "email", "name", "role", "status", "password", "created", copy=("email",))
    for u in users:
        table.add_row(
            str(u.id),
            u.email,
            u.name or "",
            u.role,
            _status(u),
            "set" if u.password_set else "none",
            f"{u.created_at:%Y-%m-%d}",
        )
    out.print(table)


@app.command("set-role")
def set_role_cmd(
    email: EmailArg, role: Annotated[str, typer.Argument(help=RoleHelp)], as_json: JsonOpt = False
) -> None:
    """Change a staff member's role."""
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        user = set_role(session, email, role)
    if as_json:
        print_json(user.to_dict())
        return
    out.print(f"{_who(user)} is now {user.role}.", highlight=False)


@app.command("disable")
def disable_cmd(email: EmailArg, as_json: JsonOpt = False) -> None:
    """Disable an account: it can no longer sign in; its history stays."""
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        user = disable_user(session, email)
    if as_json:
        print_json(user.to_dict())
        return
    out.print(f"{_who(user)}: {_status(user)}.", highlight=False)


@app.command("reset-password")
def reset_password_cmd(email: EmailArg, password_stdin: StdinOpt = False, as_json: JsonOpt = False) -> None:
    """Set a new password (asked twice, hidden, or --password-stdin)."""
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        get_user(session, email)  # an unknown email is refused before the password is asked for
    password = _read_password(password_stdin)
    with session_scope(engine_for(settings)) as session:
        user = set_password(session, email, password)
    if as_json:
        print_json(user.to_dict())
        return
    out.print(f"New password set for {_who(user)}.", highlight=False)


def audit_log(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many entries, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The audit log, newest first: when, who, from where, which action, on what, with what outcome."""
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        entries = list_entries(session, limit)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        out.print("The audit log is empty.")
        return
    table = DataTable("when (UTC)", "actor", "source", "action", "target", "outcome", "detail", copy=("target",))
    for e in entries:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.source,
            e.action,
            e.target or "",
            e.outcome,
            json.dumps(e.detail, sort_keys=True) if e.detail else "",
        )
    out.print(table)
