"""Import subscribers from a CSV file: validate every row, merge duplicates, upsert in chunks.

This module runs an import; the rest of it lives beside it, one concern a module:

* ``csv_layout``: the layouts recognised from the header (ours and Mailchimp's export);
* ``csv_records``: the file's records with their line numbers, and recovery from an unclosed quote;
* ``values``: the clean-up of one value (time zone, locale, date, tags, column widths);
* ``import_rules``: the rules, as pure functions (a row → a subscriber or a rejection; a chunk
  and what the store holds → what to write and what it counts as); the full list is there;
* ``import_writer`` and ``import_stores``: the chunk's transaction, on a thread of its own, and
  the per-store bulk writes; ``queries``: the statements they run.

Streaming: the file is read with ``csv.reader`` and handled in chunks of ``CHUNK_ROWS`` rows
(``PG_CHUNK_ROWS`` on PostgreSQL).
Each chunk is one transaction: one query for which addresses are already known or suppressed,
then its rows and tags: on SQLite one ``INSERT ... ON CONFLICT (email) DO UPDATE`` and one tag
insert with ``ON CONFLICT DO NOTHING``; on PostgreSQL one ``COPY`` into a temporary table and
one statement that writes both tables (see ``import_stores``). No ORM objects, and
nothing is kept from one chunk to the next but counters and rejections, so memory stays flat
whatever the file size, and the progress bar (bytes read) moves as chunks commit. A crash
mid-file therefore leaves the earlier chunks in; running the same import again is safe and
finishes the job, because every write is an upsert.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from newsletter.audiences.csv_layout import attribute_key
from newsletter.audiences.csv_records import Records, Swallow, first_line, quote_opened, read_header, unclosed_quote
from newsletter.audiences.import_rules import ImportRow, RowParser
from newsletter.audiences.import_writer import BackgroundWriter, ChunkWriter
from newsletter.audiences.rejects import Rejection, Rejections
from newsletter.audiences.textfile import SAMPLE_BYTES, choose_delimiter, choose_encoding, display_path
from newsletter.audiences.values import MAX_LENGTH, checked_tags, normalise_tag
from newsletter.db.dialect import is_postgres
from newsletter.errors import UserError

# attribute_key, display_path and normalise_tag live in csv_layout, textfile and values; they
# stay importable from here for the code that knew them here.
__all__ = [
    "CHUNK_ROWS",
    "PG_CHUNK_ROWS",
    "ImportReport",
    "Rejection",
    "attribute_key",
    "display_path",
    "import_subscribers",
    "normalise_tag",
]

CHUNK_ROWS = 2000
# PostgreSQL's chunk costs round trips (each a wake-up of the server and of the writer thread)
# and a commit: at 5,000 rows a 200,000-row import took 5-13% less time on a busy 2-core machine.
# SQLite, whose writer is Python work, was 5% slower with 5,000.
PG_CHUNK_ROWS = 5000


@dataclass
class ImportReport:
    path: str
    format: str  # "newsletter" (ours) or "mailchimp"
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates_merged: int = 0
    #: The first rejections by line (at most ``rejects.KEPT``); ``rejected_count`` counts them all
    #: and ``rejects_file`` has every one.
    rejected: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0
    rejects_file: str | None = None
    encoding: str = "UTF-8"
    #: Things the person should know although nothing failed (the file was not UTF-8).
    notices: list[str] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Distinct subscribers written (created or updated)."""
        return self.created + self.updated

    @property
    def all_rejected(self) -> bool:
        """The file had rows and not one of them went in."""
        return self.total_rows > 0 and self.rejected_count >= self.total_rows

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        data = asdict(self)
        data["imported"] = self.imported
        return data


