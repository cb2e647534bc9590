"""Connections: the first contact (probe, pooler detection, one-line errors) and the pool, whose
check catches a dead pooled connection before a statement is sent."""

from __future__ import annotations

import functools
import json
import logging
import re
import select
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar, cast

import psycopg
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from ._errors import DatabaseUnavailable
from ._settings import redact_url, server_label

log = logging.getLogger("lysmore.pool")

F = TypeVar("F", bound=Callable[..., Any])
MOVED_TRIES = 5


_decoder = json.JSONDecoder()
_decode_json = _decoder.decode
# decode() without its two whitespace matches (typeshed does not declare the attribute)
_scan_json: Callable[[str, int], tuple[Any, int]] = getattr(_decoder, "scan_once")  # noqa: B009


class JsonLoader(Loader):
    """json and jsonb columns as Python values, as psycopg's own loader gives them, cheaper: the
    empty object and array (most jobs' meta, every fresh job's errors) without the json module, and
    the rest decoded from text (``json.loads`` of bytes first guesses their encoding). A fetch reads
    three such columns a job: about 5 us of the producer's 20 a job less."""

    def load(self, data: Any) -> Any:
        if type(data) is not bytes:
            data = bytes(data)
        if data == b"{}":
            return {}
        if data == b"[]":
            return []
        text = data.decode()
        try:  # PostgreSQL's jsonb text has no whitespace around it: scanned whole, it is the value
            value, end = _scan_json(text, 0)
        except (StopIteration, ValueError):
            return _decode_json(text)  # json column text with spaces, or bad: decode() says why
        return value if end == len(text) else _decode_json(text)


def configure(conn: psycopg.Connection) -> None:
    """Set up a new connection of an engine's pool: its json and jsonb loaders."""
    conn.adapters.register_loader("jsonb", JsonLoader)
    conn.adapters.register_loader("json", JsonLoader)


def retried_when_moved(method: F) -> F:
    """Run ``method`` again when PostgreSQL refused it because a concurrent statement moved a row
    it wanted between the live and the finished side of the jobs table (SQLSTATE 40001: an UPDATE
    or a row lock does not follow a row to another partition). The statements are compare-and-set,
    so a second run decides afresh on the row as it is now. Only work on connections of its own is
    run again: given the caller's connection (an argument that is one), the error is the caller's.
    """

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        tries = 0
        while True:
            tries += 1
            try:
                return method(*args, **kwargs)
            except psycopg.errors.SerializationFailure:
                own = not any(isinstance(a, psycopg.Connection) for a in (*args, *kwargs.values()))
                if not own or tries >= MOVED_TRIES:
                    raise
                log.debug("row moved by a concurrent statement, running again", extra={"call": method.__name__})

    return cast(F, run)


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


def connect_problem(exc: BaseException) -> str:
    """psycopg's connection error as one line without the server address (the caller names it).

    libpq's message is several lines, starts with where it tried (``connection to server at
    "h", port 5432 failed:``) and carries ``FATAL:`` markers; what remains is the cause.
    """
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = re.sub(r"^connection failed:\s*", "", text)
    text = re.sub(r'connection to server (at "[^"]*"(?: \([^)]*\))?, port \d+|on socket "[^"]*") failed:\s*', "", text)
    text = re.sub(r"\b(FATAL|ERROR):\s+", "", text)
    # libpq quotes the word it choked on in a bad keyword string: a password's second word, maybe.
    text = re.sub(r'missing "=" after "[^"]*"', 'missing "=" after a word', text)
    return text.strip() or type(exc).__name__


def probe(url: str, timeout: float) -> bool:
    """Open and close one connection, so a bad address fails once, quickly and in one line; True
    when the connection goes through a pooler (PgBouncer and its kind).

    A pool would retry in the background and log a warning per attempt until its own timeout.
    Raises ``DatabaseUnavailable`` naming the server (never its password) and the cause.
    """
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True,
                             prepare_threshold=None) as conn:
            return behind_pooler(conn)
    except psycopg.Error as exc:
        if not parses(url):  # libpq's own message quotes a piece of it, maybe of a password
            raise unavailable(url, exc) from None
        raise unavailable(url, exc) from exc


def parses(url: str) -> bool:
    """Whether libpq can read ``url`` (a URL or a keyword/value string)."""
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return False
    return True


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """The one-line error for a failed connection to ``url``: server and cause, no password."""
    return DatabaseUnavailable(f"cannot connect to PostgreSQL at {server_label(url)}: "
                               f"{redact_url(connect_problem(exc))}")


def behind_pooler(conn: psycopg.Connection) -> bool:
    """True when ``conn`` reaches PostgreSQL through a connection pooler.

    A pooler hands its clients a cancel key of its own, so the backend pid the client was told
    differs from the one the server runs the session in; a plain TCP forward (a container's
    port mapping) keeps them equal.
    """
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return row is not None and row[0] != conn.info.backend_pid


