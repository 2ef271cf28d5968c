"""Waiting in tests without guessing: poll the real condition until a generous deadline.

A bare ``time.sleep(1)`` both slows every run and still fails on a loaded machine; waiting for
the condition itself returns as soon as it holds and only gives up after ``timeout``. Use a
``threading.Event`` or the product's ``now=`` argument where one exists; this is for conditions
only visible from outside (a row in the store, a thread that ended, a lock being waited on).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """True as soon as ``predicate()`` is truthy; False if it is still falsy after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def sleep_until(moment: float) -> None:
    """Sleep until ``time.time()`` reaches ``moment``: for a test whose behaviour IS wall-clock
    time passing (a send time that must already be in the past when a daemon starts)."""
    while (left := moment - time.time()) > 0:
        time.sleep(left)
