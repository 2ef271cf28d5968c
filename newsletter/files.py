"""Writing a file whole or not at all: every file the product hands to a person or a program
(outbox messages, staff mail, exports, reports) goes through here, so a crash or a full disk
never leaves half a file, or half of yesterday's file, behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomically(path: Path, write: Callable[[IO[bytes]], object], *, fsync: bool = True) -> None:
    """Call ``write`` with a binary handle on a temporary file beside ``path``, then rename it
    over ``path``. ``fsync`` also makes the content durable before the rename (the outbox and
    staff mail need it: the ledger says "sent" right after). Raises what ``write`` or the file
    system raise; the temporary file is gone either way."""
    fd, temporary = tempfile.mkstemp(
        dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: Path, data: bytes, *, fsync: bool = True) -> None:
    write_atomically(path, lambda handle: handle.write(data), fsync=fsync)
