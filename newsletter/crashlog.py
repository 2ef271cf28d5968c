"""What the ``newsletter`` command does with an error that is not a user's mistake: a bug.

A person gets one line (what broke, and where the full trace is), never a screen of Python; the
trace goes to a crash log a maintainer can be sent. The log lives in the XDG state folder
(``$XDG_STATE_HOME/newsletter/``, by default ``~/.local/state/newsletter/``), or the temporary
folder when that cannot be written, and is readable by its owner alone (mode 0600): a trace can
quote addresses and names from the store. Passwords in store URLs are masked before writing.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

EXIT_BUG = 70  # EX_SOFTWARE (sysexits.h): an internal error, apart from a user's mistake (1)
MAX_MESSAGE = 300
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


def redact(text: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``, wherever it appears."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def crash_folders() -> list[Path]:
    """Where a crash log may go, in order of preference."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return [Path(state) / "newsletter", Path(tempfile.gettempdir())]


def _report(error: BaseException) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("newsletter")
    except PackageNotFoundError:
        ours = "unknown"
    trace = "".join(traceback.format_exception(error))
    head = (
        f"newsletter {ours}, Python {platform.python_version()} on {platform.platform()}\n"
        f"command: {' '.join(sys.argv)}\nwhen: {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
    )
    return redact(head + trace)


def write_crash_log(error: BaseException) -> Path | None:
    """Write ``error``'s full trace to a new file only its owner can read; None if no folder
    would take it (the one line then says so)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = _report(error)
    for folder in crash_folders():
        prefix = "crash" if folder.name == "newsletter" else "newsletter-crash"
        path = folder / f"{prefix}-{stamp}-{os.getpid()}.log"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(text)
        return path
    return None


def crash_line(error: BaseException, log: Path | None) -> str:
    """The one line a person reads: the kind of error, its first line, where the trace went."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = redact(lines[0]) if lines else ""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    what = f"unexpected {type(error).__name__}" + (f": {message}" if message else "")
    if log is None:
        folders = " or ".join(str(folder) for folder in crash_folders())
        return f"{what}; the full trace could not be written to {folders} (this is a bug: please report it)"
    return f"{what}; full trace written to {log} (this is a bug: please report it with that file)"
