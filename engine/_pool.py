"""The connection pool's check: a dead pooled connection is caught before a statement is sent."""

from __future__ import annotations

import logging
import select
from collections.abc import Callable

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger("lysmore.pool")


def idle_check(get_pool: Callable[[], ConnectionPool | None]) -> Callable[[psycopg.Connection], None]:
    """A ``check`` for ``ConnectionPool`` that costs no round trip in the common case.

    An idle pooled connection has nothing to read unless the server closed it (a restart,
    ``pg_terminate_backend``, an idle timeout): it sent its goodbye and hung up. Only then is the
    connection tested with a query, and with it every idle one of the pool, so one restart costs
    one check instead of one failed caller per pooled connection. Nothing is sent on a dead
    connection, so nothing is ever run twice.
    """

    def check(conn: psycopg.Connection) -> None:
        try:
            readable = bool(select.select([conn.fileno()], [], [], 0)[0])
        except (OSError, ValueError, psycopg.Error):
            readable = True
        if not readable:
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool = get_pool()
            if pool is not None:
                log.warning("a pooled connection was closed by the server; checking the others")
                pool.check()
            raise

    return check
