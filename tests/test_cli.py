"""The command line as a user starts it: the installed ``lysmore`` script in a real process.

Every bad start is one line on stderr and exit code 2: no traceback, no password, nothing created.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from engine import Engine
from tests.conftest import SERVER_PASSWORD, free_port, with_database

PASSWORD = "Hunter2pw-secret"  # the password a user typed: never printed, right or wrong
LYSMORE = [str(Path(sys.executable).with_name("lysmore"))]


def lysmore(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed ``lysmore`` script with no database configured unless ``env`` says so."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    return subprocess.run([*LYSMORE, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Assert the bad start's shape: exit 2, nothing on stdout, one line on stderr holding ``expected``."""
    err = result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert result.stdout == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert PASSWORD not in err
    for text in expected:
        assert text in err, (text, err)
    return err.strip()


@pytest.fixture
def no_demo(tmp_path: Path) -> dict[str, str]:
    """An environment with no database URL and an embedded data directory where nothing runs."""
    return {"LYSMORE_DATA_DIR": str(tmp_path / "pgdata"), "HOME": str(tmp_path)}


@pytest.mark.parametrize("command", [["status"], ["dashboard"], ["migrate"], ["worker", "--app", "demo.runner:node"]])
def test_no_database_configured_is_one_line_and_creates_nothing(command: list[str], no_demo: dict[str, str],
                                                                tmp_path: Path) -> None:
    line = one_line(lysmore(*command, env=no_demo), "LYSMORE_DATABASE_URL", "--database-url")
    assert line.startswith(f"lysmore {command[0]}: no database is configured")
    assert not (tmp_path / "pgdata").exists()  # no empty embedded server was made


def test_nothing_listening(no_demo: dict[str, str]) -> None:
    url = f"postgresql://root:{PASSWORD}@127.0.0.1:{free_port()}/test"
    one_line(lysmore("status", "--database-url", url, env=no_demo), "cannot connect to PostgreSQL at 127.0.0.1:",
             "refused")


def test_a_server_that_never_answers_times_out_in_one_line(no_demo: dict[str, str]) -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        url = f"host=127.0.0.1 port={port} dbname=test user=root password={PASSWORD}"
        result = lysmore("status", "--database-url", url, "--connect-timeout", "2", env=no_demo)
    one_line(result, f"127.0.0.1:{port}/test", "timeout")


def test_unknown_host(no_demo: dict[str, str]) -> None:
    url = f"postgresql://root@no-such-host.invalid/test?password={PASSWORD}"
    one_line(lysmore("status", "--database-url", url, env=no_demo), "no-such-host.invalid")


def test_missing_database(server_url: str, no_demo: dict[str, str]) -> None:
    url = with_database(server_url, "lysmore_no_such_database")
    one_line(lysmore("dashboard", "--database-url", url, env=no_demo),
             'database "lysmore_no_such_database" does not exist')


@pytest.mark.parametrize("form", ["url", "query", "keywords"])
def test_bad_password_names_the_cause_and_never_the_password(password_server: int, form: str,
                                                             no_demo: dict[str, str]) -> None:
    url = {
        "url": f"postgresql://root:{PASSWORD}@127.0.0.1:{password_server}/postgres",
        "query": f"postgresql://root@127.0.0.1:{password_server}/postgres?password={PASSWORD}",
        "keywords": f"host=127.0.0.1 port={password_server} dbname=postgres user=root password='{PASSWORD}'",
    }[form]
    line = one_line(lysmore("status", "--database-url", url, env=no_demo), "password authentication failed")
    assert f"127.0.0.1:{password_server}/postgres" in line


def test_right_password_works(password_server: int, no_demo: dict[str, str]) -> None:
    url = f"postgresql://root:{SERVER_PASSWORD}@127.0.0.1:{password_server}/postgres"
    assert lysmore("migrate", "--database-url", url, "--prefix", "pw_ok", env=no_demo).returncode == 0
    result = lysmore("status", "--database-url", url, "--prefix", "pw_ok", "--json", env=no_demo)
    assert result.returncode == 0, result.stderr
    assert SERVER_PASSWORD not in result.stdout + result.stderr


def test_verbose_shows_the_detail(no_demo: dict[str, str]) -> None:
    url = f"postgresql://root:{PASSWORD}@127.0.0.1:{free_port()}/test"
    result = lysmore("-v", "status", "--database-url", url, env=no_demo)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "OperationalError" in result.stderr
    assert PASSWORD not in result.stderr


def test_prefix_that_does_not_exist_names_the_ones_that_do(server_url: str, prefix: str,
                                                           no_demo: dict[str, str]) -> None:
    name = f"lysmore_prefixes_{prefix}"  # a database of its own: the run's database holds many prefixes
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = with_database(server_url, name)
        for other in (prefix, "public"):
            eng = Engine(url, prefix=other)
            eng.migrate()
            eng.stop()
        for command in ("status", "dashboard"):
            line = one_line(lysmore(command, "--database-url", url, "--prefix", "nope_nope", env=no_demo),
                            f"prefix 'nope_nope' does not exist (instances here: public, {prefix})",
                            "lysmore migrate --prefix nope_nope")
            assert line.startswith(f"lysmore {command}: ")
    finally:
        with psycopg.connect(server_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_unmigrated_prefix_says_to_migrate(conn: psycopg.Connection, database_url: str, prefix: str,
                                           no_demo: dict[str, str]) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(prefix)))
    for command in ("status", "dashboard"):
        one_line(lysmore(command, "--database-url", database_url, "--prefix", prefix, env=no_demo),
                 f"prefix '{prefix}' is at migration 0", f"run `lysmore migrate --prefix {prefix}`")
    result = lysmore("migrate", "--database-url", database_url, "--prefix", prefix, env=no_demo)
    assert result.returncode == 0 and "applied" in result.stdout
    assert lysmore("status", "--database-url", database_url, "--prefix", prefix, env=no_demo).returncode == 0


