"""The one timeout thread: fires in deadline order, never fires a cancelled deadline, and does not
keep the cancelled ones of jobs that finished early."""

from __future__ import annotations

import threading

from engine._deadlines import Deadlines


def test_deadlines_fire_in_order_and_cancelled_ones_never_fire() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    last = threading.Event()
    skipped = deadlines.call_in(0.3, lambda: fired.append("cancelled"))
    skipped.cancel()
    deadlines.call_in(0.4, lambda: fired.append("late"))
    deadlines.call_in(0.01, lambda: fired.append("early"))
    deadlines.call_in(0.5, last.set)
    assert last.wait(5)
    assert fired == ["early", "late"]
    assert deadlines.pending() == 0


def test_a_failing_callback_does_not_stop_the_others() -> None:
    deadlines = Deadlines()
    done = threading.Event()
    deadlines.call_in(0.0, lambda: 1 / 0)
    deadlines.call_in(0.01, done.set)
    assert done.wait(5)


def test_cancelled_entries_are_compacted_away() -> None:
    deadlines = Deadlines()
    for _ in range(5000):  # jobs with an hour's timeout that end at once
        deadlines.call_in(3600, lambda: None).cancel()
    assert deadlines.pending() == 0
    assert deadlines.size() < 2100  # not 5000: the dead entries were dropped along the way


def test_cancel_after_firing_changes_nothing() -> None:
    deadlines = Deadlines()
    done = threading.Event()
    fired = deadlines.call_in(0.0, done.set)
    assert done.wait(5)
    fired.cancel()
    keep = deadlines.call_in(3600, lambda: None)
    assert deadlines.pending() == 1
    keep.cancel()
    assert deadlines.pending() == 0