class _Lease:
    """One pooled connection for a ``with`` block: taken on entry, given back on exit, with the
    connection's own block (commit, or roll back on an error) inside. A class rather than nested
    generators: every statement of the engine takes one, and a single insert spent about a fifth
    of its time in getting and giving back its connection."""

    __slots__ = ("_db", "_pool", "_conn")

    def __init__(self, db: Database, pool: ConnectionPool) -> None:
        self._db, self._pool = db, pool
        self._conn: psycopg.Connection | None = None

    def __enter__(self) -> psycopg.Connection:
        try:
            conn = self._pool.getconn(timeout=self._db.wait)
        except PoolTimeout as exc:
            raise self._db._unavailable(exc) from exc
        try:
            conn.__enter__()
        except BaseException:
            self._pool.putconn(conn)
            raise
        self._conn = conn
        return conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        try:
            conn.__exit__(kind, exc, tb)
        finally:
            self._pool.putconn(conn)


class Database:
    """The pool of one engine, opened on first use: a probe first (one clear error, and the pooler
    detected), then a pool whose dead connections are caught before a statement is sent.

    ``url`` is asked for only then, so an embedded server starts only when a connection is wanted.
    A caller that waited ``wait`` seconds (None: the pool's 30) for a pooled connection gets
    ``DatabaseUnavailable`` with the cause a direct connection attempt reports. With ``fail_fast``,
    while that cause lasts every later caller is refused after one direct attempt, without waiting
    on the pool again: what a dashboard wants, so an action is refused at once, never queued.
    """

    def __init__(
        self, url: Callable[[], str], *, size: int, connect_timeout: float, application_name: str,
        pooler: bool | None, name: str, wait: float | None = None, fail_fast: bool = False,
    ) -> None:
        self._url = url
        self.size = size
        self.connect_timeout = connect_timeout
        self.application_name = application_name
        self.pooler = pooler  # None: detect at the first connection
        self.name = name
        self.wait = wait
        self.fail_fast = fail_fast
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._down: DatabaseUnavailable | None = None  # the outage last seen (fail_fast only)

    @property
    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = self._open()
            return self._pool

    def _open(self) -> ConnectionPool:
        url = self._url()
        proxied = probe(url, self.connect_timeout)
        if self.pooler is None:
            self.pooler = proxied
            if proxied:
                log.info("connected through a pooler: no prepared statements, LISTEN only on listen_url")
        kwargs: dict[str, Any] = {
            "autocommit": True, "connect_timeout": max(1, round(self.connect_timeout)),
            "application_name": self.application_name,
        }
        if self.pooler:  # a transaction pooler hands each transaction to any server session
            kwargs["prepare_threshold"] = None
        pool = ConnectionPool(
            url, min_size=1, max_size=self.size, kwargs=kwargs, open=False, name=self.name,
            reconnect_timeout=0, check=idle_check(lambda: self._pool), configure=configure,
        )
        try:
            pool.open(wait=True, timeout=self.connect_timeout)
        except Exception as exc:
            pool.close()
            raise self._cause(url, exc) from exc
        return pool

    def _cause(self, url: str, exc: BaseException) -> DatabaseUnavailable:
        """The one-line error for ``exc`` from the pool: a pool only says it timed out
        (``pool initialization incomplete``, ``couldn't get a connection``), so a direct
        connection attempt names the cause (no such database or role, refused, timed out)."""
        if not isinstance(exc, PoolTimeout):
            return unavailable(url, exc)
        return self._probe(url) or self._busy(url)

    def _busy(self, url: str) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"no free connection to PostgreSQL at {server_label(url)} within "
                                   f"{self.wait if self.wait is not None else 30:g}s (the server answers; "
                                   f"all {self.size} of the pool's connections are busy)")

    def _probe(self, url: str) -> DatabaseUnavailable | None:
        """Why a direct connection to ``url`` fails now, or None when it goes through."""
        try:
            probe(url, self.connect_timeout)
        except DatabaseUnavailable as down:
            return down
        return None

    def _pooled(self) -> _Lease:
        """A connection from the pool, or ``DatabaseUnavailable`` naming why there is none."""
        pool = self.pool
        if self.fail_fast and self._down is not None:
            self._down = self._probe(self._url())  # down still: refused now, not after a wait
            if self._down is not None:
                raise self._down
        return _Lease(self, pool)

    def _unavailable(self, exc: PoolTimeout) -> DatabaseUnavailable:
        """Why no pooled connection came within the wait: the server is down (a direct attempt
        fails: remembered when failing fast), or every pooled connection is busy."""
        url = self._url()
        down = self._probe(url)
        if down is None:
            return self._busy(url)
        if self.fail_fast:
            self._down = down
        return down

    def connection(self, conn: psycopg.Connection | None = None) -> AbstractContextManager[psycopg.Connection]:
        """The caller's connection when given, else one from the pool (autocommit)."""
        if conn is not None:
            return nullcontext(conn)
        return self._pooled()

    @contextmanager
    def atomic(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """A connection and a transaction for statements that must commit together.

        With the caller's ``conn`` the work joins the caller's transaction (as a savepoint) and
        is committed or rolled back by the caller, never here.
        """
        if conn is None:
            with self._pooled() as pooled, pooled.transaction():
                yield pooled
            return
        if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.execute("SELECT 1")  # open the caller's transaction, so ours is a savepoint in it
        with conn.transaction():
            yield conn

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
