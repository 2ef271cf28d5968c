"""Parts and headers: the structure mailbox providers and spam filters expect of a bulk sender."""

from __future__ import annotations

import re
from email.utils import getaddresses, parsedate_to_datetime

from newsletter.preflight.htmlscan import scan_html
from newsletter.preflight.model import Check, CheckContext, ParsedMessage, failed_on

MAX_LINE = 998  # RFC 5322 2.1.1, excluding CRLF
MIN_TEXT_SHARE = 0.3  # a "real" text part carries at least this share of the HTML's words
ONE_CLICK = "List-Unsubscribe=One-Click"


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    m = msg.message
    problems: list[tuple[str, str]] = []  # (what is wrong, where to fix it)
    details: dict[str, object] = {"content_type": m.get_content_type()}

    # --- parts ---------------------------------------------------------------------------
    html_words = len(scan_html(msg.html).visible_text.split()) if msg.html else 0
    text_words = len(msg.text.split())
    details.update(
        html_words=html_words,
        text_words=text_words,
        parts=[p.get_content_type() for p in m.walk() if not p.is_multipart()],
    )
    if m.get_content_type() != "multipart/alternative":
        problems.append(
            (
                f"the message is {m.get_content_type()}, not multipart/alternative",
                "build it with newsletter.delivery.build_mime (text part, then HTML part)",
            )
        )
    if not msg.has_text_part:
        problems.append(
            (
                (
                    ("the text/plain part is empty" if msg.empty_text_part else "there is no text/plain part")
                    + " (HTML-only mail is a spam signal and unreadable in text clients)"
                ),
                "give the template a text twin (templates/<name>.txt.j2)",
            )
        )
    elif html_words and text_words < MIN_TEXT_SHARE * html_words:
        problems.append(
            (
                f"the text part is not a real alternative: {text_words} words against the HTML's {html_words}",
                "render the full content in the text template (templates/<name>.txt.j2)",
            )
        )
    if not msg.has_html_part:
        problems.append(("there is no text/html part", "build the message with newsletter.delivery.build_mime"))
    if m.get_content_type() == "multipart/alternative":
        order = [p.get_content_subtype() for p in m.iter_parts()]
        if "plain" in order and "html" in order and order.index("plain") > order.index("html"):
            problems.append(
                (
                    "the HTML part comes before the text part; clients show the last one they can, so "
                    "text-capable clients would show plain text",
                    "attach text/plain first, text/html last (newsletter.delivery.build_mime does)",
                )
            )

    # --- headers -------------------------------------------------------------------------
    subject = str(m.get("Subject", "") or "").strip()
    if not subject:
        problems.append(("no Subject header", "give the campaign a subject (--subject)"))
    from_header = str(m.get("From", "") or "")
    senders = getaddresses([from_header]) if from_header else []
    from_name, from_addr = senders[0] if senders else ("", "")
    details["from"] = from_header
    if not from_addr:
        problems.append(("no From address", "set NEWSLETTER_FROM_EMAIL"))
    elif not from_name.strip():
        problems.append(
            (f"From has no display name ({from_addr}); readers see a bare address", "set NEWSLETTER_FROM_NAME")
        )
    if not str(m.get("Reply-To", "") or "").strip():
        problems.append(
            (
                "no Reply-To header: replies would go to the sending address",
                "set NEWSLETTER_REPLY_TO to a mailbox a person reads",
            )
        )
    date = m.get("Date")
    try:
        if not date or parsedate_to_datetime(str(date)) is None:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(("no valid Date header", "build the message with newsletter.delivery.build_mime"))

    domain = (ctx.sending_domain or from_addr.rpartition("@")[2]).lower()
    message_id = str(m.get("Message-ID", "") or "").strip()
    details["message_id"] = message_id
    id_match = re.fullmatch(r"<[^<>@\s]+@([^<>@\s]+)>", message_id)
    if not id_match:
        problems.append(("no well-formed Message-ID header", "build the message with newsletter.delivery.build_mime"))
    elif domain and id_match.group(1).lower() != domain:
        problems.append(
            (
                f"the Message-ID is on {id_match.group(1)}, not on the sending domain {domain}",
                "Message-IDs are made from NEWSLETTER_FROM_EMAIL's domain (newsletter.delivery.build_mime)",
            )
        )

    unsubscribe = str(m.get("List-Unsubscribe", "") or "")
    uris = re.findall(r"<([^<>]+)>", unsubscribe)
    details["list_unsubscribe"] = uris
    if not uris:
        problems.append(
            (
                "no List-Unsubscribe header (Gmail and Yahoo require one-click unsubscribe for bulk mail)",
                "build the message with newsletter.delivery.build_mime",
            )
        )
    elif not any(u.lower().startswith("https://") for u in uris):
        problems.append(
            (
                f"List-Unsubscribe has no https URL ({', '.join(uris)}); RFC 8058 one-click needs https",
                "set NEWSLETTER_PUBLIC_URL to your https tracking domain",
            )
        )
    post = " ".join(str(m.get("List-Unsubscribe-Post", "") or "").split())
    if post != ONE_CLICK:
        problems.append(
            (
                f"List-Unsubscribe-Post is {post!r}, not {ONE_CLICK!r}"
                if post
                else "no List-Unsubscribe-Post header (RFC 8058 one-click)",
                "build the message with newsletter.delivery.build_mime",
            )
        )

    # --- line length and transfer encoding -----------------------------------------------
    lines = msg.eml.split(b"\n")
    long_lines = [i + 1 for i, line in enumerate(lines) if len(line.rstrip(b"\r")) > MAX_LINE]
    details["longest_line"] = max((len(line.rstrip(b"\r")) for line in lines), default=0)
    if long_lines:
        problems.append(
            (
                f"{len(long_lines)} line(s) of the raw message exceed {MAX_LINE} characters "
                f"(first at line {long_lines[0]}); servers may break or reject them",
                "encode the HTML and text parts as quoted-printable (newsletter.delivery.build_mime does)",
            )
        )
    for part in m.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
        if cte in ("quoted-printable", "base64"):
            continue
        payload = part.get_payload()
        if isinstance(payload, str) and any(len(line) > MAX_LINE for line in payload.splitlines()):
            problems.append(
                (
                    f"the {part.get_content_type()} part has lines over {MAX_LINE} characters in {cte}",
                    "send it quoted-printable (newsletter.delivery.build_mime does)",
                )
            )

    if verdict := failed_on("mime", problems, details):
        return verdict
    return Check(
        "mime",
        "pass",
        f"multipart/alternative with a real text part ({text_words} words); From, Reply-To, "
        f"Date, Message-ID on {domain}, one-click List-Unsubscribe (https); lines within {MAX_LINE}",
        "",
        details,
    )
