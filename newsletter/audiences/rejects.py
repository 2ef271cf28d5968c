"""Rejected rows of an import: all of them to a file, a few of them in memory.

A file where every row is bad must not cost memory in proportion to its size (500,000
rejections held as objects, then as one JSON document, took 0.8 GB). So each rejection is
written as it is found to a CSV beside the input (``line,email,reason``), and only the first
:data:`KEPT` by line stay in memory for the summary and ``--json``, with the total count.

The file holds addresses: it is created 0600 (``tempfile.mkstemp``) and appears whole, by a
rename, when the import ends; a failed import leaves no half file behind. An import with no
rejections writes no file, and removes an earlier one of ours at that path (a file that starts
with our header), so the file beside a CSV always describes its last import.
"""

from __future__ import annotations

import csv
import heapq
import io
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from newsletter.errors import UserError

__all__ = ["KEPT", "Rejection", "Rejections", "rejects_path_for"]

#: Rejections kept in memory (the lowest line numbers), for the summary and ``--json``.
KEPT = 100
_HEADER = ["line", "email", "reason"]
#: A cell starting like a formula is kept as text with a leading apostrophe (OWASP's advice
#: against CSV injection): the email column holds whatever the file held.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Rejection:
    """A row that was not imported: its physical line, the email as written, and why."""

    line: int
    email: str | None
    reason: str


def rejects_path_for(csv_path: Path) -> Path | None:
    """Where an import of ``csv_path`` writes its rejected rows by default: ``people.csv`` →
    ``people.rejected.csv`` beside it (None for a path with no file name)."""
    if not csv_path.name or not csv_path.stem:
        return None
    return csv_path.with_name(f"{csv_path.stem}.rejected.csv")


class Rejections:
    """Collects rejections from the parser and the writer thread (``add`` takes a lock)."""

    def __init__(self, path: Path | None, where: str) -> None:
        self.path = path
        self.count = 0
        self._heap: list[tuple[int, int, Rejection]] = []  # (-line, -seq, r): the KEPT lowest lines
        self._lock = threading.Lock()
        self._temporary: Path | None = None
        self._handle: io.TextIOWrapper | None = None
        #: The file the rejections went to, once the import has ended with some.
        self.written_to: Path | None = None
        if path is not None:
            self._open(path, where)

    def _open(self, path: Path, where: str) -> None:
        if path.is_dir():
            raise UserError("is a folder: the rejected rows need a file name", where)
        folder = path.parent if str(path.parent) else Path(".")
        try:
            fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as error:
            raise UserError(
                f"cannot write the rejected rows there: {error.strerror} (choose another file with --rejects)", where
            ) from None
        self._temporary = Path(name)
        self._handle = io.TextIOWrapper(os.fdopen(fd, "wb"), encoding="utf-8", newline="")
        self._csv = csv.writer(self._handle)
        self._csv.writerow(_HEADER)

    def add(self, rejection: Rejection) -> None:
        with self._lock:
            self.count += 1
            entry = (-rejection.line, -self.count, rejection)
            if len(self._heap) < KEPT:
                heapq.heappush(self._heap, entry)
            elif entry > self._heap[0]:
                heapq.heapreplace(self._heap, entry)
            if self._handle is not None:
                self._csv.writerow([rejection.line, _cell(rejection.email), _cell(rejection.reason)])

    def first(self) -> list[Rejection]:
        """The kept rejections, by line."""
        with self._lock:
            return [entry[2] for entry in sorted(self._heap, reverse=True)]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._handle is None or self._temporary is None or self.path is None:
            return
        self._handle.close()
        if kind is None and self.count:
            os.replace(self._temporary, self.path)
            self.written_to = self.path
            return
        self._temporary.unlink(missing_ok=True)
        if kind is None and _ours(self.path):
            self.path.unlink()


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _ours(path: Path) -> bool:
    """Whether ``path`` is a rejects file written by an earlier import."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.readline().rstrip("\r\n") == ",".join(_HEADER)
    except (OSError, UnicodeDecodeError):
        return False
