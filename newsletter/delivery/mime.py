"""One recipient's campaign as a real RFC 5322 message (outbox files, SMTP, previews).

Policy: ``email.policy.SMTP``, i.e. the modern ``default`` policy with CRLF line ends. The
bytes are then exactly what goes on the wire to an SMTP server, and the same bytes saved as an
``.eml`` open in Thunderbird, Apple Mail, Outlook and ``email.message_from_bytes`` alike (all
of them read CRLF). Headers are folded at 78 columns; both parts are quoted-printable, so no
line exceeds 76 characters whatever the HTML holds (RFC 5322 caps lines at 998).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid

from newsletter.delivery.message import CampaignMessage, Recipient

#: The policy every message from this module carries (see the module docstring).
POLICY = email_policy.SMTP

Personalise = Callable[[str, Mapping[str, str]], str]


def build_mime(message: CampaignMessage, recipient: Recipient, *, personalise: Personalise,
               date: datetime | None = None) -> EmailMessage:
    """The personalised multipart/alternative message (text/plain, then text/html) for one recipient.

    ``personalise(content, values)`` fills the recipient's placeholders (``render.personalise``);
    ``date`` defaults to now (a naive datetime is taken as UTC). Raises ``ValueError`` for an
    address or header value that cannot be put in a message (for instance a line break).
    """
    values = recipient.substitutions
    when = date or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)

    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = personalise(message.subject, values)
    msg["From"] = Address(display_name=message.from_name or "", addr_spec=message.from_email)
    msg["To"] = Address(display_name=recipient.name or "", addr_spec=recipient.email)
    if message.reply_to:
        msg["Reply-To"] = Address(addr_spec=message.reply_to)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=message.sending_domain)
    # RFC 8058 one-click unsubscribe: an https URI in angle brackets plus the POST marker.
    msg["List-Unsubscribe"] = f"<{recipient.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Ids only: these headers travel with forwarded mail, so no address or name.
    msg["X-Newsletter-Campaign"] = str(message.campaign_id)
    msg["X-Newsletter-Delivery"] = str(recipient.delivery_id)
    msg["MIME-Version"] = "1.0"
    # Parts built as MIMEPart and attached: EmailMessage.add_alternative would build the HTML
    # part as a whole EmailMessage and give it a stray MIME-Version header of its own.
    msg.make_alternative()
    for subtype, body in (("plain", message.text), ("html", message.html)):
        part = MIMEPart(policy=POLICY)
        part.set_content(personalise(body, values), subtype=subtype, charset="utf-8", cte="quoted-printable")
        msg.attach(part)
    return msg
