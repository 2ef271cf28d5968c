"""The raw HTML document's head: ``<title>``, the author and published-date meta tags.

Why apart from :mod:`.html_format`: it reads the *unsanitised* document (the sanitiser drops the
head), taking text only, never markup, so it is safe; the article's body is read from the
sanitised markup by the block walker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from .sanitise import DROP_WITH_CONTENT

__all__ = ["HeadInfo", "read_head"]


@dataclass
class HeadInfo:
    """Facts from the raw document's head: <title>, author and date meta tags, with lines."""

    title: str | None = None
    author: str | None = None
    date_text: str | None = None
    date_line: int = 1


def read_head(document: str) -> HeadInfo:
    """Read <title>, ``meta name=author`` and a published-date meta/``<time>`` from raw HTML.

    Only text is taken from the raw document (never markup), so reading it unsanitised is safe.
    """
    reader = _HeadReader()
    reader.feed(document)
    reader.close()
    info = reader.info
    info.title = re.sub(r"\s+", " ", "".join(reader.title_parts)).strip() or None
    return info


class _HeadReader(HTMLParser):
    _DATE_META = {"article:published_time", "date", "dc.date", "pubdate", "publish-date"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.info = HeadInfo()
        self.title_parts: list[str] = []
        self._in_title = False
        self._title_seen = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: (value or "").strip() for name, value in attrs}
        if tag in DROP_WITH_CONTENT - {"title"}:
            self._skip += 1
        elif tag == "title" and not self._title_seen:
            self._in_title = True
        elif tag == "meta":
            self._meta(values)
        elif tag == "time" and values.get("datetime") and not self.info.date_text:
            self._set_date(values["datetime"])

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_WITH_CONTENT - {"title"} and self._skip:
            self._skip -= 1
        elif tag == "title" and self._in_title:
            self._in_title, self._title_seen = False, True

    def handle_data(self, data: str) -> None:
        if self._in_title and not self._skip:
            self.title_parts.append(data)

    def _meta(self, values: dict[str, str]) -> None:
        key = (values.get("name") or values.get("property") or "").lower()
        content = values.get("content", "")
        if not content:
            return
        if key == "author" and not self.info.author:
            self.info.author = re.sub(r"\s+", " ", content)
        elif key in self._DATE_META and not self.info.date_text:
            self._set_date(content)

    def _set_date(self, text: str) -> None:
        self.info.date_text = text
        self.info.date_line = self.getpos()[0]
