"""The one YAML loader: aliases refused (billion laughs), size and depth capped, lines named."""

from __future__ import annotations

import pytest

from hostile import billion_laughs, bounded, merge_bomb
from newsletter import yamlfile
from newsletter.errors import UserError
from newsletter.yamlfile import YamlError


@pytest.mark.parametrize("text", [f"x: {billion_laughs()}\n", merge_bomb()], ids=["lists", "merge-keys"])
@pytest.mark.parametrize("reader", [yamlfile.load, yamlfile.compose], ids=["load", "compose"])
def test_alias_bombs_are_refused_at_the_first_alias(text, reader) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(YamlError) as caught:
        bounded(lambda: reader(text, "bomb.yaml"))
    assert caught.value.where in ("bomb.yaml:1", "bomb.yaml:2")
    assert "aliases" in caught.value.problem and isinstance(caught.value, UserError)


def test_a_plain_anchor_without_alias_is_harmless() -> None:
    assert yamlfile.load("a: &x 1\nb: 2\n", "f.yaml") == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "the key 'a' appears twice"),
        ("a:\n  ? [x]\n  : 1\n", 2, "a key must be a plain word"),
        ("a: 1\nb: !!int twelve\n", 2, "cannot read this value"),
        ("a: !!timestamp 2024-13-01\n", 1, "cannot read this value"),
        ("a: [1, 2\n", 2, "expected ',' or ']'"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
    ],
)
def test_mistakes_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(YamlError) as caught:
        yamlfile.load(text, "f.yaml")
    assert caught.value.where == f"f.yaml:{line}" and caught.value.line == line
    assert words in caught.value.problem


def test_lines_count_from_first_line() -> None:
    with pytest.raises(YamlError) as caught:
        yamlfile.load("title: x\ntitle: y\n", "post.md", first_line=2)
    assert caught.value.where == "post.md:3"


def test_dates_stay_text() -> None:
    assert yamlfile.load("d: 2024-01-02\nbad: 2024-13-01\n", "f.yaml") == {"d": "2024-01-02", "bad": "2024-13-01"}


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    text = "[" * 20000 + "]" * 20000
    with pytest.raises(YamlError, match=f"nested more than {yamlfile.MAX_DEPTH} levels"):
        bounded(lambda: yamlfile.load(text, "deep.yaml"))


def test_a_document_over_the_size_cap_is_refused_before_it_is_parsed() -> None:
    text = "[" + ",".join(["a"] * (yamlfile.MAX_BYTES // 2 + 1)) + "]"
    with pytest.raises(YamlError, match="larger than"):
        bounded(lambda: yamlfile.load(text, "big.yaml"), seconds=2)


def test_the_worst_document_under_the_cap_reads_in_bounded_time() -> None:
    text = "[" + ",".join(["a"] * (yamlfile.MAX_BYTES // 2 - 1)) + "]"
    # ~1 s on an idle machine; the bound is for a busy one.
    assert (
        len(bounded(lambda: yamlfile.load(text, "long.yaml"), seconds=60, megabytes=128)) == yamlfile.MAX_BYTES // 2 - 1
    )


def test_scalar_reads_a_composed_node() -> None:
    node = yamlfile.compose("a: 12\nb: on\n", "f.yaml")
    assert node is not None
    assert [yamlfile.scalar(v, "f.yaml") for _k, v in node.value] == [12, True]
