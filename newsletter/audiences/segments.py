"""Segments: who a campaign goes to, declared in YAML files and compiled to SQL.

A segment is one file, ``<name>.yaml``, in the audiences folder (``resources.audiences_dir()``
unless a directory is given)::

    name: ketamine-curious          # required; must match the file name without .yaml
    description: Readers interested in ketamine therapy     # optional
    rules:                          # optional; every rule given must hold (AND)
      status: active                # a status or a list of them; default: active
      tags:                         # at least one of any / all / none
        any: [ketamine, depression] #   has at least one of these tags
        all: [family]               #   has every one of these
        none: [clinician]           #   has none of these
      attributes:                   # imported columns, by their stored name (lowercase, _ for spaces)
        state: {equals: OR}         #   compared as text; quote values YAML would read as
        plan: {in: [basic, plus]}   #   booleans or numbers ("no", "on", "007")
        referrer: {exists: true}    #   has (true) or lacks (false) a value
      joined:                       # subscriber created on/after `after`, strictly before `before`
        after: 2024-01-01           #   a date (midnight UTC) or an ISO 8601 date-time
        before: 2026-01-01
      engagement:                   # whole days before now; human events only (is_machine false)
        opened_within_days: 30
        clicked_within_days: 60
        clicked_cta_within_days: 90 #   a click on a link of kind "cta"

Names are lowercase letters, digits, ``-`` and ``_``. The segment ``all`` is built in (every
active subscriber); a file named ``all.yaml`` is refused rather than silently shadowed.

Every mistake is a :class:`UserError` naming the file and the key path, e.g.
``audiences/x.yaml: rules.tags.any: expected a list of strings``; YAML syntax errors and
duplicate keys name the line.

This module reads and checks segment files and never touches the store; ``segment_sql``
compiles a :class:`Segment` to SQL (EXISTS over ``subscriber_tags`` and ``events``, JSON
extraction for attributes, every value bound as a parameter). What is left here is one concern,
the file format: the model, its validation (most of the lines: one check per key, each naming
the key path) and finding the files in a folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

from newsletter.audiences.csv_layout import attribute_key
from newsletter.audiences.textfile import display_path
from newsletter.audiences.values import TAG_MAX, normalise_tag
from newsletter.db.models import SUBSCRIBER_STATUSES
from newsletter.errors import NotFound, UserError
from newsletter.yamlfile import YamlError, load

BUILTIN_ALL = "all"

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}\Z")
_MAX_DAYS = 36500


@dataclass(frozen=True)
class AttributeRule:
    """One attribute test; every operator given must hold."""

    key: str
    equals: str | None = None
    one_of: tuple[str, ...] | None = None  # YAML ``in``
    exists: bool | None = None


@dataclass(frozen=True)
class Rules:
    status: tuple[str, ...] = ("active",)
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    attributes: tuple[AttributeRule, ...] = ()
    joined_after: datetime | None = None  # inclusive
    joined_before: datetime | None = None  # exclusive
    opened_within_days: int | None = None
    clicked_within_days: int | None = None
    clicked_cta_within_days: int | None = None


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    rules: Rules = field(default_factory=Rules)
    source: Path | None = None  # the YAML file; None for the built-in ``all``


ALL_SEGMENT = Segment(BUILTIN_ALL, "Every active subscriber", Rules(), None)


# --- reading YAML ------------------------------------------------------------------------------


class SegmentError(UserError):
    """A segment file is wrong: ``where`` names the file and the key path (or line)."""


class _Checker:
    """Validates one file's data; every complaint names the file and the key path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, message: str) -> SegmentError:
        return SegmentError(message, f"{self.where}: {path}" if path else self.where)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping with {_one_of(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.fail(_join(path, str(key)), f"unknown key (expected {_one_of(allowed)})")
        return dict(value)

    def text(self, value: Any, path: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            hint = (
                " (YAML reads yes/no/on/off/true/false as booleans: quote the value)" if isinstance(value, bool) else ""
            )
            raise self.fail(path, f"expected text{hint}")
        return str(value)

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(item, str) and item.strip() for item in value)
        ):
            raise self.fail(path, "expected a list of strings")
        return tuple(dict.fromkeys(value))

    def days(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_DAYS:
            raise self.fail(path, f"expected a whole number of days from 1 to {_MAX_DAYS}")
        return value

    def moment(self, value: Any, path: str) -> datetime:
        text = value if isinstance(value, str) else None
        if text is not None:
            try:
                if len(text) == 10:
                    return datetime.combine(date.fromisoformat(text), time(), timezone.utc)
                moment = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
        raise self.fail(path, f"not a date: {value!r} (expected YYYY-MM-DD or an ISO 8601 date-time)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _one_of(keys: tuple[str, ...]) -> str:
    return ", ".join(keys)


def _parse_rules(check: _Checker, data: Any) -> Rules:
    if data is None:
        return Rules()
    rules = check.mapping(data, "rules", ("status", "tags", "attributes", "joined", "engagement"))
    out: dict[str, Any] = {}

    if "status" in rules:
        value = rules["status"]
        statuses = (value,) if isinstance(value, str) else check.strings(value, "rules.status")
        for status in statuses:
            if status not in SUBSCRIBER_STATUSES:
                raise check.fail("rules.status", f"unknown status {status!r} (expected {_one_of(SUBSCRIBER_STATUSES)})")
        out["status"] = tuple(dict.fromkeys(statuses))

    if "tags" in rules:
        tags = check.mapping(rules["tags"], "rules.tags", ("any", "all", "none"))
        if not tags:
            raise check.fail("rules.tags", "expected at least one of any, all, none")
        for key in tags:
            path = f"rules.tags.{key}"
            values = tuple(dict.fromkeys(normalise_tag(tag) for tag in check.strings(tags[key], path)))
            if any(len(tag) > TAG_MAX for tag in values):
                raise check.fail(path, f"a tag is longer than {TAG_MAX} characters")
            out[f"tags_{key}"] = values

    if "attributes" in rules:
        value = rules["attributes"]
        if not isinstance(value, Mapping) or not value:
            raise check.fail("rules.attributes", "expected a mapping of attribute names to tests (equals, in, exists)")
        attributes = []
        for name, test in value.items():
            key = attribute_key(name) if isinstance(name, str) else ""
            path = f"rules.attributes.{name}"
            if not key:
                raise check.fail(path, "not an attribute name")
            ops = check.mapping(test, path, ("equals", "in", "exists"))
            if not ops:
                raise check.fail(path, "expected at least one of equals, in, exists")
            rule = AttributeRule(key)
            if "equals" in ops:
                rule = AttributeRule(key, equals=check.text(ops["equals"], f"{path}.equals"))
            if "in" in ops:
                items = ops["in"]
                if not isinstance(items, list) or not items:
                    raise check.fail(f"{path}.in", "expected a list of values")
                one_of = tuple(dict.fromkeys(check.text(item, f"{path}.in") for item in items))
                rule = AttributeRule(key, rule.equals, one_of)
            if "exists" in ops:
                if not isinstance(ops["exists"], bool):
                    raise check.fail(f"{path}.exists", "expected true or false")
                rule = AttributeRule(key, rule.equals, rule.one_of, ops["exists"])
            attributes.append(rule)
        out["attributes"] = tuple(attributes)

    if "joined" in rules:
        joined = check.mapping(rules["joined"], "rules.joined", ("after", "before"))
        if not joined:
            raise check.fail("rules.joined", "expected after, before or both")
        if "after" in joined:
            out["joined_after"] = check.moment(joined["after"], "rules.joined.after")
        if "before" in joined:
            out["joined_before"] = check.moment(joined["before"], "rules.joined.before")
        if "joined_after" in out and "joined_before" in out and out["joined_after"] >= out["joined_before"]:
            raise check.fail("rules.joined", "after must be earlier than before")

    if "engagement" in rules:
        keys = ("opened_within_days", "clicked_within_days", "clicked_cta_within_days")
        engagement = check.mapping(rules["engagement"], "rules.engagement", keys)
        if not engagement:
            raise check.fail("rules.engagement", f"expected at least one of {_one_of(keys)}")
        for key, value in engagement.items():
            out[key] = check.days(value, f"rules.engagement.{key}")

    return Rules(**out)


def _parse_file(path: Path) -> Segment:
    where = display_path(path)
    check = _Checker(where)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SegmentError("not UTF-8 text", where) from None
    except OSError as error:
        raise UserError(f"cannot read the file: {error.strerror}", where) from None
    try:
        data = load(text, where)  # newsletter.yamlfile: no aliases, no dates, no repeated keys
    except YamlError as error:
        raise SegmentError(
            f"not valid YAML: {error.problem}", f"{where}: line {error.line}" if error.line else where
        ) from None
    if data is None:
        raise check.fail("", "the file is empty: expected name, description and rules")
    top = check.mapping(data, "", ("name", "description", "rules"))
    if "name" not in top:
        raise check.fail("name", "missing: every segment names itself, matching its file name")
    name = check.text(top["name"], "name")
    if name != path.stem:
        raise check.fail("name", f"{name!r} does not match the file name (expected {path.stem!r})")
    description = check.text(top["description"], "description") if top.get("description") is not None else ""
    return Segment(name=name, description=description, rules=_parse_rules(check, top.get("rules")), source=path)


# --- finding segments ----------------------------------------------------------------------------


def _directory(directory: Path | str | None) -> Path:
    if directory is None:
        from newsletter.resources import audiences_dir

        try:
            return audiences_dir()
        except FileNotFoundError as error:
            raise UserError(str(error), "audiences") from None
    path = Path(directory)
    if not path.is_dir():
        raise UserError("no such folder", display_path(path))
    return path


def _files(directory: Path, problems: list[SegmentError] | None = None) -> dict[str, Path]:
    """The segment files by name. A badly named file (or ``all.yaml``) raises its SegmentError,
    or, given ``problems``, is added there and left out."""
    files = {path.stem: path for path in sorted(directory.glob("*.yaml")) if path.is_file()}
    for name, path in list(files.items()):
        problem = None
        if not _NAME.match(name):
            problem = SegmentError(
                "a segment's file name is lowercase letters, digits, '-' and '_' (up to 100)", display_path(path)
            )
        elif name == BUILTIN_ALL:
            problem = SegmentError(
                f"'{BUILTIN_ALL}' is the built-in segment (every active subscriber): rename this file",
                display_path(path),
            )
        if problem is not None:
            if problems is None:
                raise problem
            problems.append(problem)
            del files[name]
    return files


def load_segment(name: str, directory: Path | str | None = None) -> Segment:
    """The segment ``name``: ``all`` (built in) or ``<directory>/<name>.yaml``, validated.

    Raises :class:`NotFound` listing the available segments when there is no such file.
    """
    folder = _directory(directory)
    problems: list[SegmentError] = []
    files = _files(folder, problems)  # another badly named file does not stop this one
    if name == BUILTIN_ALL:
        for problem in problems:
            if Path(problem.where or "").name == f"{BUILTIN_ALL}.yaml":
                raise problem
        return ALL_SEGMENT
    if not _NAME.match(name or "") or name not in files:
        available = ", ".join([BUILTIN_ALL, *files])
        raise NotFound(f"no segment named {name!r} (available: {available})", display_path(folder))
    return _parse_file(files[name])


def list_segments(directory: Path | str | None = None) -> list[Segment]:
    """Every segment, ``all`` first then by name; a broken file raises its UserError."""
    folder = _directory(directory)
    return [ALL_SEGMENT, *(_parse_file(path) for path in _files(folder).values())]


def scan_segments(directory: Path | str | None = None) -> tuple[list[Segment], list[UserError]]:
    """Every segment that loads (``all`` first, then by name) and one error per file that does
    not, in file order: one broken file must not hide the others from ``segment list``."""
    folder = _directory(directory)
    problems: list[SegmentError] = []
    files = _files(folder, problems)
    errors: list[UserError] = list(problems)
    segments = [ALL_SEGMENT]
    for path in files.values():
        try:
            segments.append(_parse_file(path))
        except UserError as error:
            errors.append(error)
    errors.sort(key=lambda error: error.where or "")
    return segments, errors
