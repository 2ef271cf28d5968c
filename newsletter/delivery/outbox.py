"""The local transport: every personalised message becomes an ``.eml`` file instead of an email.

Layout: ``{directory}/campaign-{campaign_id}/{delivery_id}.eml``. File names carry ledger ids
only, never an address or a name. Each file is written to a hidden temporary file in the same
folder and then renamed over its final name (``os.replace``, atomic on one file system), so a
reader or a crash never sees half a message: a ``.eml`` is either whole or absent. Sending the
same delivery again replaces its file, so a retried batch is harmless here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from email.errors import MessageError
from pathlib import Path

from newsletter.delivery.message import BatchOutcome, CampaignMessage, ErrorKind, Recipient, TransportError
from newsletter.delivery.mime import build_mime
from newsletter.delivery.sendgrid import check_batch
from newsletter.files import write_bytes_atomically


class OutboxTransport:
    """Writes each recipient's message as an RFC 5322 file; the message id is its Message-ID.

    ``personalise(content, values)`` fills each recipient's placeholders (``render.personalise``).
    ``fsync`` (default on) flushes each file and the folder to disk before the batch counts as
    sent, so a power cut cannot leave an empty file behind a successful answer; turn it off
    for throwaway folders in benchmarks.
    """

    name = "outbox"

    def __init__(
        self, directory: Path | str, *, personalise: Callable[[str, Mapping[str, str]], str], fsync: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._personalise = personalise
        self._fsync = fsync

    def campaign_dir(self, campaign_id: int) -> Path:
        return self.directory / f"campaign-{int(campaign_id)}"

    def path_for(self, campaign_id: int, delivery_id: int) -> Path:
        return self.campaign_dir(campaign_id) / f"{int(delivery_id)}.eml"

    def prepare(self, message: CampaignMessage, recipients: Sequence[Recipient]) -> None:
        """Nothing to make ahead: each recipient's message is built as it is written."""
        return None

    def send_batch(
        self, message: CampaignMessage, recipients: Sequence[Recipient], prepared: object | None = None
    ) -> BatchOutcome:
        check_batch(recipients, limit=None)  # same rule as SendGrid: one address, one delivery
        outcome = BatchOutcome(per_recipient_ids=True)  # each .eml has its own Message-ID
        if not recipients:
            return outcome
        folder = self.campaign_dir(message.campaign_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for r in recipients:
                try:
                    mime = build_mime(message, r, personalise=self._personalise)
                    data = mime.as_bytes()
                except (ValueError, TypeError, UnicodeError, MessageError) as error:
                    # This recipient cannot be put in a message at all (bad address, line
                    # break in a header): final for them, the rest of the batch goes on.
                    outcome.failed[r.delivery_id] = f"cannot build the message: {error}"
                    continue
                self._write_atomically(folder / f"{int(r.delivery_id)}.eml", data)
                outcome.sent[r.delivery_id] = mime["Message-ID"]
            if self._fsync:
                _fsync_dir(folder)
        except OSError as error:
            # Disk full, permissions: nothing is lost by trying again (files are replaced whole).
            raise TransportError(f"outbox {folder} not writable: {error}", kind=ErrorKind.RETRYABLE) from None
        return outcome

    def _write_atomically(self, path: Path, data: bytes) -> None:
        write_bytes_atomically(path, data, fsync=self._fsync)

    def close(self) -> None:
        """Nothing to release."""


def _fsync_dir(folder: Path) -> None:
    """Make the renames themselves durable (POSIX); a no-op where folders can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
