"""render_campaign: Article + Brand → the compiled campaign, once, placeholders left in."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, TemplateNotFound, TemplateSyntaxError

from newsletter import resources
from newsletter.content import Article, Section
from newsletter.render.compile import check_output, compile_mjml
from newsletter.render.errors import RenderError, display_path, template_frame
from newsletter.render.jinja_env import environment, text_template_name
from newsletter.render.links import LinkRegistry
from newsletter.render.model import Brand, RenderedCampaign
from newsletter.render.personalise import FIRST_NAME, FIRST_NAME_HTML, TOKEN, LiveText
from newsletter.render.text import longdate

#: A teaser (for articles longer than ``brand.teaser_words``) keeps whole paragraphs from the
#: start until it has at least this many words.
TEASER_TARGET_WORDS = 180
DEFAULT_CTA_TEXT = (
    "Whatever you are carrying right now, you don't have to carry it alone. "
    "Our team at {brand_name} is here to listen and to help you find care that fits you."
)
DEFAULT_CTA_LABEL = "Connect today"
READ_MORE_LABEL = "Read the full article"


def render_campaign(
    article: Article,
    brand: Brand,
    *,
    subject: str,
    preheader: str,
    template: str = "newsletter.mjml.j2",
    templates_dir: Path | None = None,
) -> RenderedCampaign:
    """Render ``template`` (MJML + Jinja) and its text twin for ``article``, compile the MJML once.

    ``subject`` and ``preheader`` are plain strings, never templates; the subject may hold
    ``%%first_name%%``: they are the operator's words, like a template's. A subject or preheader
    made from the article's content must be passed through
    :func:`~newsletter.render.personalise.inert_text` first. The article's own strings are
    content: any ``%%...%%`` in them reaches the reader as text, never as a placeholder. Raises
    :class:`RenderError` naming the template file and line.
    """
    subject = _plain_string("subject", subject)
    preheader = _plain_string("preheader", preheader)
    if not template.endswith(".mjml.j2"):
        raise RenderError(
            f"the campaign template must be an MJML template named *.mjml.j2, got {template!r}", where="template"
        )
    folder = Path(templates_dir) if templates_dir is not None else resources.templates_dir()
    if not folder.is_dir():
        raise RenderError(f"the templates folder {folder} does not exist", where=str(folder))
    folder = folder.resolve()
    text_template = text_template_name(template)
    env = environment(folder)

    registry = LinkRegistry(brand.public_url)
    context = _context(article, brand, subject, preheader, registry)
    mjml = _render(env, template, context, folder)  # the HTML part registers links first ...
    text = _render(env, text_template, context, folder)  # ... the text part reuses their positions
    html = compile_mjml(mjml, template=template, templates_dir=folder)
    check_output(html, text, template=template, text_template=text_template, templates_dir=folder)
    return RenderedCampaign(
        subject=subject, preheader=preheader, html=html, text=text, links=registry.links, template=template
    )


def _plain_string(name: str, value: str) -> str:
    value = " ".join(str(value).split())
    for marker in ("{{", "{%", "{#"):
        if marker in value:
            raise RenderError(f"the {name} is plain text, not a template: remove {marker!r}", where=name)
    return value


def _context(article: Article, brand: Brand, subject: str, preheader: str, registry: LinkRegistry) -> dict[str, Any]:
    sections, is_teaser = _body(article, brand.teaser_words)
    base = brand.public_url
    byline = " · ".join(
        part for part in (f"By {article.author}" if article.author else "", longdate(article.published)) if part
    )
    signoff_name = article.signoff.name if article.signoff else f"The {brand.brand_name} team"
    signoff_role = article.signoff.role if article.signoff else None
    return {
        "article": article,
        "brand": brand,
        # LiveText: placeholders in these are meant (jinja_env makes every other value inert).
        "subject": LiveText(subject),
        # In the HTML part the name must be the escaped variant (<title>, the hidden preheader).
        "subject_html": LiveText(subject.replace(FIRST_NAME, FIRST_NAME_HTML)),
        "preheader": LiveText(preheader),
        "preheader_html": LiveText(preheader.replace(FIRST_NAME, FIRST_NAME_HTML)),
        "first_name": LiveText(FIRST_NAME),
        "first_name_html": LiveText(FIRST_NAME_HTML),
        "byline": byline,
        "sections": sections,
        "is_teaser": is_teaser,
        "read_more_url": f"{base}/a/{quote(article.slug, safe='')}",
        "read_more_label": READ_MORE_LABEL,
        "cta_text": article.cta.text if article.cta else DEFAULT_CTA_TEXT.format(brand_name=brand.brand_name),
        "cta_label": article.cta.label if article.cta else DEFAULT_CTA_LABEL,
        "signoff_name": signoff_name,
        "signoff_role": signoff_role,
        "unsubscribe_url": LiveText(f"{base}/u/{TOKEN}"),
        "preferences_url": LiveText(f"{base}/p/{TOKEN}"),
        "web_url": LiveText(f"{base}/w/{TOKEN}"),
        "open_pixel_url": LiveText(f"{base}/o/{TOKEN}.gif"),
        "link_registry": registry,
    }


def _body(article: Article, teaser_words: int) -> tuple[tuple[Section, ...], bool]:
    """The sections to send: all of them, or a teaser of whole paragraphs for a long article."""
    if article.word_count <= teaser_words:
        return article.sections, False
    kept: list[Section] = []
    words = 0
    for section in article.sections:
        paragraphs: list[str] = []
        for paragraph in section.paragraphs:
            if words >= TEASER_TARGET_WORDS:
                break
            paragraphs.append(paragraph)
            words += len(paragraph.split())
        if paragraphs:
            kept.append(Section(section.heading, tuple(paragraphs)))
        if words >= TEASER_TARGET_WORDS:
            break
    return tuple(kept), True


def _render(env: Environment, name: str, context: dict[str, Any], folder: Path) -> str:
    """Render one template; every template mistake becomes a RenderError naming file and line."""
    try:
        template = env.get_template(name)
    except TemplateNotFound as exc:
        raise RenderError(f"template {exc.name!r} not found in {folder}", where=display_path(folder / name)) from None
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, folder) from None
    try:
        return template.render(context)
    except TemplateSyntaxError as exc:  # in an included partial, compiled on first use
        raise _syntax_error(exc, folder) from None
    except TemplateNotFound as exc:  # a missing partial: name it and the line that includes it
        frame = template_frame(exc.__traceback__, folder)
        where = f"{frame[0]}:{frame[1]}" if frame else display_path(folder / name)
        raise RenderError(f"template {exc.name!r} (included) not found in {folder}", where=where) from None
    except RenderError as exc:  # raised by a helper such as track(): add the template line
        frame = template_frame(exc.__traceback__, folder)
        if frame is None or exc.where:
            raise
        raise RenderError(exc.message, where=f"{frame[0]}:{frame[1]}") from None
    except Exception as exc:  # StrictUndefined, a wrong call, a bad filter argument ...
        frame = template_frame(exc.__traceback__, folder)
        if frame is None:
            raise  # not a template mistake: a bug, keep the traceback
        raise RenderError(f"{type(exc).__name__}: {exc}", where=f"{frame[0]}:{frame[1]}") from None


def _syntax_error(exc: TemplateSyntaxError, folder: Path) -> RenderError:
    path = exc.filename or str(folder / (exc.name or "?"))
    return RenderError(f"template syntax error: {exc.message}", where=f"{display_path(path)}:{exc.lineno}")
