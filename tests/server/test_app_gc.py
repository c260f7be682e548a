"""The garbage collector's schedule while serving (`create_app(freeze_gc=True)`, what `patchbay
serve` does): a collection of the middle generation never walks more than two young
collections' survivors, so a voice worker whose sessions have just opened does not stop for
tens of milliseconds (docs/performance.md, "The middle generation's pause")."""

from __future__ import annotations

import gc
from typing import Any

from server.app import create_app
from server.db import Database
from server.services import Services
from server.settings import Settings


def young_runs(generations: list[int]) -> list[int]:
    """Lengths of the runs of young-only collections between collections of an older one."""
    runs, current = [], 0
    for generation in generations:
        if generation == 0:
            current += 1
        else:
            runs.append(current)
            current = 0
    return runs + [current]


def test_young_runs_counts_young_collections_between_older_ones() -> None:
    assert young_runs([0, 0, 1, 0, 2, 0, 0, 0]) == [2, 1, 3]


async def test_serving_collects_the_middle_generation_every_second_young_collection(
    settings: Settings, db: Database
) -> None:
    saved = gc.get_threshold()
    collected: list[int] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    app = create_app(settings, services=Services.build(settings, db), freeze_gc=True)
    try:
        async with app.router.lifespan_context(app):
            gc.callbacks.append(watch)
            try:
                # Objects that survive, as a voice session's do: enough for about twenty young
                # collections (a third or fewer of them also collect the middle generation).
                kept = [[i] for i in range(20 * gc.get_threshold()[0])]
            finally:
                gc.callbacks.remove(watch)
            assert len(kept) > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)

    assert collected.count(0) >= 10, collected  # the young generation was collected many times
    assert any(generation >= 1 for generation in collected), collected
    # CPython's default (10) lets eleven young collections pass between two of the middle one.
    assert max(young_runs(collected)) <= 2, collected
