"""Subject and preheader: the two lines a reader sees before deciding to open."""

from __future__ import annotations

import re

from newsletter.preflight.htmlscan import clean_spacers, scan_html
from newsletter.preflight.model import Check, CheckContext, ParsedMessage, failing

MAX_SUBJECT = 80  # characters, exclusive: longer subjects are cut off in most inboxes
PROSE_MIN_WORDS = 8  # a paragraph of prose, not the brand line, title, byline or greeting


def _words(text: str) -> str:
    """Lower case, punctuation and ellipses gone, whitespace collapsed: for "is this a copy?"."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def paragraphs(text: str) -> list[str]:
    """A text part's paragraphs (blank-line separated, lines joined, underlines dropped)."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip() and not re.fullmatch(r"\s*[=\-_*~]{3,}\s*", line)]
        if lines:
            out.append(" ".join(" ".join(lines).split()))
    return out


def first_lines(text: str) -> list[str]:
    """What "the first line of text" can mean to a reader: the text part's first line, and the
    first paragraph of prose (the article's opening, after brand, title, byline and greeting)."""
    found = paragraphs(text)
    lines = found[:1]
    for paragraph in found:
        if len(paragraph.split()) >= PROSE_MIN_WORDS and re.search(r"[.!?…\"'”’)]$", paragraph):
            lines.append(paragraph)
            break
    return lines


def copies_opening(preheader: str, text: str) -> str | None:
    """The first line that the preheader merely repeats (all of it, or its start), if any."""
    wanted = _words(preheader)
    if not wanted:
        return None
    for line in first_lines(text):
        have = _words(line)
        if have and (have == wanted or have.startswith(wanted) or (len(have) >= 40 and wanted.startswith(have))):
            return line
    return None


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    problems: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    subject = " ".join(str(msg.message.get("Subject", "") or "").split())
    preheader = scan_html(msg.html).preheader if msg.html else None
    details: dict[str, object] = {"subject": subject, "subject_length": len(subject), "preheader": preheader}

    if not subject:
        problems.append(("the subject is empty", "give the campaign a subject (campaign create --subject)"))
    elif len(subject) >= MAX_SUBJECT:
        problems.append(
            (
                f"the subject is {len(subject)} characters; keep it under {MAX_SUBJECT} so inboxes do not cut it off",
                'shorten it (campaign create --subject "...")',
            )
        )

    wanted = clean_spacers(ctx.preheader or "")
    if not preheader:
        if wanted:
            problems.append(
                (
                    "the campaign has a preheader but the HTML does not carry it as hidden preview text",
                    'keep {% include "partials/preheader.mjml.j2" %} (<mj-preview>) in the campaign template',
                )
            )
        else:
            problems.append(
                (
                    "there is no preheader, so inboxes preview whatever text comes first",
                    'give the campaign a preheader (campaign create --preheader "...")',
                )
            )
    else:
        copied = copies_opening(preheader, msg.text)
        details["copies"] = copied
        if copied is not None:
            problems.append(
                (
                    f'the preheader repeats the opening of the message ("{copied[:80]}"), which inboxes show anyway',
                    "write a preheader that adds to the subject (campaign create --preheader)",
                )
            )
        if subject and _words(preheader) == _words(subject):
            warnings.append(("the preheader repeats the subject", "write a preheader that adds to the subject"))

    if problems:
        return failing("subject", problems, details)
    reason = f'subject of {len(subject)} characters; preheader "{preheader}" adds to it'
    if warnings:
        return Check("subject", "warn", reason + "; " + "; ".join(w for w, _ in warnings), warnings[0][1], details)
    return Check("subject", "pass", reason, "", details)
