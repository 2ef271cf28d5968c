"""Audiences: subscribers in (CSV import, consent, suppression) and segments out.

Public face (import from here, not from the modules):

* ``normalise_email(raw)`` → the stored form of an address, or ``InvalidEmail``;
  ``trusted_email(raw)``, the same form for an address already known good (the provider's, our
  store's): trimmed and lower-cased only (``audiences/emails.py`` says why there are two).
* ``import_subscribers(engine, path, *, tags, source, consent_text_version, progress, rejects,
  encoding)`` → ``ImportReport`` (``created``, ``updated``, ``duplicates_merged``, the first
  ``rejected`` as ``Rejection(line, email, reason)`` with ``rejected_count`` and ``rejects_file``
  for all of them, ``total_rows``, ``encoding``, ``notices``, ``to_dict()``);
  ``rejects_path_for(csv)`` is where the CLI writes the rejected rows.
* ``add_suppressions(db, rows)`` → how many were added: the one writer of the suppression list
  (unsubscribes, the webhook and imports all call it; ``ON CONFLICT DO NOTHING``, first reason kept).
* ``clean_name(raw)``: a first or last name as stored (one line, no control characters); the
  import and the preference page both use it.
* Segments (``audiences/*.yaml``, format in ``segments``): ``load_segment(name, directory)``,
  ``list_segments(directory)``, ``scan_segments(directory)`` (segments and errors), ``segment_condition(segment, now)``,
  ``segment_subscriber_ids(segment, now)``, ``count_segment(session, segment)``; ``Segment``,
  ``Rules``, ``SegmentError``, ``BUILTIN_ALL`` (the name of the built-in segment ``all``).
"""

from newsletter.audiences.emails import InvalidEmail, normalise_email, trusted_email
from newsletter.audiences.importer import ImportReport, Rejection, import_subscribers
from newsletter.audiences.names import NAME_MAX_LENGTH, clean_name
from newsletter.audiences.rejects import rejects_path_for
from newsletter.audiences.segment_sql import (
    CLICK_EVENT,
    CTA_LINK_KIND,
    OPEN_EVENT,
    count_segment,
    segment_condition,
    segment_subscriber_ids,
)
from newsletter.audiences.segments import (
    BUILTIN_ALL,
    AttributeRule,
    Rules,
    Segment,
    SegmentError,
    list_segments,
    load_segment,
    scan_segments,
)
from newsletter.audiences.suppression import add_suppressions

# The room's public names, listed here once (``segments`` and ``segment_sql`` keep no list of
# their own: what they do not start with ``_`` is what this re-exports).
__all__ = [
    "InvalidEmail",
    "normalise_email",
    "trusted_email",
    "ImportReport",
    "Rejection",
    "import_subscribers",
    "rejects_path_for",
    "add_suppressions",
    "NAME_MAX_LENGTH",
    "clean_name",
    "BUILTIN_ALL",
    "CLICK_EVENT",
    "CTA_LINK_KIND",
    "OPEN_EVENT",
    "AttributeRule",
    "Rules",
    "Segment",
    "SegmentError",
    "count_segment",
    "list_segments",
    "load_segment",
    "scan_segments",
    "segment_condition",
    "segment_subscriber_ids",
]
