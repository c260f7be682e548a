"""A bounded map that forgets its least recently used entry: the in-memory caches' one bound.

`get` counts a hit or a miss, `put` an eviction, under the cache's name in
`patchbay_cache_{hits,misses,evictions}_total{cache=NAME}` (`foundation.metrics`), so the
operator sees from /metrics whether a cache's size setting fits the working set. `peek` reads
without counting or refreshing (background work must not keep an entry alive). Not
thread-safe: each cache lives on one event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from foundation import metrics

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `size` entries; `on_evict(key, value)` is told of each entry pushed out by a `put`
    (never of `pop` or `clear`, which the caller asked for)."""

    __slots__ = ("_counts", "_entries", "_on_evict", "size")

    def __init__(self, name: str | None, size: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        """`name`: the cache's label in the metrics; None counts nothing (a cache kept beside
        another, whose own counts would only repeat it)."""
        if size < 1:
            raise ValueError(f"a cache holds at least one entry, not {size}")
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._on_evict = on_evict
        self._counts = metrics.cache_counters(name) if name is not None else metrics.NOT_COUNTED

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self._counts.miss()
            return None
        self._entries.move_to_end(key)
        self._counts.hit()
        return value

    def peek(self, key: K) -> V | None:
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            old_key, old_value = self._entries.popitem(last=False)
            self._counts.evicted()
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)
        self._counts.entries(len(self._entries))

    def pop(self, key: K) -> V | None:
        value = self._entries.pop(key, None)
        self._counts.entries(len(self._entries))
        return value

    def clear(self) -> None:
        self._entries.clear()
        self._counts.entries(0)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._entries))
