"""Run ``newsletter ARGS`` the way a person does, in a process of its own, cheaply.

The test imports ``newsletter.cli`` once and forks a child per command, which sets its arguments,
environment and working folder and calls ``main()`` (the ``newsletter`` entry point), with its
stdout and stderr on real files. Forking spares each run Python's start-up and the product's
imports (about a second each). Used by the CLI's mistake table and the schema-upgrade tests.

Where a real start-up is the point (``python -m newsletter`` as installed, a script, a terminal's
colours), ``run_newsletter`` and ``run_process`` run a process of its own, and
``env_without_settings`` is the environment without the developer's own settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from repo_paths import REPO_DIR

CHILD_SECONDS = 60  # a child that has not finished by then (a server that started) is killed and fails its row


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def _child(args: list[str], cwd: Path, env: dict[str, str], out: int, err: int) -> None:
    """In the forked child: become ``newsletter ARGS`` and exit with its code."""
    code = 1
    try:
        signal.alarm(CHILD_SECONDS)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.argv = ["newsletter", *args]
        from newsletter.cli import main

        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if isinstance(done.code, str):
                print(done.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 (what Python itself prints for an uncaught exception)
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001,S110 (closed by the command: nothing left to flush)
                pass
        os._exit(code)


def run_many(cases: list[tuple[list[str], Path, dict[str, str]]], at_once: int = 3) -> list[Ran]:
    """Run each (args, cwd, env) in a forked child, ``at_once`` at a time; results in order."""
    import newsletter.cli  # noqa: F401  (imported once, here, for every child)

    results: dict[int, Ran] = {}
    running: dict[int, tuple[int, IO[bytes], IO[bytes]]] = {}
    pending = list(enumerate(cases))
    while pending or running:
        while pending and len(running) < at_once:
            index, (args, cwd, env) = pending.pop(0)
            out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed when the child is reaped)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(args, cwd, env, out.fileno(), err.fileno())
            running[pid] = (index, out, err)
        pid, status = os.waitpid(-1, 0)
        if pid not in running:
            continue
        index, out_file, err_file = running.pop(pid)
        texts = []
        for handle in (out_file, err_file):
            handle.seek(0)
            texts.append(handle.read().decode("utf-8", "replace"))
            handle.close()
        code = os.waitstatus_to_exitcode(status)
        results[index] = Ran(code, texts[0], texts[1] + (f"\n(killed by signal {-code})" if code < 0 else ""))
    return [results[i] for i in range(len(cases))]


def run_one(args: list[str], cwd: Path, env: dict[str, str]) -> Ran:
    return run_many([(args, cwd, env)], at_once=1)[0]


def base_env(url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_", "COLUMNS"))}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": url,
            "NEWSLETTER_SECRET_KEY": "mistakes-test-key",
            "NEWSLETTER_PUBLIC_URL": "https://news.example.test",
            "NEWSLETTER_OUTBOX_DIR": str(tmp / "outbox"),
            "XDG_STATE_HOME": str(tmp / "state"),
        }
    )
    return env


def run_newsletter(
    args: list[str],
    cwd: Path,
    env_extra: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m newsletter ARGS`` in a process of its own (a real start-up), without the
    caller's NEWSLETTER_/SENDGRID_ settings; ``stdin`` is piped in when given."""
    env = env_without_settings(env_extra or {})
    env["PYTHONPATH"] = str(REPO_DIR)
    env["COLUMNS"] = "200"
    return run_process([sys.executable, "-m", "newsletter", *args], cwd, env, timeout, stdin)


def run_process(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` in a process of its own with exactly ``env``; its code, stdout and stderr as text
    (a non-zero code is the answer under test, not an error)."""
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False, input=stdin
    )


def env_without_settings(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its NEWSLETTER_/SENDGRID_ settings (the developer's own
    must not leak into a test), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update(extra)
    return env
