"""delivery: hands a campaign's batches to a transport and reads the answers.

Public face (import from here, not from the modules):

- what a transport is given and answers: ``CampaignMessage``, ``Recipient``, ``BatchOutcome``,
  ``TransportError`` with its ``ErrorKind`` (what the dispatcher does about it: pause, flag as
  ambiguous, drop the named recipients, split, slow down, retry, fail), ``Transport``;
- transports: ``SendGridTransport`` (v3 mail/send, ≤1000 recipients a request, substitutions
  per recipient) and ``OutboxTransport`` (one ``.eml`` file per recipient, for local runs);
- the pure builders they use: ``build_request_body`` (SendGrid JSON) and ``build_mime``
  (one recipient's RFC 5322 message); ``recipient_problem`` says why a recipient's header
  cannot be written (a line break in the name), which fails that row alone.

Transports take the ``personalise`` function as a parameter (``render.personalise``) instead
of importing ``render``: delivery knows the ledger and the providers, not templates.
"""

from newsletter.delivery.message import BatchOutcome, CampaignMessage, ErrorKind, Recipient, Transport, TransportError
from newsletter.delivery.mime import build_mime, recipient_problem
from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.sendgrid import SendGridTransport, build_request_body, encode_request_body

# The ledger dispatcher (dispatch.py) joins this face when it lands.

__all__ = [
    "BatchOutcome",
    "CampaignMessage",
    "ErrorKind",
    "OutboxTransport",
    "Recipient",
    "SendGridTransport",
    "Transport",
    "TransportError",
    "build_mime",
    "build_request_body",
    "encode_request_body",
    "recipient_problem",
]
