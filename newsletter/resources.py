"""Where the product's own files live: templates, the seed article, segments, the demo audience.

In a source checkout they sit at the top of the repository; in an installed wheel they are
bundled inside the package (see pyproject.toml). Both layouts resolve through here so no other
module guesses paths.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent
_BUNDLED_DIR = _PACKAGE_DIR / "_bundled"


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``templates``, ``articles``, ``audiences``)."""
    for base in (_BUNDLED_DIR, _CHECKOUT_DIR):
        candidate = base / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the bundled folder {name!r} is missing from this installation")


def templates_dir() -> Path:
    return resource_dir("templates")


def articles_dir() -> Path:
    return resource_dir("articles")


def audiences_dir() -> Path:
    return resource_dir("audiences")
