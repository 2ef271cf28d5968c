"""RenderError and the helpers that say *where* in the templates something went wrong."""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import TracebackType

from newsletter.errors import UserError


class RenderError(UserError):
    """A template, its MJML or its output is wrong; ``where`` names the template file and line."""


def display_path(path: Path | str) -> str:
    """A template path as a person would look for it: relative to the working folder when the
    file is under it (``templates/newsletter.mjml.j2``), absolute otherwise."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def template_frame(tb: TracebackType | None, templates_dir: Path) -> tuple[str, int] | None:
    """The innermost traceback frame that is template code: (display path, template line).

    Jinja rewrites tracebacks so that template code appears with the template's file name and
    line number; the innermost such frame is where the mistake is (an included partial wins
    over the template that included it).
    """
    root = os.path.realpath(templates_dir)
    found: tuple[str, int] | None = None
    for frame in traceback.extract_tb(tb):
        filename = os.path.realpath(frame.filename)
        if filename.startswith(root + os.sep) and frame.lineno is not None:
            found = (display_path(frame.filename), frame.lineno)
    return found
