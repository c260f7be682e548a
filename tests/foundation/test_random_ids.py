"""Ids from the per-process pool: never the same bytes twice, in threads or across a fork."""

from __future__ import annotations

import os
import threading

from foundation import random_ids
from foundation.db import new_id
from foundation.random_ids import POOL_BYTES, random_bytes, random_hex


def test_draws_across_many_refills_never_repeat() -> None:
    # 12 does not divide the pool's size: some draws meet its end and take a fresh pool.
    drawn = [random_bytes(12) for _ in range(5 * POOL_BYTES)]
    assert all(len(d) == 12 for d in drawn)
    assert len(set(drawn)) == len(drawn)


def test_hex_and_large_draws_have_their_sizes() -> None:
    assert len(random_hex(8)) == 16 and int(random_hex(8), 16) >= 0
    assert len(random_bytes(POOL_BYTES + 1)) == POOL_BYTES + 1


def test_threads_never_take_the_same_slice() -> None:
    drawn: list[list[bytes]] = [[] for _ in range(8)]
    start = threading.Barrier(len(drawn))

    def draw(into: list[bytes]) -> None:
        start.wait()
        into.extend(random_bytes(16) for _ in range(3000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [d for into in drawn for d in into]
    assert len(set(every)) == len(every) == 8 * 3000


def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    random_bytes(1)  # the pool is full of bytes the child would otherwise also hand out
    assert random_ids._pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write, random_bytes(32))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != random_bytes(32)


def test_row_ids_keep_their_shape() -> None:
    ids = {new_id("seg") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(i.startswith("seg_") and len(i) == 24 for i in ids)
