"""settle_heap: start-up objects frozen out of the collector's way, young objects collected less often."""

from __future__ import annotations

import gc

from shipyard.controller.serving import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_startup_objects_and_raises_the_collection_thresholds() -> None:
    thresholds = gc.get_threshold()
    built_at_startup = {"routes": [object() for _ in range(100)]}
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(built_at_startup["routes"])
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700  # fewer collections than Python's default
        # Objects made afterwards are collected as usual: a cycle made now is found and freed.
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
