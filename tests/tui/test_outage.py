"""The dashboard while its database is unreachable: the cause in one line, a change refused at once
(never run later), and a fresh screen soon after the database returns, not after a long backoff.

The outage is real: a database of the test's own stops taking connections
(``ALLOW_CONNECTIONS false``) and its backends are terminated, then it is let back in.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from textual.worker import WorkerCancelled

from engine import Engine, Worker
from tests.conftest import with_database
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.seed import clock
from tui.app import OUTAGE_RETRY, DashboardApp
from tui.keymap import Keymap
from tui.screens.modals import ConfirmScreen

pytestmark = pytest.mark.anyio
QUEUE = "mailers"


class Mail(Worker, queue=QUEUE):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


class Outage:
    """A database of this test's own that can be closed to new connections and reopened."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"lysmore_outage_{uuid.uuid4().hex[:8]}"
        self.url = with_database(server_url, self.name)

    def _admin(self, *statements: sql.Composable) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create(self) -> None:
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def close(self) -> None:
        """No new connection is accepted and every open one is cut (waiting until each backend has
        gone, so the client side sees its goodbye rather than losing a statement in flight)."""
        self._admin(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(self.name)),
            sql.SQL("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = {}")
            .format(sql.Literal(self.name)),
        )

    def reopen(self) -> None:
        self._admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


@pytest.fixture
def outage(server_url: str) -> Iterator[Outage]:
    db = Outage(server_url)
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def instance(outage: Outage, prefix: str) -> Iterator[Engine]:
    """The test's prefix migrated in the closable database, with a job in ``mailers``."""
    eng = Engine(outage.url, prefix=prefix)
    eng.migrate()
    eng.insert(Mail.new({"to": "a@example.com"}))
    try:
        yield eng
    finally:
        eng.stop()


def make_app(outage: Outage, prefix: str, **kwargs: Any) -> DashboardApp:
    kwargs.setdefault("refresh", 60)  # the timer alone would not read again for a minute
    return DashboardApp(database_url=outage.url, prefix=prefix, clock=clock, database_name="db/outage",
                        cursor_blink=False, keymap=Keymap(), confirm_delay=0.0, **kwargs)


def watch_reads(app: DashboardApp) -> Callable[[Callable[[BaseException | None], bool]], Any]:
    """``until(seen)``: await the next read finished since the last ``until`` for which
    ``seen(error)`` holds (the app's own refresh timer reads; nothing is pressed)."""
    reads: asyncio.Queue[BaseException | None] = asyncio.Queue()
    loaded = app._loaded

    def recording(screen: Any, snapshot: Any, error: BaseException | None, elapsed: float) -> None:
        loaded(screen, snapshot, error, elapsed)
        reads.put_nowait(error)

    app._loaded = recording  # type: ignore[method-assign]

    async def until(seen: Callable[[BaseException | None], bool]) -> None:
        async def wait() -> None:
            while not seen(await reads.get()):
                pass
            while not reads.empty():  # the next until looks at later reads only
                reads.get_nowait()

        await asyncio.wait_for(wait(), timeout=60)  # a guard against hanging, not a timing assertion

    return until


async def calm(pilot: Any) -> None:
    """``settle``, where a read the change's own refresh replaced (cancelled) is no failure."""
    while True:
        try:
            await settle(pilot)
            return
        except WorkerCancelled:
            continue


def paused(outage: Outage, prefix: str) -> bool:
    """Whether any stored setting pauses ``mailers``."""
    with psycopg.connect(outage.url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.lysmore_queue_settings WHERE queue = %s AND paused")
                           .format(sql.Identifier(prefix)), (QUEUE,)).fetchone()
    return bool(row and row[0])


