"""The first promises: a job inserted is run, its return value stored, on real PostgreSQL."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from engine import Job, JobState, Worker, testing
from tests.helpers import EventLog


class Echo(Worker, queue="default"):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"echo": job.args["n"]}


def test_job_runs_and_result_is_stored(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"default": 2})
    log = EventLog()
    eng.subscribe(log, kinds=["success"])
    eng.start()
    job = eng.insert(Echo.new({"n": 7}))
    log.wait(lambda events: any(e.job.id == job.id for e in events))
    testing.flush(eng, 5)
    stored = eng.get_job(job.id)
    assert stored.state is JobState.COMPLETED
    assert stored.result == {"echo": 7}
    assert stored.attempt == 1
    assert stored.attempted_by is not None and stored.attempted_by[0] == eng.node_name


def test_engine_import_pulls_in_no_other_package() -> None:
    code = (
        "import sys, engine, engine.bench; "
        "bad = [m for m in ('textual', 'tui', 'demo', 'licensing', 'stripe') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_args_are_stored_as_given_and_returned_as_stored_by_every_insert_path(make_engine) -> None:  # type: ignore[no-untyped-def]
    """One job (its own statement), a few (one JSON array), many (COPY): what comes back from the
    insert, what is stored and what a later change to the caller's dict does are the same."""
    eng = make_engine()
    for n in (1, 3, 150):
        given = [{"n": i, "s": "ü\"\\", "f": 1.5, "none": None} for i in range(n)]
        nested = {"t": (1, 2), 3: {"k": [True]}}
        specs = [Echo.new(a, meta={"m": i}) for i, a in enumerate(given)] + [Echo.new(nested)]
        for a in given:
            a["n"] = -1  # the caller's dicts change after new(): the specs do not
        jobs = eng.insert_all(specs) if n > 1 else [eng.insert(specs[0]), eng.insert(specs[1])]
        stored = eng.get_jobs([j.id for j in jobs])
        expected = [{"n": i, "s": "ü\"\\", "f": 1.5, "none": None} for i in range(n)] + [{"t": [1, 2], "3": {"k": [True]}}]
        assert [j.args for j in jobs] == expected
        assert [j.args for j in stored] == expected
        assert [j.meta for j in stored] == [{"m": i} for i in range(n)] + [{}]


class Plain(Worker, queue="claims"):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


def test_json_columns_read_through_the_pool_are_what_json_makes_of_them(make_engine) -> None:  # type: ignore[no-untyped-def]
    """The pool's own json/jsonb loader (cheaper than psycopg's) gives what json.loads gives."""
    import json

    import psycopg

    eng = make_engine()
    texts = ['{}', '[]', 'null', '0', '"é\\u00e9 ☃"', '{"a": {}, "b": [[], {"c": null}]}', '[{}]', '  {} ', '1.5e3',
             '{"k": "\\\\u0000 is text"}']
    with eng.connection() as c, psycopg.connect(eng.database_url, autocommit=True) as plain:
        for text in texts:
            for kind in ("jsonb", "json"):
                query = f"SELECT %s::{kind}"
                got, expected = c.execute(query, [text]).fetchone()[0], plain.execute(query, [text]).fetchone()[0]  # type: ignore[index]
                assert got == expected == json.loads(text) and type(got) is type(expected), (kind, text)
        fresh = c.execute("SELECT '{}'::jsonb, '{}'::jsonb").fetchone()
        assert fresh is not None and fresh[0] == {} and fresh[0] is not fresh[1]  # a new dict each: jobs mutate meta


def test_a_claimed_job_is_its_row_read_back(make_engine) -> None:  # type: ignore[no-untyped-def]
    """The fetch builds each Job from its columns by position: every field must land where the
    same row read back by id puts it (a swapped pair of columns would not)."""
    eng = make_engine(queues={"claims": 1})
    spec = Plain.new({"n": 1, "nested": [1, {"a": None}]}, meta={"m": "x"}, tags=["t1", "t2"],
                     priority=3, max_attempts=7, unique={"period": 60})
    inserted = eng.insert(spec)
    with eng.connection() as c:  # an earlier attempt's error, a result left by a hand retry, a workflow
        c.execute(
            f'UPDATE "{eng.prefix}".lysmore_jobs SET errors = %s::jsonb, result = %s::jsonb, '
            "workflow_id = gen_random_uuid(), workflow_name = 'wf', workflow_step = 'b', workflow_deps = '{a}', "
            "completed_at = now() - interval '3 h', cancelled_at = now() - interval '2 h', "
            "discarded_at = now() - interval '1 h' "
            "WHERE id = %s",
            ['[{"attempt": 0, "error": "earlier"}]', '{"r": 1}', inserted.id],
        )
    (claimed,) = testing.fetch(eng, "claims", 1)
    stored = eng.get_job(claimed.id)
    assert claimed.state is JobState.EXECUTING
    names = [f.name for f in dataclasses.fields(Job) if not f.name.startswith("_")]
    assert {n: getattr(claimed, n) for n in names} == {n: getattr(stored, n) for n in names}
    assert (claimed.args, claimed.meta, claimed.tags) == ({"n": 1, "nested": [1, {"a": None}]}, {"m": "x"}, ["t1", "t2"])
    assert (claimed.priority, claimed.attempt, claimed.max_attempts) == (3, 1, 7)
    assert claimed.errors == [{"attempt": 0, "error": "earlier"}] and claimed.result == {"r": 1}
    assert claimed.unique_key is not None and claimed.unique_states == stored.unique_states
    assert (claimed.workflow_name, claimed.workflow_step, claimed.workflow_deps) == ("wf", "b", ["a"])
    assert claimed.attempted_by is not None and claimed.attempted_by[0] == eng.node_name
