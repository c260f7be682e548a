"""The bounded cache: least recently used goes first, `peek` neither refreshes nor counts, and
hits, misses and evictions reach /metrics under the cache's name."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from foundation.lru import LruCache


def sample(metric: str, cache: str) -> float:
    return REGISTRY.get_sample_value(f"patchbay_cache_{metric}_total", {"cache": cache}) or 0.0


def test_the_least_recently_used_entry_goes_first_and_is_told() -> None:
    evicted: list[tuple[str, int]] = []
    lru: LruCache[str, int] = LruCache(None, 2, lambda k, v: evicted.append((k, v)))
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert evicted == [("b", 2)] and list(lru) == ["a", "c"] and len(lru) == 2
    assert lru.peek("a") == 1
    lru.put("d", 4)  # peek did not refresh a: a goes
    assert evicted[-1] == ("a", 1) and "a" not in lru


def test_pop_and_clear_are_not_evictions() -> None:
    evicted: list[str] = []
    lru: LruCache[str, int] = LruCache(None, 3, lambda k, v: evicted.append(k))
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.pop("a") == 1 and lru.pop("a") is None
    lru.clear()
    assert evicted == [] and len(lru) == 0


def test_hits_misses_and_evictions_are_counted_by_name() -> None:
    before = {m: sample(m, "test_lru") for m in ("hits", "misses", "evictions")}
    lru: LruCache[str, int] = LruCache("test_lru", 1)
    assert lru.get("a") is None
    lru.put("a", 1)
    assert lru.get("a") == 1 and lru.peek("a") == 1
    lru.put("b", 2)
    after = {m: sample(m, "test_lru") - before[m] for m in before}
    assert after == {"hits": 1, "misses": 1, "evictions": 1}
    assert REGISTRY.get_sample_value("patchbay_cache_entries", {"cache": "test_lru"}) == 1


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LruCache(None, 0)