@contextmanager
def _progress_bar(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
        bar.update(task, completed=total)


def import_subscribers(
    engine: Engine,
    path: Path,
    *,
    tags: Sequence[str] = (),
    source: str = "csv import",
    consent_text_version: str | None = None,
    progress: bool | None = None,
    rejects: Path | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import the CSV at ``path``; returns what happened, with the first rejected rows.

    ``tags`` are added to every imported row (the CLI's ``--tag``). ``progress`` shows a bar on
    stderr (by bytes read); None means "when stderr is a terminal". ``rejects``: a file that
    gets every rejected row (``line,email,reason``; see ``rejects``), else only the first are
    kept. ``encoding`` overrides the detection (see ``textfile``). Raises :class:`UserError`
    for a missing or unreadable file, one in no recognisable encoding, or one with no email column.
    """
    path = Path(path)
    name = display_path(path)
    extra_tags = checked_tags(tags)
    if len(source) > MAX_LENGTH["consent_source"]:
        raise UserError(f"longer than {MAX_LENGTH['consent_source']} characters", "consent source")
    if consent_text_version and len(consent_text_version) > MAX_LENGTH["consent_text_version"]:
        raise UserError(f"longer than {MAX_LENGTH['consent_text_version']} characters", "consent text version")
    if not path.exists():
        raise UserError("no such file", name)
    if not path.is_file():
        raise UserError("not a file", name)
    if rejects is not None and Path(rejects).resolve() == path.resolve():
        raise UserError("the rejected rows cannot be written over the file being imported", "--rejects")
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        raw = open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot read the file: {error.strerror}", name) from None
    with raw:
        sample = raw.read(SAMPLE_BYTES)
        chosen = choose_encoding(
            sample, complete=len(sample) < SAMPLE_BYTES, where=f"{name}: line 1", requested=encoding
        )
        raw.seek(0)
        # Undecodable bytes become U+FFFD and reject their row, not the whole file.
        text = io.TextIOWrapper(raw, encoding=chosen.codec, errors="replace", newline="")
        records = Records(text, choose_delimiter(first_line(sample, chosen.codec)))
        layout = read_header(records, name)
        report = ImportReport(path=name, format=layout.format, encoding=chosen.label)
        if chosen.notice:
            report.notices.append(f"{name}: {chosen.notice}")
        with Rejections(
            Path(rejects) if rejects is not None else None, display_path(Path(rejects)) if rejects is not None else name
        ) as rejected:
            writer = ChunkWriter(
                engine,
                layout.format,
                source=source,
                consent_text_version=consent_text_version,
                extra_tags=extra_tags,
                now=datetime.now(timezone.utc),
                reject=rejected.add,
            )
            parser = RowParser(layout, writer.now, chosen.label)
            with _progress_bar(progress, path.stat().st_size, f"Importing {path.name}") as advance:
                _read_rows(records, parser, writer, report, rejected.add, lambda: advance(raw.tell()))
    report.created, report.updated = writer.created, writer.updated
    report.duplicates_merged += writer.duplicates_merged
    report.rejected = rejected.first()
    report.rejected_count = rejected.count
    report.rejects_file = display_path(rejected.written_to) if rejected.written_to else None
    return report


def _read_rows(
    records: Records,
    parser: RowParser,
    writer: ChunkWriter,
    report: ImportReport,
    reject: Callable[[Rejection], None],
    advance: Callable[[], None],
) -> None:
    """Parse every record into chunks for the background writer; count rows, merge duplicates."""
    swallowed = Swallow(parser.layout, records.delimiter)
    email_at = parser.email_at
    chunk_rows = PG_CHUNK_ROWS if is_postgres(writer.engine) else CHUNK_ROWS
    chunk: dict[str, ImportRow] = {}
    in_chunk = 0
    with BackgroundWriter(writer) as background:
        while True:
            line = records.next_line
            try:
                row = records.read()
            except StopIteration:
                break
            except csv.Error as error:
                report.total_rows += 1
                reject(Rejection(line, None, f"unreadable CSV ({error}): an unclosed quote?"))
                records.read_again_after(line)
                continue
            if records.last_line > line and swallowed(records.continuation()):
                report.total_rows += 1
                opened = quote_opened(row, line)
                reject(unclosed_quote(row, email_at, line, opened, records.last_line))
                records.read_again_after(line, opened)
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            report.total_rows += 1
            parsed = parser.parse(row, line)
            if isinstance(parsed, Rejection):
                reject(parsed)
            else:
                earlier = chunk.get(parsed.email)
                if earlier is None:
                    chunk[parsed.email] = parsed
                else:
                    earlier.merge(parsed)
                    report.duplicates_merged += 1
            in_chunk += 1
            if in_chunk >= chunk_rows:
                background.write(chunk)
                chunk, in_chunk = {}, 0
                advance()
        background.write(chunk)
