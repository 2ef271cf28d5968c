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
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from newsletter.render.links import LinkRegistry, fragment_text, tracked_html
from newsletter.render.text import longdate, underline, wrap
from newsletter.render.theme import THEME

HTML_SUFFIXES = (".mjml.j2", ".html.j2")


def _autoescape(name: str | None) -> bool:
    return name is None or name.endswith(HTML_SUFFIXES)


def _registry(ctx: Context) -> LinkRegistry:
    return ctx["link_registry"]  # type: ignore[no-any-return]


@pass_context
def _track(ctx: Context, url: str, label: str, kind: str) -> str:
    return _registry(ctx).track(url, label, kind)


@pass_context
def _linked(ctx: Context, fragment: str, kind: str = "article") -> Markup:
    style = f"color:{THEME['link']};text-decoration:underline;"
    return tracked_html(fragment, _registry(ctx), kind, link_style=style)


@pass_context
def _plain(ctx: Context, fragment: str, kind: str = "article") -> str:
    return fragment_text(fragment, _registry(ctx), kind)


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
    )
    env.globals.update(track=_track, theme=THEME)
    env.filters.update(linked=_linked, plain=_plain, wrap=wrap, underline=underline, longdate=longdate)
    return env


def text_template_name(template: str) -> str:
    """``newsletter.mjml.j2`` → ``newsletter.txt.j2``."""
    return template.removesuffix(".mjml.j2") + ".txt.j2"
