"""Random bytes for identifiers (request, completion and row ids), drawn from a per-process pool.

Every chat request mints three ids. `secrets` reads the kernel's generator once per id, and each
`getrandom` call releases the GIL, which hands it to whichever thread waits for it: about 7 µs of
CPU per request in bench/gateway_ab.py (docs/performance.md). Here one `os.urandom` call fills a
pool of `POOL_BYTES` and ids take consecutive slices of it: the same generator and the same
quality, one system call per couple of hundred ids.

Ids only. Keys, tokens and anything else that must stay secret keep using `secrets` directly, so
their bytes never sit in memory before they are needed. A forked child starts with an empty pool
(`os.register_at_fork`), so two workers never hand out the same bytes; a lock keeps threads from
taking the same slice.
"""

from __future__ import annotations

import os
import threading

POOL_BYTES = 4096

_pool = b""
_taken = 0
_lock = threading.Lock()


def random_bytes(n: int) -> bytes:
    """`n` bytes from the kernel's generator, never handed out twice in this process."""
    global _pool, _taken
    if n > POOL_BYTES:
        return os.urandom(n)
    with _lock:
        start = _taken
        if start + n > len(_pool):
            _pool, start = os.urandom(POOL_BYTES), 0
        _taken = start + n
        return _pool[start : start + n]


def random_hex(n: int) -> str:
    """`n` random bytes as `2n` lowercase hex digits (as `secrets.token_hex(n)`)."""
    return random_bytes(n).hex()


def _empty_pool() -> None:
    global _pool, _taken, _lock
    _pool, _taken, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_empty_pool)
