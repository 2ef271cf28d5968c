"""Hostile inputs and the bounds they must stay within, shared by the tests of every loader.

Not timing tests: the bounds are generous (seconds for what takes milliseconds), so they only
fail on the blow-ups they guard against (a billion laughs, a quadratic parse).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic payload as one flow list: ~400 bytes that stand for 9**9 strings."""
    parts = ["&a0 [" + ",".join(['"lol"'] * width) + "]"]
    parts += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def merge_bomb(levels: int = 9, width: int = 9, *, indent: str = "") -> str:
    """The same through merge keys (``<<: [*a, *a ...]``), which PyYAML copies as it flattens;
    ``indent`` nests it under a key of the caller's document."""
    lines = [f"{indent}m0: &m0 {{" + ", ".join(f"k{i}: lol" for i in range(width)) + "}"]
    lines += [f"{indent}m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * width) + "]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def bounded(call: Callable[[], T], *, seconds: float = 5.0, megabytes: float = 64.0) -> T:
    """Run ``call``; fail if it takes longer or allocates more than the (generous) bounds."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        return call()
    finally:
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < seconds, f"took {elapsed:.1f} s"
        assert peak < megabytes * 1024 * 1024, f"peaked at {peak / 1e6:.0f} MB"
