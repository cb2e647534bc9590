"""The private instance: its own prefix and schema, invisible to another instance, and never pruned."""

from __future__ import annotations

import psycopg
from psycopg import sql

from engine import Engine, testing
from licensing.app import LicensingApp
from licensing.settings import LicensingSettings
from licensing.workers import UpdateWorker

from ..helpers import wait_for
from .stack import fresh_secrets, make_settings

FINISHED = ("completed", "cancelled", "discarded")


def test_defaults_are_the_private_instance() -> None:
    settings = LicensingSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.prefix == "private" and settings.app_schema == "private_licensing"
    app = LicensingApp(settings)
    try:
        assert app.engine.prefix == "private"
        assert {name: q.local_limit for name, q in app.engine.queues.items()} == {"default": 3}
        assert app.engine.prune_max_age is None
    finally:
        app.stop()


def _jobs_in(conn: psycopg.Connection, prefix: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}.lysmore_jobs").format(sql.Identifier(prefix))).fetchone()
    return int(row[0]) if row else 0


def test_private_jobs_are_invisible_to_another_instance_and_never_pruned(
    database_url: str, prefix: str, conn: psycopg.Connection
) -> None:
    public_prefix = f"{prefix}_pub"
    public = Engine(database_url, prefix=public_prefix, queues={"default": 2}, prune_max_age=60)
    public.migrate()
    app = LicensingApp(make_settings(database_url, prefix, fresh_secrets(), smtp_host="127.0.0.1"))
    app.migrate()
    try:
        # Jobs of accounts that do not exist end at once (discarded), without touching Stripe.
        ids = [app.engine.insert(UpdateWorker.new({"id": 10_000 + i, "plan": "monthly"}, meta=app.job_meta())).id
               for i in range(3)]
        app.start()
        wait_for(lambda: all(j.state.value in FINISHED for j in app.engine.get_jobs(ids)), 15, "jobs finished")

        # Another instance in the same database sees none of them, and its node runs none of them.
        public.start()
        assert public.get_jobs(ids) == [] and _jobs_in(conn, public_prefix) == 0
        assert not any(n for states in public.queue_counts().by_queue.values() for n in states.values())
        assert sum(app.engine.queue_counts().by_queue["default"].values()) == 3
        assert testing.drain(public, "default") == {}
        tables = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_schema IN (%s, %s, %s)",
            [prefix, f"{prefix}_licensing", public_prefix],
        ).fetchall()
        assert {t[0] for t in tables} == {prefix, f"{prefix}_licensing", public_prefix}

        # Make the finished jobs ancient, then run the pruner as the private instance's leader.
        conn.execute(
            sql.SQL(
                "UPDATE {}.lysmore_jobs SET inserted_at = now() - interval '400 days', "
                "completed_at = completed_at - interval '400 days', discarded_at = discarded_at - interval '400 days', "
                "cancelled_at = cancelled_at - interval '400 days'"
            ).format(sql.Identifier(prefix))
        )
        wait_for(lambda: app.engine.is_leader, 10, "the private node to lead")
        assert app.engine.prune() == 0
        assert _jobs_in(conn, prefix) == 3
        app.stop(1.0)

        # The same rows under an instance that prunes would go: the check above was not vacuous.
        pruner = Engine(database_url, prefix=prefix, prune_max_age=60)
        try:
            assert pruner.prune() == 3
        finally:
            pruner.stop()
    finally:
        app.stop(1.0)
        public.stop(1.0)
