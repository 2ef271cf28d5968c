"""MJML → HTML, once per campaign, and the checks that nothing unrendered reaches a reader.

MRML (mjml-python) is fast but terse: most of its errors carry no position, and it does not
validate tag names (an ``<mj-buton>`` typo passes straight into the HTML). So on failure we
find the place ourselves: the byte position MRML gives, else the first unbalanced MJML tag;
then we look that MJML line up in the template sources to name the template file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mjml import mjml2html

from newsletter.render.errors import RenderError, display_path
from newsletter.render.personalise import FIRST_NAME, FIRST_NAME_HTML, PLACEHOLDERS

_POSITION = re.compile(r"at position (\d+):(\d+)")
_MJ_TAG = re.compile(r"<(/?)(mjml|mj-[a-z0-9-]+)\b[^>]*?(/?)>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_PLACEHOLDER_LIKE = re.compile(r"%%[A-Za-z0-9_]+%%")
_JINJA_LEFTOVERS = ("{{", "{%", "{#")


def _no_mj_include(path: str) -> str:
    raise ValueError(f"mj-include is not used here ({path}); use Jinja's {{% include %}} instead")


def compile_mjml(mjml: str, *, template: str, templates_dir: Path) -> str:
    """Compile the MJML that ``template`` rendered; errors name the template file and line."""
    problem = _unbalanced_tag(mjml)
    if problem:  # MRML silently accepts </mj-colum> for </mj-column>; we do not
        line, message = problem
        where, snippet = _locate(mjml, line, template, templates_dir)
        raise RenderError(
            f"the MJML rendered by {template} is malformed: {message} (MJML line {line}: {snippet})", where=where
        )
    try:
        return mjml2html(mjml, disable_comments=True, include_loader=_no_mj_include)
    except Exception as exc:  # MRML raises ValueError with a short description
        error = str(exc)
    error_line = _error_line(mjml, error)
    where, snippet = _locate(mjml, error_line, template, templates_dir)
    detail = f" (MJML line {error_line}: {snippet})" if error_line else ""
    hint = " Use Jinja's {% include %} for partials, not mj-include." if "include" in error else ""
    raise RenderError(f"the MJML rendered by {template} does not compile: {error}{detail}.{hint}", where=where)


def check_output(html: str, text: str, *, template: str, text_template: str, templates_dir: Path) -> None:
    """Refuse output that still holds MJML tags, Jinja markup or unknown placeholders."""
    tag = re.search(r"<(mj-[a-z0-9-]+)", html, re.IGNORECASE)
    if tag:
        where = _find_tag(tag.group(1), templates_dir)
        raise RenderError(
            f"<{tag.group(1)}> is not an MJML tag this compiler knows, so it reached the HTML "
            f"unchanged (check its spelling and where it is placed)",
            where=where or display_path(templates_dir / template),
        )
    for part, content, name in (("HTML", html, template), ("text", text, text_template)):
        for marker in _JINJA_LEFTOVERS:
            index = content.find(marker)
            if index >= 0:
                raise RenderError(
                    f"unrendered Jinja markup {marker!r} in the {part} part: {_line_at(content, index)!r}",
                    where=display_path(templates_dir / name),
                )
        if part == "HTML" and FIRST_NAME in content:  # SendGrid would put the raw name in the HTML
            raise RenderError(
                f"{FIRST_NAME} in the HTML part inserts the name unescaped: use first_name_html "
                f"({FIRST_NAME_HTML}) in HTML templates",
                where=display_path(templates_dir / name),
            )
        for match in _PLACEHOLDER_LIKE.finditer(content):
            if match.group(0) not in PLACEHOLDERS:
                raise RenderError(
                    f"unknown placeholder {match.group(0)} in the {part} part; known: {', '.join(PLACEHOLDERS)}",
                    where=display_path(templates_dir / name),
                )


# --- locating an MJML error in the templates ---------------------------------------------------


def _error_line(mjml: str, message: str) -> int | None:
    """The MJML line of an MRML error: from the byte position when MRML gives one, else the
    shortest prefix of the MJML (whole lines, found by bisection) that fails the same way."""
    position = _POSITION.search(message)
    if position:
        return mjml.encode("utf-8")[: int(position.group(1))].count(b"\n") + 1
    lines = mjml.split("\n")

    def fails_the_same_way(count: int) -> bool:
        try:
            mjml2html("\n".join(lines[:count]), include_loader=_no_mj_include)
        except Exception as exc:
            return str(exc) == message
        return False

    low, high = 1, len(lines)
    if not fails_the_same_way(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if fails_the_same_way(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _unbalanced_tag(mjml: str) -> tuple[int, str] | None:
    """(MJML line, description) of the first MJML closing tag that does not match the open
    one, or of the first tag left open; None when the MJML tags nest properly."""
    source = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), mjml)
    stack: list[tuple[str, int]] = []
    for match in _MJ_TAG.finditer(source):
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        line = source.count("\n", 0, match.start()) + 1
        if self_closing:
            continue
        if not closing:
            stack.append((name, line))
        elif stack and stack[-1][0] == name:
            stack.pop()
        elif stack:
            return line, f"</{name}> does not close <{stack[-1][0]}> (opened on MJML line {stack[-1][1]})"
        else:
            return line, f"</{name}> closes nothing"
    if stack:
        return stack[-1][1], f"<{stack[-1][0]}> is never closed"
    return None


def _line_at(content: str, index: int) -> str:
    start = content.rfind("\n", 0, index) + 1
    end = content.find("\n", index)
    line = content[start : end if end >= 0 else len(content)].strip()
    return line if len(line) <= 120 else line[:117] + "..."


def _locate(mjml: str, line: int | None, template: str, templates_dir: Path) -> tuple[str, str]:
    """(where, snippet): the template line that produced MJML ``line``, found by matching that
    line verbatim in the MJML template sources (neighbouring lines break ties), else the
    template that rendered the MJML."""
    fallback = display_path(templates_dir / template)
    lines = [entry.strip() for entry in mjml.split("\n")]
    if not line or line > len(lines) or not lines[line - 1]:
        return fallback, ""
    snippet = lines[line - 1]
    # Verbatim first; a line with rendered values in it will not match, so then any template
    # line that starts with the same tag (``<mj-button``), neighbours breaking the tie.
    where = _best_match(lines, line, lambda text: text == snippet, templates_dir)
    tag = re.match(r"</?[A-Za-z0-9-]+", snippet)
    if where is None and tag:
        starts_with_tag = re.compile(re.escape(tag.group(0)) + r"(?![\w-])")
        where = _best_match(lines, line, lambda text: starts_with_tag.match(text) is not None, templates_dir)
    return where or fallback, repr(snippet[:120])


def _best_match(lines: list[str], line: int, matches: Callable[[str], bool], templates_dir: Path) -> str | None:
    best: tuple[int, str] | None = None
    for path, source in _sources(templates_dir):
        for index, candidate in enumerate(source):
            if not matches(candidate):
                continue
            score = sum(
                1
                for d in (-3, -2, -1, 1, 2, 3)
                if 0 <= line - 1 + d < len(lines)
                and 0 <= index + d < len(source)
                and lines[line - 1 + d] == source[index + d]
            )
            if best is None or score > best[0]:
                best = (score, f"{display_path(path)}:{index + 1}")
    return best[1] if best else None


def _sources(templates_dir: Path) -> list[tuple[Path, list[str]]]:
    """The MJML template sources under ``templates_dir``, each as its stripped lines."""
    found = []
    for path in sorted(templates_dir.rglob("*.mjml.j2")):
        try:
            found.append((path, [entry.strip() for entry in path.read_text(encoding="utf-8").split("\n")]))
        except (OSError, UnicodeDecodeError):
            continue
    return found


def _find_tag(tag: str, templates_dir: Path) -> str | None:
    """The first template line that opens ``<tag``."""
    for path, source in _sources(templates_dir):
        for index, entry in enumerate(source):
            if f"<{tag}" in entry:
                return f"{display_path(path)}:{index + 1}"
    return None