def test_schema_newer_than_the_code(conn: psycopg.Connection, database_url: str, prefix: str,
                                    no_demo: dict[str, str]) -> None:
    Engine(database_url, prefix=prefix).migrate()
    conn.execute(sql.SQL("INSERT INTO {}.lysmore_migrations (version) VALUES (999)").format(sql.Identifier(prefix)))
    for command in ("status", "dashboard", "migrate"):
        one_line(lysmore(command, "--database-url", database_url, "--prefix", prefix, env=no_demo),
                 "at migration 999, newer than this lysmore knows", "upgrade lysmore")


@pytest.mark.parametrize("app, expected", [
    ("nodots", "--app must look like MODULE:ATTR"),
    ("no_such_module_here:node", "cannot import 'no_such_module_here'"),
    ("demo.runner:no_such_factory", "has no attribute 'no_such_factory'"),
    ("tests.engine._fails_on_import:x", "importing 'tests.engine._fails_on_import' failed: RuntimeError"),
    ("demo.runner:DEFAULT_PREFIX", "is not an Engine"),
])
def test_bad_app_path(app: str, expected: str, database_url: str, no_demo: dict[str, str]) -> None:
    env = {**no_demo, "LYSMORE_DATABASE_URL": database_url}
    one_line(lysmore("worker", "--app", app, env=env), expected)


def test_missing_extra_names_it(database_url: str, prefix: str) -> None:
    """With Textual absent, the dashboard says which extra brings it, before connecting."""
    code = "import sys; sys.modules['textual'] = None; from lysmore.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    result = subprocess.run([sys.executable, "-c", code, "dashboard", "--database-url", database_url,
                             "--prefix", prefix], env=env, capture_output=True, text=True, timeout=60)
    one_line(result, "lysmore dashboard: needs the dashboard extra", "pip install 'lysmore[dashboard]'")


@pytest.mark.embedded
def test_status_attaches_to_a_running_demo_server(tmp_path: Path) -> None:
    """No URL, but a demo's embedded server runs: status reads it (prefix demo), and creates nothing."""
    import engine._embedded as embedded_mod

    data_dir = tmp_path / "pgdata"
    url = embedded_mod.embedded_url(data_dir)
    try:
        eng = Engine(url, prefix="demo")
        eng.migrate()
        eng.stop()
        result = lysmore("status", "--json", env={"LYSMORE_DATA_DIR": str(data_dir), "HOME": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        assert '"nodes": []' in result.stdout
        with psycopg.connect(url) as c:
            names = {row[0] for row in c.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'public'"
                                                 " OR nspname = 'demo'")}
            assert names == {"public", "demo"}
            assert c.execute("SELECT to_regclass('public.lysmore_jobs')").fetchone() == (None,)
    finally:
        server = embedded_mod._servers.pop(data_dir.resolve(), None)
        if server is not None:
            server.cleanup()


def test_the_shell_knows_the_demo_prefix() -> None:
    from demo.runner import DEFAULT_PREFIX
    from lysmore.cli import DEMO_PREFIX

    assert DEMO_PREFIX == DEFAULT_PREFIX


def test_worker_on_an_unmigrated_prefix_without_migrating(database_url: str, prefix: str,
                                                          no_demo: dict[str, str]) -> None:
    env = {**no_demo, "LYSMORE_DATABASE_URL": database_url, "LYSMORE_PREFIX": prefix}
    one_line(lysmore("worker", "--app", "demo.runner:node", "--no-migrate", env=env),
             f"prefix '{prefix}' does not exist", f"lysmore migrate --prefix {prefix}")


def test_migrate_cannot_connect(no_demo: dict[str, str]) -> None:
    url = f"host=127.0.0.1 port={free_port()} dbname=test user=root password={PASSWORD}"
    one_line(lysmore("migrate", "--database-url", url, env=no_demo), "lysmore migrate: cannot connect")


FORMS = {
    "url": "postgresql://root:{pw}@127.0.0.1:{port}/{db}",
    "query": "postgresql://root@127.0.0.1:{port}/{db}?sslmode=disable&password={pw}",
    "keywords": "host=127.0.0.1 port={port} dbname={db} user=root password='{pw}'",
}
COMMANDS = {  # every command that connects; those without --database-url read the environment
    "status": ["status"], "migrate": ["migrate"], "dashboard": ["dashboard"],
    "worker": ["worker", "--app", "demo.runner:node"], "bench": ["bench", "--jobs", "10"],
    "bench-dashboard": ["bench", "--dashboard", "--rows", "10"],
    "demo": ["demo", "--headless", "--duration", "1"], "licensing": ["licensing", "serve", "--port", "0"],
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_prints_a_password_in_any_form(form: str, command: str, no_demo: dict[str, str]) -> None:
    url = FORMS[form].format(pw=PASSWORD, port=free_port(), db="test")
    env = {**no_demo, "LYSMORE_DATABASE_URL": url, "PGPASSWORD": PASSWORD + "-env"}
    result = lysmore(*COMMANDS[command], env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr  # PGPASSWORD's value contains it too


def test_bench_with_an_async_worker(database_url: str, no_demo: dict[str, str]) -> None:
    result = lysmore("bench", "--async", "--jobs", "30", "--json", "--database-url", database_url, env=no_demo,
                     timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["async_worker"] is True and data["jobs"] == 30 and data["process_per_s"] > 0
