"""The cyclic garbage collector switched off for a test, and what a collection would find.

For tests that require objects to be freed by reference counting alone (an ended voice session,
say): with the collector off, an object left in a reference cycle is never freed, so the test
sees it; `cycles_left` then names what the cycles hold, for the failure message.
"""

from __future__ import annotations

import collections
import gc
from collections.abc import Iterator

import pytest

from tests import databases


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No automatic collection during the test (one first, so earlier garbage is not counted).
    The test databases' thread (tests/databases.py) finishes its work before: its connections
    leave cycles of their own."""
    databases.postgres.quiet()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cycles_left() -> str:
    """What a collection finds now, by type (the objects reference counting did not free)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    gc.collect()
    return ", ".join(f"{count} {name}" for name, count in found.most_common(12))
