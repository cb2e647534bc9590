"""Engine.insert_many: the bulk path that returns a count, written as COPY text by the engine."""

from __future__ import annotations

import pytest

from engine import InvalidJob, Worker, testing
from tests.helpers import EventLog


class Many(Worker, queue="many", tags=["bulk"], priority=2, max_attempts=5):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return job.args.get("n")


class Odd(Worker, name="odd\tname\nwith \\N", queue="many"):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


class Once(Worker, queue="many", unique={"period": 60}):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


# Every character COPY's text format or a text[] literal treats specially, in args, meta, tags and
# the worker's name.
AWKWARD = "tab\there, line\nend\r, back\\slash \\N, quote\" brace{} comma, ü €"


def _stored(conn, prefix):  # type: ignore[no-untyped-def]
    return conn.execute(
        f"SELECT queue, worker, args, meta, tags, priority, max_attempts, state::text, attempt"
        f" FROM {prefix}.lysmore_jobs ORDER BY id"
    ).fetchall()


def test_every_job_is_stored_with_its_args_and_the_shared_options(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    args = [{"n": i, "s": AWKWARD, "nested": {"t": (1, 2), "k": [True, None]}} for i in range(7_000)]
    args += [None, {}]
    count = eng.insert_many(Odd, args, meta={"m": AWKWARD}, tags=[AWKWARD, "x,y"], queue="q:1", priority=2,
                            max_attempts=5)
    assert count == 7_002
    rows = _stored(conn, prefix)
    assert len(rows) == 7_002
    expected_args = [{"n": i, "s": AWKWARD, "nested": {"t": [1, 2], "k": [True, None]}} for i in range(7_000)]
    assert [r[2] for r in rows] == expected_args + [{}, {}]
    assert {(r[0], r[1], tuple(r[4]), r[5], r[6], r[7], r[8]) for r in rows} == {
        ("q:1", "odd\tname\nwith \\N", (AWKWARD, "x,y"), 2, 5, "available", 0)
    }
    assert {str(r[3]) for r in rows} == {str({"m": AWKWARD})}


def test_the_class_options_apply_when_none_are_given(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    assert eng.insert_many(Many, ({"n": i} for i in range(3))) == 3
    rows = _stored(conn, prefix)
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("many", {"n": i}, {}, ["bulk"], 2, 5) for i in range(3)
    ]


def test_inserted_jobs_are_run(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(queues={"many": 5})
    log = EventLog()
    eng.subscribe(log, kinds=["success"])
    eng.start()
    assert eng.insert_many(Many, [{"n": i} for i in range(40)]) == 40
    log.wait(lambda events: len(events) >= 40)
    testing.flush(eng, 5)
    assert sorted(e.job.args["n"] for e in log.events) == list(range(40))
    assert {r[7] for r in _stored(conn, prefix)} == {"completed"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([{"n": 1}, {"n": 2}, "three"], "args #2 must be a dict (a JSON object), got str"),
        ([{"n": 1}, {"x": object()}], "args #1 is not JSON-serialisable"),
        ([{"n": "\x00"}], "args #0 contains a NUL character"),
        ([{"n": float("nan")}], "args #0 is not JSON-serialisable"),
        ([{"big": "x" * 2_000_000}], "args #0 is at least"),
        ({"n": 1}, "insert_many takes an iterable of args dicts, got one dict"),
    ],
)
def test_bad_args_name_the_job_and_nothing_is_saved(make_engine, conn, prefix, args, message) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with pytest.raises(InvalidJob) as caught:
        eng.insert_many(Many, args)
    assert message in str(caught.value)
    assert _stored(conn, prefix) == []


def test_bad_options_unique_workers_and_non_workers_are_refused(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with pytest.raises(InvalidJob, match="priority must be an integer from 0 to 9"):
        eng.insert_many(Many, [{}], priority=12)
    with pytest.raises(InvalidJob, match="meta must be a dict"):
        eng.insert_many(Many, [{}], meta=["m"])  # type: ignore[arg-type]
    with pytest.raises(InvalidJob, match="is unique: insert its jobs with insert_all"):
        eng.insert_many(Once, [{}])
    with pytest.raises(TypeError, match="insert_many takes a Worker class"):
        eng.insert_many(Many.new({}), [{}])  # type: ignore[arg-type]
    assert eng.insert_many(Many, []) == 0
    assert _stored(conn, prefix) == []


def test_inside_a_callers_transaction_a_rollback_saves_nothing(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with eng.connection() as c:
        with pytest.raises(RuntimeError), c.transaction():
            assert eng.insert_many(Many, [{"n": i} for i in range(200)], conn=c) == 200
            raise RuntimeError("the caller's work failed")
        assert _stored(conn, prefix) == []
        with c.transaction():
            eng.insert_many(Many, [{"n": 1}], conn=c)
    assert len(_stored(conn, prefix)) == 1
