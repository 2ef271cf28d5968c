"""Files and folders a person names on the command line (``--html F``, ``--screenshots DIR``…).

Checked before any work is done, so a mistyped folder is said at once (not after a preflight or
a report has run) in one line naming the path and what is wrong with it; and written through
here, so a write that still fails (a full disk, a folder without write permission) is one line
too, never an ``OSError`` traceback.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.errors import UserError
from newsletter.files import write_bytes_atomically


def _where(path: Path, option: str) -> str:
    return f"{option} {path}"


def check_output_file(path: Path, option: str) -> Path:
    """``path`` can be written as a file: it is not a folder and its folder exists."""
    folder = path.parent
    if path.is_dir():
        raise UserError(
            f"is a folder; give a file name such as {path / ('out' + (path.suffix or '.html'))}",
            where=_where(path, option),
        )
    if not folder.exists():
        raise UserError(f"folder {folder} does not exist", where=_where(path, option))
    if not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder", where=_where(path, option))
    return path


def write_output_file(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` whole to ``path`` (a temporary file renamed over it), or say why not."""
    check_output_file(path, option)
    try:
        write_bytes_atomically(path, data, fsync=False)
    except OSError as error:
        raise UserError(f"cannot write it: {error.strerror or error}", where=_where(path, option)) from None


def ensure_output_folder(path: Path, option: str) -> Path:
    """``path`` is a folder, made (with its parents) if need be; a file there is refused."""
    if path.exists() and not path.is_dir():
        raise UserError("is a file, not a folder", where=_where(path, option))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else f"cannot make it: {error.strerror or error}"
        raise UserError(reason, where=_where(path, option)) from None
    return path
