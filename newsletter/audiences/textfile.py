"""Which encoding and which separator a subscriber file uses, told from its first 64 KiB.

Spreadsheets write "CSV" in several encodings: Excel on Windows writes Windows-1252 for "CSV
(Comma delimited)", UTF-8 with a byte-order mark for "CSV UTF-8", and UTF-16 with a BOM, tab
separated, for "Unicode Text". Read as UTF-8, the first has every accented name rejected and
the last every row. So the encoding is decided before reading, from a sample, in this order:

1. a byte-order mark (UTF-8, UTF-16, UTF-32) says it;
2. text that is UTF-8 is UTF-8 (a few bad bytes among valid UTF-8 accents are a damaged
   UTF-8 file: those rows are rejected, the file is not reinterpreted);
3. otherwise charset-normalizer looks at it: UTF-16/32 without a BOM is taken; Windows-1252
   (a superset of Latin-1's letters) is preferred when it reads the sample cleanly, because
   it is what a spreadsheet in the Americas and Western Europe writes and a guess between
   look-alike single-byte encodings from a few names is a coin toss; else the detector's best
   match. Binary data (a workbook, an image) and text no encoding reads cleanly are refused.

Anything but UTF-8 comes with a notice that names the encoding and shows a decoded name, so a
person can see at once whether the guess was right (and pass ``--encoding`` if not). The rest
of the file is streamed: only the sample is held whole.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import UserError

__all__ = ["SAMPLE_BYTES", "TextFormat", "choose_delimiter", "choose_encoding", "display_path"]

SAMPLE_BYTES = 64 * 1024

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_LABELS = {
    "cp1252": "Windows-1252",
    "latin_1": "Latin-1",
    "iso8859_1": "Latin-1",
    "mac_roman": "Mac Roman",
    "utf_16": "UTF-16",
    "utf_16_le": "UTF-16",
    "utf_16_be": "UTF-16",
    "utf_32": "UTF-32",
    "utf_32_le": "UTF-32",
    "utf_32_be": "UTF-32",
}
_WESTERN = "cp1252"
_CLEAN_ENOUGH = 0.1  # charset-normalizer's "chaos" (share of odd characters) for a clean read
_BINARY_HINT = "not a UTF-8 CSV file (an Excel workbook? save it as 'CSV UTF-8')"
_NON_ASCII_WORD = re.compile(r"[^\s,;\t\"]*[^\x00-\x7f][^\s,;\t\"]*")


@dataclass(frozen=True)
class TextFormat:
    """How to read the file: ``codec`` for Python, ``label`` for people, and what to tell them."""

    codec: str
    label: str
    notice: str | None = None


def choose_encoding(sample: bytes, *, complete: bool, where: str, requested: str | None = None) -> TextFormat:
    """The encoding of a file whose first bytes are ``sample`` (``complete``: the whole file).

    ``requested`` (the ``--encoding`` option) is used as given. Raises :class:`UserError`
    naming ``where`` for binary data or text in no recognisable encoding.
    """
    if requested:
        return _requested(requested)
    for bom, codec, label in _BOMS:
        if sample.startswith(bom):
            return TextFormat(codec, label)
    if _mostly_utf8(sample, complete):
        return TextFormat("utf-8-sig", "UTF-8")
    return _detected(sample, where)


def _requested(name: str) -> TextFormat:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise UserError(f"unknown encoding {name!r} (for example utf-8, cp1252, utf-16)", "--encoding") from None
    if codec == "utf-8":
        codec = "utf-8-sig"  # a BOM is skipped, not read as part of the first heading
    return TextFormat(codec, _LABELS.get(codec.replace("-", "_"), codec))


def _many_nuls(sample: bytes) -> bool:
    """NUL bytes are UTF-16/32 text or binary data; a stray one in a row only rejects that row."""
    return sample.count(0) * 10 > len(sample)


def _mostly_utf8(sample: bytes, complete: bool) -> bool:
    """UTF-8 all through, or valid UTF-8 accents outnumbering the bytes that are not."""
    if _many_nuls(sample):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    text = decoder.decode(sample, final=complete)  # a character cut at the sample's end waits
    if text.isascii():
        return True
    bad = sum(1 for ch in text if "\udc80" <= ch <= "\udcff")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    return bad == 0 or good >= bad


def _detected(sample: bytes, where: str) -> TextFormat:
    from charset_normalizer import (
        from_bytes,  # imported here: only a non-UTF-8 file needs it
    )

    best = from_bytes(sample).best()
    if best is None:
        raise UserError(_BINARY_HINT, where)
    codec = best.encoding
    if not codec.startswith(("utf_16", "utf_32")):
        if _many_nuls(sample):  # outside UTF-16/32: a binary file
            raise UserError(_BINARY_HINT, where)
        if _reads_cleanly(sample, _WESTERN):
            codec = _WESTERN
    label = _LABELS.get(codec, codec)
    text = sample.decode(codec, errors="replace")
    example = _NON_ASCII_WORD.search(text)
    shown = f" (a sample: {example.group()!r})" if example else ""
    notice = (
        f"not UTF-8: read as {label}{shown}. If that looks wrong, pass --encoding "
        f"(for example --encoding cp1251) or save the file as 'CSV UTF-8'."
    )
    return TextFormat(codec, label, notice)


def _reads_cleanly(sample: bytes, codec: str) -> bool:
    from charset_normalizer import from_bytes

    try:
        sample.decode(codec)
    except UnicodeDecodeError:
        return False
    match = from_bytes(sample, cp_isolation=[codec], threshold=_CLEAN_ENOUGH).best()
    return match is not None and match.chaos <= _CLEAN_ENOUGH


def choose_delimiter(first_line: str) -> str:
    """Comma, unless the header has none and is separated by tabs (Excel's "Unicode Text") or
    semicolons (Excel's "CSV" where the decimal mark is a comma)."""
    if "," in first_line:
        return ","
    if "\t" in first_line:
        return "\t"
    if ";" in first_line:
        return ";"
    return ","


def display_path(path: Path) -> str:
    """A path as the user should read it: relative to the working folder when inside it (the
    import's messages and the segment files' errors name files this way)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
