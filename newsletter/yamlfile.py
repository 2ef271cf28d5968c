"""The one YAML loader of the product: segment files, nurture sequences, Markdown front matter.

YAML lets a few hundred bytes describe a tree of billions of nodes (anchors and aliases, the
"billion laughs"): PyYAML builds such a tree by reference, and the first code that walks it
(a validator, ``repr`` in an error message, a key-path walk) runs for minutes and ends in a
MemoryError. Our files are short hand-written configuration that never needs an alias, so
this loader refuses aliases outright at the first ``*name``, before anything is built, and
names the file and line. It also refuses a document over :data:`MAX_BYTES` and nesting over
:data:`MAX_DEPTH` levels (PyYAML composes recursively: ten thousand ``[`` would end in a
RecursionError), so time and memory stay bounded by the size of the file.

Otherwise it is :class:`yaml.SafeLoader` with two surprises removed, as every caller wants:

- dates stay text (callers parse them with a message of their own, instead of PyYAML raising
  a ValueError, without a line, on ``2024-13-01``);
- a repeated key is an error naming its line, not "last one wins"; a key must be a plain
  scalar (``{[a]: 1}`` is refused).

Public face::

    load(text, name, *, first_line=1) -> Any            # plain data: dict, list, str, int ...
    compose(text, name, *, first_line=1) -> Node | None # the node tree, for callers that need
                                                        # the line of every key
    scalar(node, name) -> Any                           # one scalar node's value
    YamlError(UserError): .problem, .line               # where = "name:line"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from newsletter.errors import UserError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "YamlError", "compose", "load", "scalar"]

#: The largest YAML document read: the bundled segment files, sequences and front matter are
#: 1-3 KB, and pure-Python PyYAML reads 64 KB of the worst shape (one long flow list) in ~1 s.
MAX_BYTES = 64 * 1024
#: The deepest nesting of mappings and lists (the product's files go about six levels deep).
MAX_DEPTH = 64

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class YamlError(UserError):
    """A YAML document the product will not read: ``where`` is ``name:line``.

    ``problem`` is the reason alone and ``line`` the 1-based line in the file, so a caller
    with its own way of naming places (``x.yaml: line 3``) can say it its way.
    """

    def __init__(self, problem: str, name: str, line: int | None) -> None:
        self.problem = problem
        self.line = line
        super().__init__(problem, f"{name}:{line}" if line else name)


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types (no stubs installed)
    """SafeLoader without aliases, timestamps, duplicate keys or unbounded nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not allowed here: write the value out in full",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def fetch_flow_collection_start(self, token_class: type) -> None:
        """Stop deep ``[[[[`` in the scanner already: it keeps one possible key per open flow
        collection and looks at all of them for every token (20,000 ``[`` took 7 s there)."""
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value PyYAML cannot build (``!!int abc``) is a mistake on that node's line."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as error:
            raise ConstructorError(None, None, f"cannot read this value: {error}", node.start_mark) from None


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: SafeConstructor, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping whose keys are plain scalars, each written once."""
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConstructorError(None, None, "a key must be a plain word", key_node.start_mark)
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise ConstructorError(None, None, f"the key {key!r} appears twice", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_size(text: str, name: str, first_line: int) -> None:
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(f"the YAML is larger than {MAX_BYTES // 1024} KB: this is not a file to read", name, first_line)


def _error(error: yaml.YAMLError, name: str, first_line: int) -> YamlError:
    """PyYAML's error as one line naming the line in the file."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = " ".join(part for part in (error.context, error.problem) if part) or str(error).splitlines()[0]
        return YamlError(problem, name, mark.line + first_line if mark else None)
    return YamlError(str(error).splitlines()[0] if str(error) else type(error).__name__, name, None)


def compose(text: str, name: str, *, first_line: int = 1) -> yaml.Node | None:
    """The single document's node tree (None when empty), every node with its line.

    ``first_line`` is the file line ``text`` starts on (front matter starts on line 2).
    """
    return _read(text, name, first_line, _Loader.get_single_node)


def load(text: str, name: str, *, first_line: int = 1) -> Any:
    """The single document as plain data (None when empty); see the module docstring."""
    return _read(text, name, first_line, _Loader.get_single_data)


def _read(text: str, name: str, first_line: int, read: Callable[[_Loader], Any]) -> Any:
    """``read`` applied to a fresh loader over ``text``; PyYAML's errors become YamlError."""
    _check_size(text, name, first_line)
    loader = _Loader(text)
    try:
        return read(loader)
    except yaml.YAMLError as error:
        raise _error(error, name, first_line) from None
    finally:
        loader.dispose()


def scalar(node: yaml.Node, name: str) -> Any:
    """The value of a scalar node from :func:`compose` (its tag was resolved when composed);
    a value that cannot be built (``!!int abc``) raises :class:`YamlError` naming its line."""
    if not isinstance(node, yaml.ScalarNode):
        raise TypeError("scalar() takes a scalar node")
    try:
        return _Loader("").construct_object(node, deep=True)
    except yaml.YAMLError as error:
        raise _error(error, name, 1) from None
