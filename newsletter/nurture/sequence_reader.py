"""Reading nurture sequence files: YAML with the line of every key, checked against the format
in :mod:`newsletter.nurture.sequences` (the model), and found in ``<audiences>/nurture``.

Mistakes raise :class:`UserError` naming the file and line, and the key (``steps[2].delay``);
:func:`load_all` reports a broken file without stopping the others (the scheduler reads the
folder every tick).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from newsletter.errors import NotFound, UserError
from newsletter.nurture.sequences import (
    AFTER_WAIT,
    CAMPAIGN_KINDS,
    DEFAULT_EXIT_STATUSES,
    DEFAULT_WAIT,
    DEFAULT_WITHIN,
    ENTRY_TRIGGERS,
    IF_NOT,
    LEAD_STATUSES,
    NAME,
    Conditions,
    Delay,
    Entry,
    Sequence,
    Step,
    parse_delay,
)
from newsletter.yamlfile import YamlError, compose, scalar

# --- YAML with line numbers ------------------------------------------------------------------------


class _Doc:
    """The file's data plus the line of every key path, so each complaint names its line."""

    def __init__(self, path: Path, where: str) -> None:
        self.where = where
        self.lines: dict[str, int] = {}
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text", where=where) from None
        except OSError as error:
            raise UserError(f"cannot read the file: {error.strerror}", where=where) from None
        # newsletter.yamlfile refuses aliases, so the tree walked below is as big as the file.
        try:
            node = compose(text, where)
        except YamlError as error:
            raise UserError(f"not valid YAML: {error.problem}", where=error.where) from None
        self.data = self._plain(node, "") if node is not None else None

    def _plain(self, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                # The key as written: YAML 1.1 would read the key "on" (entry.on) as true.
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail_at(key_node.start_mark.line + 1, path, "a key must be a plain word")
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in out:
                    raise self.fail_at(key_node.start_mark.line + 1, child, "this key appears twice")
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self._plain(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._plain(item, f"{path}[{i + 1}]") for i, item in enumerate(node.value)]
        try:
            return scalar(node, self.where)
        except YamlError as error:
            raise UserError(f"not valid YAML: {error.problem}", where=error.where) from None

    def fail_at(self, line: int, path: str, message: str) -> UserError:
        return UserError(f"{path}: {message}" if path else message, where=f"{self.where}:{line}")

    def fail(self, path: str, message: str) -> UserError:
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return self.fail_at(self.lines.get(probe, 1), path, message)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- validation -------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, doc: _Doc, templates_dir: Path | None) -> None:
        self.doc = doc
        self.templates_dir = templates_dir

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.doc.fail(path, f"expected a mapping with {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                child = f"{path}.{key}" if path else key
                raise self.doc.fail(child, f"unknown key (expected one of {', '.join(allowed)})")
        return value

    def text(self, value: Any, path: str, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            raise self.doc.fail(path, "expected text" + (" (quote yes/no/on/off)" if isinstance(value, bool) else ""))
        return " ".join(str(value).split())

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        text = self.text(value, path)
        if text not in allowed:
            raise self.doc.fail(path, f"{text!r} is not one of {', '.join(allowed)}")
        return text

    def delay(self, value: Any, path: str) -> Delay:
        try:
            return parse_delay(value)
        except ValueError as error:
            raise self.doc.fail(path, str(error)) from None

    def sequence(self, path: Path) -> Sequence:
        data = self.doc.data
        if data is None:
            raise self.doc.fail("", "the file is empty: expected name and steps")
        top = self.mapping(data, "", ("name", "description", "reason", "entry", "exit", "steps"))
        for key in ("name", "steps"):
            if key not in top:
                raise self.doc.fail("", f"missing {key!r}")
        name = self.text(top["name"], "name")
        if name != path.stem:
            raise self.doc.fail("name", f"{name!r} does not match the file name (expected {path.stem!r})")
        description = self.text(top.get("description"), "description", required=False)
        steps_data = top["steps"]
        if not isinstance(steps_data, list) or not steps_data:
            raise self.doc.fail("steps", "expected a list of at least one step")
        steps = tuple(self.step(item, i) for i, item in enumerate(steps_data))
        names = [s.name for s in steps]
        for step in steps:
            if names.count(step.name) > 1:
                raise self.doc.fail(f"steps[{step.number}].name", f"two steps are called {step.name!r}")
        reason = self.text(top.get("reason"), "reason", required=False) or None
        return Sequence(
            name=name,
            description=description,
            reason=reason,
            entry=self.entry(top.get("entry")),
            exit_lead_statuses=self.exit(top.get("exit")),
            steps=steps,
            source=path,
        )

    def entry(self, value: Any) -> Entry:
        if value is None:
            return Entry()
        data = self.mapping(value, "entry", ("on", "campaign_kind", "article", "within"))
        within = self.delay(data["within"], "entry.within") if "within" in data else DEFAULT_WITHIN
        if not within.days and not within.seconds:
            raise self.doc.fail("entry.within", "must be longer than 0, or no lead could ever enter")
        return Entry(
            on=self.choice(data.get("on", "cta_lead"), "entry.on", ENTRY_TRIGGERS),
            campaign_kind=self.choice(data["campaign_kind"], "entry.campaign_kind", CAMPAIGN_KINDS)
            if data.get("campaign_kind") is not None
            else None,
            article=self.text(data["article"], "entry.article") if data.get("article") is not None else None,
            within=within,
        )

    def exit(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return DEFAULT_EXIT_STATUSES
        data = self.mapping(value, "exit", ("lead_status",))
        statuses = data.get("lead_status", [])
        if not isinstance(statuses, list):
            raise self.doc.fail("exit.lead_status", "expected a list of lead statuses")
        for i, status in enumerate(statuses):
            self.choice(status, f"exit.lead_status[{i + 1}]", LEAD_STATUSES)
        return tuple(dict.fromkeys(statuses))

    def step(self, value: Any, index: int) -> Step:
        path = f"steps[{index + 1}]"
        data = self.mapping(
            value,
            path,
            ("name", "template", "subject", "preheader", "delay", "when", "if_not", "wait_up_to", "after_wait"),
        )
        for key in ("template", "subject", "delay"):
            if key not in data:
                raise self.doc.fail(path, f"step {index + 1} has no {key!r}")
        template = self.template(data["template"], f"{path}.template", index)
        name = (
            self.text(data["name"], f"{path}.name") if "name" in data else Path(template).name.removesuffix(".mjml.j2")
        )
        subject = self.text(data["subject"], f"{path}.subject")
        for marker in ("{{", "{%", "{#"):
            if marker in subject or marker in str(data.get("preheader") or ""):
                raise self.doc.fail(f"{path}.subject", f"subjects and preheaders are plain text: remove {marker!r}")
        when = self.conditions(data.get("when"), f"{path}.when", index)
        if_not = self.choice(data.get("if_not", "skip"), f"{path}.if_not", IF_NOT)
        if if_not != "wait" and ("wait_up_to" in data or "after_wait" in data):
            raise self.doc.fail(f"{path}.if_not", "wait_up_to and after_wait only go with if_not: wait")
        if when.empty and "if_not" in data:
            raise self.doc.fail(f"{path}.if_not", "if_not needs a 'when' to be about")
        return Step(
            index=index,
            name=name,
            template=template,
            subject=subject,
            preheader=self.text(data.get("preheader"), f"{path}.preheader", required=False),
            delay=self.delay(data["delay"], f"{path}.delay"),
            when=when,
            if_not=if_not,
            wait_up_to=self.delay(data["wait_up_to"], f"{path}.wait_up_to") if "wait_up_to" in data else DEFAULT_WAIT,
            after_wait=self.choice(data.get("after_wait", "skip"), f"{path}.after_wait", AFTER_WAIT),
            line=self.doc.lines.get(path, 0),
        )

    def template(self, value: Any, path: str, index: int) -> str:
        template = self.text(value, path)
        if not template.endswith(".mjml.j2"):
            raise self.doc.fail(path, f"step {index + 1}: the template must be an MJML template named *.mjml.j2")
        if self.templates_dir is not None:
            twin = template.removesuffix(".mjml.j2") + ".txt.j2"
            for name in (template, twin):
                if not (self.templates_dir / name).is_file():
                    raise self.doc.fail(
                        path, f"step {index + 1}: no template {name!r} in {display_path(self.templates_dir)}"
                    )
        return template

    def conditions(self, value: Any, path: str, index: int) -> Conditions:
        if value is None:
            return Conditions()
        data = self.mapping(value, path, ("opened", "clicked", "score_above", "has_tag"))
        score = data.get("score_above")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise self.doc.fail(f"{path}.score_above", "expected a number")
        tags = data.get("has_tag")
        if tags is not None:
            tags = [tags] if isinstance(tags, str) else tags
            if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t.strip() for t in tags):
                raise self.doc.fail(f"{path}.has_tag", "expected a tag or a list of tags")
        return Conditions(
            opened=self.step_ref(data.get("opened"), f"{path}.opened", index),
            clicked=self.step_ref(data.get("clicked"), f"{path}.clicked", index),
            score_above=float(score) if score is not None else None,
            has_tag=tuple(t.strip() for t in tags) if tags else (),
        )

    def step_ref(self, value: Any, path: str, index: int) -> int | None:
        """``previous`` or an earlier step's number → that step's 0-based index."""
        if value is None:
            return None
        if value == "previous":
            if index == 0:
                raise self.doc.fail(path, "the first step has no previous step")
            return index - 1
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= index:
            raise self.doc.fail(
                path,
                f"expected 'previous' or the number of an earlier step (1 to {index})"
                if index
                else "the first step has no earlier step",
            )
        return value - 1


# --- finding sequences -----------------------------------------------------------------------------


def sequences_dir(audiences_dir: str | Path | None) -> Path:
    """``<audiences>/nurture``: beside the segment files, in a folder of its own."""
    if audiences_dir:
        return Path(audiences_dir) / "nurture"
    from newsletter.resources import audiences_dir as bundled

    try:
        return bundled() / "nurture"
    except FileNotFoundError as error:
        raise UserError(str(error), where="audiences") from None


def templates_folder(templates_dir: str | Path | None) -> Path | None:
    if templates_dir:
        return Path(templates_dir)
    from newsletter.resources import templates_dir as bundled

    try:
        return bundled()
    except FileNotFoundError:
        return None


def parse_sequence_file(path: Path, templates_dir: Path | None) -> Sequence:
    """Read and validate one sequence file; ``templates_dir`` None skips the template check."""
    where = display_path(path)
    if not path.is_file():
        raise NotFound("no such file", where=where)
    return _Parser(_Doc(path, where), templates_dir).sequence(path)


def sequence_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.yaml")) if p.is_file()} if folder.is_dir() else {}


def load_sequence(
    name: str, audiences_dir: str | Path | None = None, templates_dir: str | Path | None = None
) -> Sequence:
    """The sequence ``name`` (its file name without ``.yaml``), validated; NotFound lists the others."""
    folder = sequences_dir(audiences_dir)
    files = sequence_files(folder)
    if not NAME.match(name or "") or name not in files:
        known = ", ".join(files) or "none"
        raise NotFound(f"no nurture sequence named {name!r} (available: {known})", where=display_path(folder))
    return parse_sequence_file(files[name], templates_folder(templates_dir))


def list_sequences(audiences_dir: str | Path | None = None, templates_dir: str | Path | None = None) -> list[Sequence]:
    """Every sequence, by name; a broken file raises its UserError."""
    folder = sequences_dir(audiences_dir)
    return [parse_sequence_file(path, templates_folder(templates_dir)) for path in sequence_files(folder).values()]


def load_all(
    audiences_dir: str | Path | None = None, templates_dir: str | Path | None = None
) -> tuple[list[Sequence], list[str]]:
    """Every sequence that loads, and one message per file that does not: a broken file must
    not stop the others (the scheduler calls this every few seconds)."""
    folder = sequences_dir(audiences_dir)
    found, errors = [], []
    for path in sequence_files(folder).values():
        try:
            found.append(parse_sequence_file(path, templates_folder(templates_dir)))
        except UserError as error:
            errors.append(str(error))
    return found, errors
