"""ChangeNotifier: progress notifications wake waiters but leave the desired-state generation alone."""

from __future__ import annotations

import asyncio

from shipyard.controller.server.notifier import ChangeNotifier


def test_progress_wakes_waiters_without_moving_the_desired_generation() -> None:
    async def scenario() -> None:
        notifier = ChangeNotifier()
        notifier.bind(asyncio.get_running_loop())
        snapshot = notifier.snapshot()
        assert snapshot is not None
        notifier.notify_progress()
        await asyncio.wait_for(snapshot.wait(), 5)  # woken: dashboards follow progress
        assert (notifier.generation, notifier.desired_generation) == (1, 0)
        snapshot = notifier.snapshot()
        assert snapshot is not None and not snapshot.is_set()
        notifier.notify()
        await asyncio.wait_for(snapshot.wait(), 5)
        assert (notifier.generation, notifier.desired_generation) == (2, 1)

    asyncio.run(scenario())
