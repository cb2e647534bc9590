"""The dashboard (Textual pilot) over a live in-process demo: it shows the demo and steers its nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from demo.runner import Demo, DemoOptions, DemoResolver
from tests.helpers import wait_for

pytestmark = pytest.mark.anyio

tui_app = pytest.importorskip("tui.app")
helpers = pytest.importorskip("tests.tui.helpers")
modals = pytest.importorskip("tui.screens.modals")


@pytest.fixture
def anyio_backend() -> str:
    """Textual runs on asyncio."""
    return "asyncio"


@pytest.fixture
def live_demo(database_url: str, prefix: str, conn: psycopg.Connection) -> Iterator[Demo]:
    """Two nodes and the load running in this process; stopped (and the schema dropped) afterwards."""
    demo = Demo(DemoOptions(database_url=database_url, prefix=prefix, speed=50, seed=5, grace=2))
    with demo:
        yield demo
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(prefix)))


def paused_on(demo: Demo, queue: str) -> list[str]:
    return [n["node"] for q in demo.client.status()["queues"] if q["queue"] == queue
            for n in q["nodes"] if n["paused"]]


async def test_the_dashboard_shows_the_demo_and_a_pause_reaches_its_nodes(
    live_demo: Demo, database_url: str, conn: psycopg.Connection, prefix: str,
) -> None:
    wait_for(lambda: conn.execute(sql.SQL("SELECT count(*) FROM {}.lysmore_jobs WHERE state = 'completed'")
                                  .format(sql.Identifier(prefix))).fetchone()[0] > 20,  # type: ignore[index]
             timeout=30, what="demo jobs completing")
    app = tui_app.DashboardApp(database_url=database_url, prefix=prefix, refresh=60, resolver=DemoResolver(),
                               badges=("DEMO", "50x"), cursor_blink=False, database_name="db/test")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+r")
        await helpers.settle(pilot)
        text = helpers.screen_text(app)
        assert "DEMO" in text and "2 nodes" in text
        for queue in ("analysis", "default", "events", "exports", "mailers", "media"):
            assert queue in text
        assert "20/30" in text  # the mailers rate limit, as the seed configures it
        await pilot.press("P")  # the cursor starts on the first queue: analysis
        await helpers.settle(pilot)
        assert "Pause queue analysis on 2 nodes?" in helpers.screen_text(app)
        assert isinstance(app.screen, modals.ConfirmScreen)
        await asyncio.wait_for(app.screen.armed.wait(), 5)  # y counts once the dialog is armed
        await pilot.press("y")
        await helpers.settle(pilot)
        wait_for(lambda: sorted(paused_on(live_demo, "analysis")) == ["demo-1", "demo-2"], timeout=10,
                 what="both demo nodes pausing analysis")
        actor = conn.execute(sql.SQL("SELECT actor, action FROM {}.lysmore_audit ORDER BY id DESC LIMIT 1")
                             .format(sql.Identifier(prefix))).fetchone()
        assert actor == ("guest", "pause_queue")  # the seed's resolver: a guest who may do everything
        await pilot.press("q")
    assert app.return_code in (0, None)