async def test_the_cause_in_one_line_and_fresh_again_soon_after_the_database_returns(
        outage: Outage, instance: Engine) -> None:
    app = make_app(outage, instance.prefix)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        until = watch_reads(app)
        await settle(pilot)
        assert app.last_error is None and QUEUE in screen_text(app)

        outage.close()
        await pilot.press("ctrl+r")
        await until(lambda e: e is not None and "not currently accepting connections" in str(e))
        await settle(pilot)
        assert app.last_error is not None and "\n" not in app.last_error
        assert app.last_error.startswith("cannot connect to PostgreSQL at 127.0.0.1")
        assert app.outage == app.last_error
        text = screen_text(app)
        assert "refresh failed: cannot connect to PostgreSQL" in text and "stale" in text
        assert QUEUE in text  # the last good rows stay
        assert app._backoff == OUTAGE_RETRY  # the next try is soon, whatever the rate (60 s here)

        outage.reopen()
        await until(lambda e: e is None)  # the timer's own read, no key pressed
        await settle(pilot)
        assert app.last_error is None and app.outage is None
        assert "stale" not in screen_text(app) and "refresh failed" not in screen_text(app)


async def test_a_change_while_the_database_is_down_is_refused_at_once_and_never_runs_later(
        outage: Outage, instance: Engine) -> None:
    app = make_app(outage, instance.prefix)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        until = watch_reads(app)
        await settle(pilot)
        outage.close()
        await pilot.press("ctrl+r")
        await until(lambda e: e is not None)
        await until(lambda e: e is not None and "not currently accepting connections" in str(e))
        await settle(pilot)

        await pilot.press("P")  # pause mailers: refused before any confirmation
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        refusal = [t for t in toasts(app) if "refused, nothing changed" in t]
        assert refusal and "not currently accepting connections" in refusal[0]

        outage.reopen()
        await until(lambda e: e is None)
        await settle(pilot)
    assert not paused(outage, instance.prefix)  # nothing was left waiting for a connection to run later
    rows = audit(outage, instance.prefix)  # the refusal's row, kept until the database took it
    assert [(r[0], r[1], r[2].get("audited_late")) for r in rows] == [("pause_queue", "failed", True)]


async def test_a_change_confirmed_after_the_database_went_down_fails_with_the_cause_and_is_audited_later(
        outage: Outage, instance: Engine, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(outage, instance.prefix)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        until = watch_reads(app)
        await settle(pilot)
        await until(lambda e: e is None)  # the first read, before the outage
        await pilot.press("P")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)  # asked while the database was up
        outage.close()
        with caplog.at_level(logging.WARNING, logger="lysmore.tui"):
            await pilot.press("y")
            await calm(pilot)
        failed = [t for t in toasts(app) if "failed, nothing changed" in t]
        assert failed and "cannot connect to PostgreSQL at" in failed[0], toasts(app)
        assert "not currently accepting connections" in failed[0]

        outage.reopen()
        await until(lambda e: e is None)
        await settle(pilot)
    assert not paused(outage, instance.prefix)
    rows = audit(outage, instance.prefix)
    assert [(r[0], r[1]) for r in rows] == [("pause_queue", "failed")]
    assert "not currently accepting connections" in rows[0][2]["error"]


def audit(outage: Outage, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    with psycopg.connect(outage.url, autocommit=True) as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(
            sql.SQL("SELECT action, outcome, detail FROM {}.lysmore_audit ORDER BY id")
            .format(sql.Identifier(prefix)))]


async def test_a_dropped_schema_is_named_as_the_cause(outage: Outage, instance: Engine) -> None:
    app = make_app(outage, instance.prefix)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        until = watch_reads(app)
        await settle(pilot)
        with psycopg.connect(outage.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(instance.prefix)))
        await pilot.press("ctrl+r")
        await until(lambda e: e is not None)
        await settle(pilot)
        assert app.last_error is not None and "\n" not in app.last_error
        assert app.last_error.startswith(f"prefix {instance.prefix} has no Lysmore tables in this database")
        assert "does not exist" in app.last_error
        assert app.outage is None  # the server answers: not an outage, changes still go to the gate
