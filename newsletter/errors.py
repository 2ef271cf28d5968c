"""The one exception type for a user's mistake.

Commands catch :class:`UserError` and print a single line (no traceback); everything else is a
bug and keeps its traceback. ``where`` names the place the user has to look: a file and line,
a CSV row, a YAML key, a campaign id.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: bad input, a missing file, a wrong id."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class NotFound(UserError):
    """Something named by the user does not exist (a campaign id, an article slug, a segment)."""
