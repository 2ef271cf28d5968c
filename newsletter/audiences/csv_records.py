"""The file's CSV records, each with the physical line it starts on, and a way out of an unclosed quote.

An unclosed quote makes ``csv`` read every following line into one value, up to the next quote
in the file: the rows in between are lost without a word. :class:`Records` and
:class:`Swallow` notice it and read those lines again as rows (see :class:`Records`).
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from newsletter.audiences.csv_layout import Layout, read_layout
from newsletter.audiences.emails import InvalidEmail, normalise_email
from newsletter.audiences.rejects import Rejection
from newsletter.errors import UserError

__all__ = ["Records", "Swallow", "first_line", "quote_opened", "read_header", "unclosed_quote"]


def _lines(source: Iterator[str], again: deque[str], taken: list[str]) -> Iterator[str]:
    """The file's physical lines for ``csv.reader``: those pushed back first, each remembered in
    ``taken`` (the lines of the record being read, cleared at each record)."""
    append = taken.append
    while again:
        line = again.popleft()
        append(line)
        yield line
    for line in source:
        append(line)
        yield line


class Records:
    """The file's CSV records, each with the physical line it starts on.

    When a record spans lines and one of the lines it swallowed reads, on its own, as a row
    (see :class:`Swallow`), the record is given up (:meth:`read_again_after`) and the lines
    after the one where its quote opened are read again as rows. Each line is read at most
    twice over: a swallow ends at the next quote, and the lines after it are read as they
    would have been.
    """

    def __init__(self, source: Iterator[str], delimiter: str) -> None:
        self.delimiter = delimiter
        self._source = source
        self._again: deque[str] = deque()
        self._taken: list[str] = []
        self._base = 0  # physical lines before the current reader's first
        self._reader = self._new_reader()

    def _new_reader(self) -> Any:
        return csv.reader(_lines(self._source, self._again, self._taken), delimiter=self.delimiter)

    @property
    def next_line(self) -> int:
        """The physical line the next record starts on."""
        read: int = self._reader.line_num
        return self._base + read + 1

    @property
    def last_line(self) -> int:
        """The physical line the last record read ended on."""
        read: int = self._reader.line_num
        return self._base + read

    def read(self) -> list[str]:
        """The next record; raises StopIteration at the end, ``csv.Error`` for one it cannot read."""
        self._taken.clear()
        return next(self._reader)

    def continuation(self) -> list[str]:
        """The physical lines of the last record after its first."""
        return self._taken[1:]

    def read_again_after(self, line: int, last_kept: int | None = None) -> None:
        """Give up the record that started on ``line``: the lines after ``last_kept`` (the line
        where its unclosed quote opened; by default ``line``) are read next."""
        last_kept = line if last_kept is None else last_kept
        self._again.extendleft(reversed(self._taken[last_kept - line + 1 :]))
        self._taken.clear()
        self._base = last_kept
        self._reader = self._new_reader()


class Swallow:
    """Tells a value that runs over lines because a quote was never closed from one that does
    so on purpose (a note with a line break): a line it took in reads as a row of the file on
    its own, with two or more values and an email address in the email column."""

    def __init__(self, layout: Layout, delimiter: str) -> None:
        self.email_at = layout.fields["email"]
        self.width = layout.width
        self.delimiter = delimiter

    def __call__(self, lines: Iterable[str]) -> bool:
        for line in lines:
            if "@" not in line:
                continue
            values = next(csv.reader([line], delimiter=self.delimiter), [])
            if 2 <= len(values) <= self.width and self.email_at < len(values) and _is_address(values[self.email_at]):
                return True
        return False


def _is_address(value: str) -> bool:
    try:
        normalise_email(value)
    except InvalidEmail:
        return False
    return True


def quote_opened(row: list[str], line: int) -> int:
    """The line where a swallowing record's unclosed quote opened: the value that did it is the
    last one with a line break (the swallow runs to the record's end), after the breaks before it."""
    spanning = max((i for i, value in enumerate(row) if "\n" in value), default=0)
    return line + sum(value.count("\n") for value in row[:spanning])


def unclosed_quote(row: list[str], email_at: int, line: int, opened: int, end: int) -> Rejection:
    """The rejection of a record given up for its unclosed quote (``opened``, running to ``end``)."""
    email = row[email_at].strip() if email_at < len(row) and "\n" not in row[email_at] else ""
    where = "this line" if opened == line else f"line {opened}"
    return Rejection(
        line,
        email or None,
        f'unclosed quote: the value that opens with " on {where} runs on to line {end}; this row is '
        f"skipped and the rows below it are read on their own",
    )


def first_line(sample: bytes, codec: str) -> str:
    """The first non-blank line of the sample, as text (to choose the separator)."""
    text = sample.decode(codec, errors="replace")
    return next((line for line in text.splitlines() if line.strip()), "")


def read_header(records: Records, name: str) -> Layout:
    """The layout from the first non-blank record; a :class:`UserError` if there is none."""
    header: list[str] = []
    try:
        while not header:
            header = records.read()
    except StopIteration:
        raise UserError("the file is empty: expected a CSV header with an email column", f"{name}: line 1") from None
    except csv.Error as error:
        raise UserError(f"not a CSV file ({error})", f"{name}: line {records.last_line}") from None
    return read_layout(header, f"{name}: line {records.last_line}")
