"""The Jinja environment for email templates.

One environment per templates folder, cached: StrictUndefined (a typo is an error, never an
empty string), autoescape on for ``*.mjml.j2``/``*.html.j2`` and off for ``*.txt.j2``.
Per-render state (the link registry) travels in the render context as ``link_registry``, so
the cached environment is shared safely between renders and threads.

Template helpers:

``track(url, label, kind)``
    registers a click-tracked link and returns ``{public_url}/c/%%token%%/{position}``.
``fragment|linked(kind="article")``  (HTML templates)
    an Article paragraph/heading (safe inline HTML) with its links tracked, as markup.
``fragment|plain(kind="article")``  (text templates)
    the same fragment as plain text, links as ``label (tracked url)``.
``text|wrap(width=72)``, ``text|underline("=")``, ``date|longdate``
    plain-text layout and ``August 7, 2023``.

Placeholders are live only where the template puts them: in its own source text, and in the
values the render room marks :class:`LiveText` (``first_name``, ``first_name_html``, the
footer URLs, the subject and preheader given to ``render_campaign``, what ``track()``,
``|linked`` and ``|plain`` return). Every other value a template prints — the article's
title, byline, labels, the nurture copy — passes through :func:`_finalize`, which makes its
``%`` inert (``&#37;`` in HTML, a zero-width space after it in text): content can never
smuggle a ``%%token%%`` into the message.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    pass_context,
    pass_eval_context,
)
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from markupsafe import Markup, escape

from newsletter.render.links import LinkRegistry, fragment_text, tracked_html
from newsletter.render.personalise import LiveText, inert_html, inert_text
from newsletter.render.text import longdate, underline, wrap
from newsletter.render.theme import THEME

HTML_SUFFIXES = (".mjml.j2", ".html.j2")


def _autoescape(name: str | None) -> bool:
    return name is None or name.endswith(HTML_SUFFIXES)


def _registry(ctx: Context) -> LinkRegistry:
    registry: LinkRegistry = ctx["link_registry"]
    return registry


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: object) -> object:
    """Every ``{{ value }}``: content's ``%`` made inert; LiveText and Markup pass as they are.

    Markup is already HTML (``|linked`` made its content inert); LiveText is still escaped in
    HTML, as autoescape would, but keeps its placeholders."""
    if isinstance(value, Markup):
        return value
    if eval_ctx.autoescape:
        return Markup(escape(value)) if isinstance(value, LiveText) else Markup(inert_html(str(value)))
    return value if isinstance(value, LiveText) else inert_text(str(value))


@pass_context
def _track(ctx: Context, url: str, label: str, kind: str) -> LiveText:
    return LiveText(_registry(ctx).track(url, label, kind))


@pass_context
def _linked(ctx: Context, fragment: str, kind: str = "article") -> Markup:
    style = f"color:{THEME['link']};text-decoration:underline;"
    return tracked_html(fragment, _registry(ctx), kind, link_style=style)


@pass_context
def _plain(ctx: Context, fragment: str, kind: str = "article") -> LiveText:
    return fragment_text(fragment, _registry(ctx), kind)


def _wrap(text: str, width: int = 72) -> str:
    """``wrap`` that keeps a LiveText live (its content part is inert already)."""
    wrapped = wrap(text, width)
    return LiveText(wrapped) if isinstance(text, LiveText) else wrapped


def _underline(text: str, char: str = "-", width: int = 72) -> str:
    underlined = underline(text, char, width)
    return LiveText(underlined) if isinstance(text, LiveText) else underlined


@lru_cache(maxsize=16)
def environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
        finalize=_finalize,
    )
    env.globals.update(track=_track, theme=THEME)
    env.filters.update(linked=_linked, plain=_plain, wrap=_wrap, underline=_underline, longdate=longdate)
    return env


def text_template_name(template: str) -> str:
    """``newsletter.mjml.j2`` → ``newsletter.txt.j2``."""
    return template.removesuffix(".mjml.j2") + ".txt.j2"
