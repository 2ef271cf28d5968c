"""How a value that comes from data is shown on a terminal: literally, never as rich markup or
terminal control codes (:func:`visible`, :func:`esc`, :func:`plain`, :class:`DataTable`).

Below every room (it imports nothing from ``newsletter``), so the command line
(``newsletter/cli/``) and the rooms' own text printers (``reports.render_text``,
``preflight.command``) print data one way, without a room importing the command line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["DataTable", "esc", "plain", "visible"]

# Anyone can put text into the store: a reader sets their first name on the preference page, an
# article's title comes from a file, a provider writes the bounce reason. Rich reads ``[...]`` in
# a printed string as markup, so ``[/] x`` crashed ``leads list`` (MarkupError) and
# ``[link=https://evil.example]Zed[/link]`` printed "Zed" over a hidden terminal hyperlink; and a
# raw ESC in a value reaches the terminal as is (rich strips only BEL, BS, VT, FF and CR). Every
# value from data therefore goes through one of these three, never straight into a markup string.

_HIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_HIDDEN_BUT_NEWLINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(value: object, *, multiline: bool = False) -> str:
    """``value`` as text a terminal shows as written: control characters (ESC, CR, NUL…) and
    bidirectional overrides become ``\\x1b``-style escapes, so no value can move the cursor, open a
    hyperlink, recolour the screen or reorder what is shown. A newline is kept only for
    ``multiline`` fields (a note), so a name cannot forge a second output line."""
    text = "" if value is None else str(value)
    pattern = _HIDDEN_BUT_NEWLINE if multiline else _HIDDEN
    return pattern.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def esc(value: object, *, multiline: bool = False) -> str:
    """A data value to put inside a markup string (``f"[bold]{esc(title)}[/]"``): its ``[...]``
    are printed, not obeyed, and its control characters are shown (:func:`visible`)."""
    return escape(visible(value, multiline=multiline))


def plain(value: object, *, multiline: bool = False) -> Text:
    """A data value as a rich ``Text``: never parsed as markup or emoji codes, never highlighted
    (a URL in a name is not dressed up as a link), control characters shown."""
    return Text(visible(value, multiline=multiline))


class DataTable(Table):
    """A rich ``Table`` whose string cells are data, printed literally (:func:`plain`), so no one
    can forget to escape a name or a title in one of the many tables.

    ``copy`` names the columns a person copies into the next command (an id, a slug, an email):
    they keep their full width, and the other columns (a title, a subject, a note) shrink and wrap
    first. When the terminal is too narrow for that too (an 80-column terminal, a 74-character
    slug), each row is printed as a short block instead: the copy values on a line of their own,
    then the other columns as ``header: value``, wrapped; nothing is cut with an ellipsis.
    """

    #: the narrowest a shrinking column may get in table form (beyond this, the block form)
    SHRUNK = 8

    def __init__(self, *headers: str, copy: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        keep = set(copy)
        unknown = keep - set(headers)
        if unknown:
            raise ValueError(f"copy columns {sorted(unknown)} are not among the headers")
        self._copy = [i for i, header in enumerate(headers) if header in keep]
        for header in headers:
            self.add_column(header, overflow="fold" if header in keep else "ellipsis")

    def add_row(self, *cells: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(plain(c) if isinstance(c, (str, int, float)) else c for c in cells), **kwargs)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Rich's own shrinking (``Table._collapse_widths``) spares only fixed-width or ``no_wrap``
        columns, and cuts a ``no_wrap`` cell that does not fit: so each copy column gets the width
        of its longest value here, or the rows become blocks when even that cannot fit."""
        if not self._copy:
            yield from super().__rich_console__(console, options)
            return
        widest = [
            max((Measurement.get(console, options, cell).maximum for cell in [column.header, *column.cells]), default=1)
            for column in self.columns
        ]
        gaps = 3 * len(self.columns) + 1  # the default box: a border and one space each side per column
        needed = gaps + sum(w if i in self._copy else min(w, self.SHRUNK) for i, w in enumerate(widest))
        if needed > options.max_width:
            yield from self._blocks(options)
            return
        for index in self._copy:
            self.columns[index].width = widest[index]
        yield from super().__rich_console__(console, options)

    def _blocks(self, options: ConsoleOptions) -> RenderResult:
        from rich.padding import Padding

        if self.title:
            yield self.title
        rows = zip(*(list(column.cells) for column in self.columns), strict=False)
        for cells in rows:
            texts = [cell if isinstance(cell, Text) else plain(cell) for cell in cells]
            first = Text("  ").join(texts[i] for i in self._copy)
            first.overflow = "fold"
            yield first
            rest = Text(" · ").join(
                Text.assemble((f"{self.columns[i].header}: ", "dim"), text)
                for i, text in enumerate(texts)
                if i not in self._copy and text.plain
            )
            rest.overflow = "fold"
            yield Padding(rest, (0, 0, 0, 4))
