"""Snapshot tests: every screen over the deterministic data set, fixed clock, no cursor blink.

Update with ``pytest tests/tui --snapshot-update`` after checking the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.tui.conftest import _fixed_schema
from tests.tui.helpers import settle
from tests.tui.seed import clock, seed, seed_crons
from tui.app import DashboardApp
from tui.screenshots import type_text

Compare = Callable[..., bool]


def _shooter(snap_compare: Compare, database_url: str, prefix: str) -> Callable[..., bool]:
    """Compare a screenshot of the app on ``prefix`` after pressing ``keys`` (and typing ``typed`` then ``then``)."""

    def take(keys: Sequence[str] = (), size: tuple[int, int] = (80, 24), typed: str = "",
             then: Sequence[str] = (), theme: str | None = None, **kwargs: Any) -> bool:
        app = DashboardApp(
            database_url=database_url, prefix=prefix, clock=clock, database_name="db/test",
            cursor_blink=False, refresh=60, **{"confirm_delay": 0.0, **kwargs},
        )

        async def run_before(pilot: Any) -> None:
            if theme:
                pilot.app.theme = theme
            await settle(pilot)
            for key in keys:
                await pilot.press(key)
                await settle(pilot)
            if typed:
                await type_text(pilot, typed)
            for key in then:
                await pilot.press(key)
                await settle(pilot)

        return snap_compare(app, terminal_size=size, run_before=run_before)

    return take


@pytest.fixture
def shot(snap_compare: Compare, database_url: str, snap_prefix: str) -> Callable[..., bool]:
    """Screenshots over the deterministic data set."""
    return _shooter(snap_compare, database_url, snap_prefix)


@pytest.fixture
def large(snap_compare: Compare, database_url: str, large_prefix: str) -> Callable[..., bool]:
    """Screenshots over the data set with long names and counts in the millions, at 80x24."""
    return _shooter(snap_compare, database_url, large_prefix)


def test_queues(shot: Callable[..., bool]) -> None:
    assert shot()


def test_queues_wide(shot: Callable[..., bool]) -> None:
    assert shot(size=(130, 24))


def test_jobs_light_theme(shot: Callable[..., bool]) -> None:
    assert shot(["2"], theme="textual-light")


def test_queues_read_only(shot: Callable[..., bool]) -> None:
    assert shot(read_only=True)


def test_queue_detail(shot: Callable[..., bool]) -> None:
    assert shot(["enter"])


def test_jobs(shot: Callable[..., bool]) -> None:
    assert shot(["2"])


def test_jobs_filtered_and_marked(shot: Callable[..., bool]) -> None:
    assert shot(["2", "slash"], size=(100, 24), typed="!state:completed queue:default,media",
                then=["enter", "space", "down", "space"])


def test_jobs_malformed_filter(shot: Callable[..., bool]) -> None:
    assert shot(["2", "slash"], typed="age:>soon", then=["enter"])


def test_job_detail_with_errors(shot: Callable[..., bool]) -> None:
    assert shot(["2", "slash"], size=(80, 40), typed="id:4", then=["enter", "enter"])


def test_job_detail_waiting_in_a_workflow(shot: Callable[..., bool]) -> None:
    assert shot(["2", "slash"], size=(80, 30), typed="id:16", then=["enter", "enter"])


def test_confirm_lists_the_targets(shot: Callable[..., bool]) -> None:
    assert shot(["2", "a", "D"])


def test_scale_prompt(shot: Callable[..., bool]) -> None:
    assert shot(["S"])


def test_nodes(shot: Callable[..., bool]) -> None:
    assert shot(["3"])


def test_workflows(shot: Callable[..., bool]) -> None:
    assert shot(["4"])


def test_workflow_tree(shot: Callable[..., bool]) -> None:
    assert shot(["4", "enter"])


def test_audit(shot: Callable[..., bool]) -> None:
    assert shot(["5"])


def test_help(shot: Callable[..., bool]) -> None:
    assert shot(["2", "question_mark"], size=(100, 40))


def test_too_small(shot: Callable[..., bool]) -> None:
    assert shot(size=(50, 12))


# 80x24 is the design size: long names and counts in the millions, on every screen.
def test_large_queues(large: Callable[..., bool]) -> None:
    assert large()


def test_large_queue_detail(large: Callable[..., bool]) -> None:
    assert large(["enter"])


def test_large_jobs(large: Callable[..., bool]) -> None:
    assert large(["2"])


def test_large_job_detail(large: Callable[..., bool]) -> None:
    assert large(["2", "slash"], typed="id:7", then=["enter", "enter"])


def test_large_nodes(large: Callable[..., bool]) -> None:
    assert large(["3"])


def test_large_workflows(large: Callable[..., bool]) -> None:
    assert large(["4"])


def test_large_workflow_tree(large: Callable[..., bool]) -> None:
    assert large(["4", "enter"])


def test_large_audit(large: Callable[..., bool]) -> None:
    assert large(["5"])


def test_large_help(large: Callable[..., bool]) -> None:
    assert large(["3", "question_mark"])


@pytest.fixture
def crons_prefix(database_url: str) -> Iterator[str]:
    """The data set with cron entries and their runs (``seed_crons``), under the fixed schema name."""

    def fill(conn: Any, prefix: str) -> None:
        seed(conn, prefix)
        seed_crons(conn, prefix)

    yield from _fixed_schema(database_url, fill)


def test_crons(snap_compare: Compare, database_url: str, crons_prefix: str) -> None:
    assert _shooter(snap_compare, database_url, crons_prefix)(["6"])
