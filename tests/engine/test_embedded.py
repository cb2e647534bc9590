"""No database URL configured: the engine starts the embedded PostgreSQL server in its data
directory, migrates and runs a job end to end."""

from __future__ import annotations

import pytest

import engine._embedded as embedded_mod
from engine import Engine, JobState, Worker
from tests.engine._support import wait_end
from tests.helpers import EventLog

Q = "embedded"


class Hello(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"hello": job.args["who"]}


@pytest.mark.embedded
def test_engine_without_a_url_uses_the_embedded_server(monkeypatch, tmp_path, prefix) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LYSMORE_DATABASE_URL", raising=False)
    data_dir = tmp_path / "pgdata"
    monkeypatch.setenv("LYSMORE_DATA_DIR", str(data_dir))
    eng = Engine(prefix=prefix, queues={Q: 1}, poll_interval=0.2, stage_interval=0.2)
    try:
        assert eng.migrate()  # versions applied to a brand-new server
        assert (data_dir / "PG_VERSION").exists()
        assert data_dir.resolve() in embedded_mod._servers  # our server, in our data directory
        assert eng.database_url.startswith("postgresql://")
        log = EventLog()
        eng.subscribe(log)
        eng.start()
        job = eng.insert(Hello.new({"who": "embedded"}))
        row = wait_end(eng, log, job.id, timeout=30)
        assert row.state is JobState.COMPLETED
        assert row.result == {"hello": "embedded"}
        assert eng.migrate() == []  # idempotent
    finally:
        eng.stop(grace=1)
        server = embedded_mod._servers.pop(data_dir.resolve(), None)
        if server is not None:
            server.cleanup()
