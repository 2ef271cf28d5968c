"""One recipient's campaign as a real RFC 5322 message (outbox files, SMTP, previews).

Policy: ``email.policy.SMTP``, i.e. the modern ``default`` policy with CRLF line ends. The
bytes are then exactly what goes on the wire to an SMTP server, and the same bytes saved as an
``.eml`` open in Thunderbird, Apple Mail, Outlook and ``email.message_from_bytes`` alike (all
of them read CRLF). Headers are folded at 78 columns; both parts are quoted-printable, so no
line exceeds 76 characters whatever the HTML holds (RFC 5322 caps lines at 998).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email import policy as email_policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid

from newsletter.delivery.message import CampaignMessage, Recipient

#: The policy every message from this module carries (see the module docstring).
POLICY = email_policy.SMTP

Personalise = Callable[[str, Mapping[str, str]], str]


def build_mime(
    message: CampaignMessage, recipient: Recipient, *, personalise: Personalise, date: datetime | None = None
) -> EmailMessage:
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
    msg["From"] = _address(message.from_name, message.from_email, "the sender")
    msg["To"] = _address(recipient.name, recipient.email, f"delivery {recipient.delivery_id}")
    if message.reply_to:
        msg["Reply-To"] = _address(None, message.reply_to, "the reply-to")
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
    alternative: MIMEPart = msg  # typeshed's attach() takes only the parent's own class; any MIMEPart is valid
    for subtype, body in (("plain", message.text), ("html", message.html)):
        part = MIMEPart(policy=POLICY)
        part.set_content(personalise(body, values), subtype=subtype, charset="utf-8", cte="quoted-printable")
        alternative.attach(part)
    return msg


def recipient_problem(recipient: Recipient) -> str | None:
    """Why this recipient cannot be put in a ``To:`` header, or None (the usual case, decided
    without building anything). A name with a line break, stored before names were cleaned or
    written by hand, is the case in point: the dispatcher fails that row alone with this reason
    and sends the rest of its batch."""
    name, email = recipient.name, recipient.email
    if (name is None or name.isprintable()) and email.isascii() and email.isprintable():
        return None
    try:
        _address(name, email, f"delivery {recipient.delivery_id}")
    except ValueError as error:
        return str(error)
    return None


def _address(display_name: str | None, addr: str, whose: str) -> Address:
    """An Address with an internationalised domain in its ASCII (IDNA) form.

    Left alone, the library would write a non-ASCII domain as an RFC 2047 encoded word, which
    is not a valid address. A non-ASCII local part needs SMTPUTF8, which this message does not
    use: that is a ``ValueError``, as is anything unparseable. The address itself is kept out
    of the message because errors end up in logs.
    """
    if (
        display_name
        and not display_name.isprintable()
        and any(unicodedata.category(ch) in ("Cc", "Cs") for ch in display_name)
    ):
        # CR/LF would be refused below; NUL, ESC or TAB would be written into the header as they are.
        raise ValueError(
            f"{whose}: the subscriber's name has a line break or another control character, "
            "which cannot be written in a header: correct the name"
        )
    local, at, domain = addr.strip().rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{whose}: not an email address")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{whose}: the address's domain cannot be encoded") from None
    try:
        return Address(display_name=display_name or "", addr_spec=f"{local}@{domain}")
    except (HeaderParseError, ValueError, IndexError) as error:
        raise ValueError(f"{whose}: the address cannot be written in a header ({type(error).__name__})") from None
