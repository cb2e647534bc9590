"""Bad input: a typed error naming the problem before any SQL runs, and nothing written; bad
workers at run time (missing, unimportable, SystemExit, KeyboardInterrupt) never stop the node."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import (
    Engine,
    InvalidConfig,
    InvalidJob,
    JobNotFound,
    JobSpec,
    JobState,
    Snooze,
    Worker,
    testing,
)
from tests.engine._support import count_jobs, start_node, wait_end

Q = "badinput"
MIB = 1_048_576
# Nothing listens here: a call that reached the database would fail with a connection error.
NOWHERE = "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=1"


class Plain(Worker, queue=Q):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return "ok"


class Exits(Worker, queue=Q, max_attempts=3):
    def perform(self, job):  # type: ignore[no-untyped-def]
        sys.exit(3)


class Interrupted(Worker, queue=Q, max_attempts=3):
    def perform(self, job):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt


class AsyncExits(Worker, queue=Q, max_attempts=3):
    async def perform(self, job):  # type: ignore[no-untyped-def]
        raise SystemExit(4)


class Unpicklable:
    pass


BAD_JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("args-object", {"args": {"x": Unpicklable()}}, "args is not JSON-serialisable"),
    ("args-set", {"args": {"x": {1, 2}}}, "args is not JSON-serialisable"),
    ("args-nan", {"args": {"x": float("nan")}}, "args is not JSON-serialisable"),
    ("args-list", {"args": [1, 2]}, "args must be a dict"),
    ("args-nul", {"args": {"s": "a\x00b"}}, "NUL"),
    ("args-nul-nested", {"args": {"a": [1, {"b": ("x", "y\x00")}]}}, "NUL"),
    ("args-nul-key", {"args": {"ok": {"k\x00": 1}}}, "NUL"),
    ("args-surrogate", {"args": {"s": "\ud800"}}, "not valid Unicode"),
    ("args-too-big", {"args": {"blob": "x" * MIB}}, "over the cap"),
    ("meta-nul", {"meta": {"m": "\x00"}}, "meta contains a NUL"),
    ("meta-too-big", {"meta": {"blob": "x" * MIB}}, "meta is"),
    ("priority-high", {"priority": 10}, "priority"),
    ("priority-negative", {"priority": -1}, "priority"),
    ("priority-bool", {"priority": True}, "priority"),
    ("priority-float", {"priority": 1.5}, "priority"),
    ("priority-str", {"priority": "1"}, "priority"),
    ("max-attempts-zero", {"max_attempts": 0}, "max_attempts"),
    ("max-attempts-negative", {"max_attempts": -3}, "max_attempts"),
    ("max-attempts-bool", {"max_attempts": True}, "max_attempts"),
    ("max-attempts-huge", {"max_attempts": 2**40}, "max_attempts"),
    ("scheduled-naive", {"scheduled_at": datetime(2030, 1, 1)}, "naive"),
    ("scheduled-not-datetime", {"scheduled_at": "2030-01-01"}, "scheduled_at must be a datetime"),
    ("both-times", {"scheduled_at": datetime.now(UTC), "schedule_in": 5}, "not both"),
    ("schedule-in-negative", {"schedule_in": -1}, "schedule_in"),
    ("schedule-in-nan", {"schedule_in": float("nan")}, "schedule_in"),
    ("schedule-in-inf", {"schedule_in": float("inf")}, "schedule_in"),
    ("schedule-in-bool", {"schedule_in": True}, "schedule_in"),
    ("queue-empty", {"queue": ""}, "queue name"),
    ("queue-space", {"queue": "has space"}, "malformed"),
    ("queue-leading-dash", {"queue": "-x"}, "malformed"),
    ("queue-too-long", {"queue": "q" * 129}, "malformed"),
    ("queue-not-ascii", {"queue": "queüe"}, "malformed"),
    ("queue-nul", {"queue": "a\x00"}, "malformed"),
    ("tags-str", {"tags": "email"}, "tags must be a list"),
    ("tags-empty-tag", {"tags": [""]}, "tag"),
    ("tags-nul", {"tags": ["a\x00"]}, "tag"),
    ("tags-too-many", {"tags": [f"t{i}" for i in range(65)]}, "at most 64 tags"),
]


@pytest.mark.parametrize(("kwargs", "message"), [c[1:] for c in BAD_JOBS], ids=[c[0] for c in BAD_JOBS])
def test_bad_job_raises_invalid_job_and_writes_nothing(make_engine, conn, prefix, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    kwargs = dict(kwargs)
    args = kwargs.pop("args", {"n": 1})
    with pytest.raises(InvalidJob, match=message):
        eng.insert(Plain.new(args, **kwargs))
    with pytest.raises(InvalidJob, match=message):
        eng.insert_all([Plain.new({"n": 0}), Plain.new(args, **kwargs)])
    assert count_jobs(conn, prefix) == 0


@pytest.mark.parametrize(("kwargs", "message"), [c[1:] for c in BAD_JOBS], ids=[c[0] for c in BAD_JOBS])
def test_bad_job_is_refused_before_any_sql(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    eng = Engine(database_url=NOWHERE, prefix="never_used")
    kwargs = dict(kwargs)
    args = kwargs.pop("args", {"n": 1})
    try:
        with pytest.raises(InvalidJob, match=message):  # not a connection error
            eng.insert(Plain.new(args, **kwargs))
        with pytest.raises(InvalidJob, match=message):
            JobSpec.build(worker=Plain.name, queue=kwargs.pop("queue", Q), args=args, **kwargs)
    finally:
        eng.stop()


@pytest.mark.parametrize("worker", ["", "a\x00b", "w" * 256, 5])
def test_bad_worker_name(worker) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidJob, match="worker"):
        JobSpec.build(worker=worker, queue=Q, args={})


def test_args_just_under_the_cap_are_accepted(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    padding = MIB - len('{"blob":""}')
    job = eng.insert(Plain.new({"blob": "x" * padding}))
    assert len(eng.get_job(job.id).args["blob"]) == padding
    with pytest.raises(InvalidJob, match="over the cap"):
        Plain.new({"blob": "x" * (padding + 1)})
    assert count_jobs(conn, prefix) == 1


def test_stored_args_are_what_json_makes_of_them(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    spec = Plain.new({"t": (1, 2), "n": None, "u": "é€😀", 3: "int key"})
    job = eng.insert(spec)
    assert job.args == {"t": [1, 2], "n": None, "u": "é€😀", "3": "int key"}
    assert eng.get_job(job.id).args == job.args


def test_insert_takes_only_job_specs(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with pytest.raises(TypeError, match="JobSpec"):
        eng.insert({"worker": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JobSpec"):
        eng.insert_all([Plain.new({}), "nope"])  # type: ignore[list-item]
    assert count_jobs(conn, prefix) == 0


def test_insert_all_is_all_or_nothing(make_engine, conn, prefix) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    good = [Plain.new({"n": i}) for i in range(150)]  # enough for the COPY path
    # A spec built around validation: the database refuses it, and takes none of the others.
    bad = JobSpec(worker=Plain.name, queue=Q, args={}, priority=99)
    for batch in (good[:3] + [bad], good + [bad]):
        with pytest.raises(Exception):  # noqa: B017 - whatever the database raises
            eng.insert_all(batch)
    assert count_jobs(conn, prefix) == 0


def test_bad_snooze_values_are_refused() -> None:
    for seconds in (-1, float("nan"), float("inf"), True, "5", 11 * 365 * 86_400):
        with pytest.raises(InvalidJob, match="Snooze"):
            Snooze(seconds)  # type: ignore[arg-type]


def test_bad_worker_options_are_refused_at_class_definition() -> None:
    with pytest.raises(InvalidJob, match="priority"):
        type("BadPriority", (Worker,), {}, priority=10)
    with pytest.raises(InvalidJob, match="queue"):
        type("BadQueue", (Worker,), {}, queue="bad queue")
    with pytest.raises(InvalidJob, match="timeout"):
        type("BadTimeout", (Worker,), {}, timeout=0)
    with pytest.raises(InvalidJob, match="max_attempts"):
        type("BadAttempts", (Worker,), {}, max_attempts=0)


def test_a_spec_from_the_class_options_is_the_spec_build_makes() -> None:
    class Tagged(Worker, queue="tagged", priority=3, max_attempts=4, tags=["a", "b", "a"]):
        def perform(self, job):  # type: ignore[no-untyped-def]
            pass

    quick = Tagged.new({"x": (1, 2)}, meta={"m": 1})  # the class's options, checked once
    built = JobSpec.build(worker=Tagged.name, queue="tagged", args={"x": (1, 2)}, meta={"m": 1}, tags=["a", "b"],
                          priority=3, max_attempts=4)
    assert quick == built and quick.json_args() == built.json_args() == '{"x":[1,2]}'
    assert quick.tags == ["a", "b"] and quick.tags is not Tagged.new({}).tags


def test_a_spec_copied_with_other_args_or_meta_sends_those() -> None:
    import dataclasses

    spec = Plain.new({"a": 1}, meta={"m": 1})
    other = dataclasses.replace(spec, args={"b": 2})
    assert (other.json_args(), other.json_meta()) == ('{"b":2}', '{"m":1}')
    assert dataclasses.replace(spec, meta={"n": 3}).json_meta() == '{"n":3}'
    assert (spec.json_args(), spec.json_meta()) == ('{"a":1}', '{"m":1}')


def test_text_that_only_looks_like_an_escaped_nul_is_stored() -> None:
    spec = JobSpec.build(worker="w", queue="q", args={"path": "C:\\u0000", "nul": "\\\\u0000"})
    assert spec.args == {"path": "C:\\u0000", "nul": "\\\\u0000"}
    with pytest.raises(InvalidJob, match="NUL"):
        JobSpec.build(worker="w", queue="q", args={"path": "C:\\\x00"})


def test_a_class_option_changed_after_definition_is_checked_again() -> None:
    class Later(Worker, queue="later"):
        def perform(self, job):  # type: ignore[no-untyped-def]
            pass

    Later.new({})
    Later.queue = "bad queue"
    with pytest.raises(InvalidJob, match="queue name 'bad queue' is malformed"):
        Later.new({})
    Later.queue, Later.priority = "later", 10
    with pytest.raises(InvalidJob, match="priority"):
        Later.new({})
    Later.priority = 2
    assert Later.new({}).priority == 2


@pytest.mark.parametrize(
    "prefix_name", ["Bad", "1abc", "", "a-b", "x" * 49, 'a"; drop schema public', "pub lic"]
)
def test_bad_prefix_is_invalid_config(prefix_name) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="prefix"):
        Engine(database_url=NOWHERE, prefix=prefix_name)


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ({"default": 0}, "limit"),
        ({"default": -1}, "limit"),
        ({"default": True}, "must be an int limit"),
        ({"default": 10_001}, "limit"),
        ({"default": "ten"}, "must be an int limit"),
        ({"bad name": 1}, "malformed"),
        ({"": 1}, "queue name"),
        ({"q": {"nope": 1}}, "unknown options"),
        (["default"], "queues must be a dict"),
    ],
)
def test_bad_queue_config_is_invalid_config(queues, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match=message):
        Engine(database_url=NOWHERE, prefix="ok", queues=queues)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"stage_interval": -1}, "stage_interval"),
        ({"shutdown_grace": -1}, "shutdown_grace"),
        ({"node": "n" * 129}, "node name"),
        ({"node_ttl": 0}, "node_ttl"),
        ({"orphan_after": -5}, "orphan_after"),
        ({"prune_max_age": 0}, "prune_max_age"),
    ],
)
def test_bad_engine_settings_are_invalid_config(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match=message):
        Engine(database_url=NOWHERE, prefix="ok", **kwargs)


def test_bad_prefix_from_the_environment_is_invalid_config(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LYSMORE_PREFIX", "Not-Valid")
    with pytest.raises(InvalidConfig, match="prefix"):
        Engine(database_url=NOWHERE)


@pytest.mark.parametrize(
    "worker",
    [
        "tests.engine.no_such_module.Missing",  # no module
        "tests.engine.test_bad_input.Missing",  # module, no class
        "NoDotsAtAll",
        "tests.engine._fails_on_import.Worker",  # the module raises on import
        "tests.engine._exits_on_import.Worker",  # the module calls sys.exit() on import
    ],
)
def test_unknown_worker_is_discarded_and_the_node_keeps_running(make_engine, worker) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2})
    lost = eng.insert(JobSpec.build(worker=worker, queue=Q, args={}))
    row = wait_end(eng, log, lost.id)
    assert row.state is JobState.DISCARDED
    assert row.discarded_at is not None
    (entry,) = row.errors
    assert worker in entry["error"] and "not found" in entry["error"]
    assert set(entry) == {"attempt", "at", "error", "traceback", "node", "started_at"}
    assert entry["node"] == row.attempted_by[0] and entry["started_at"] == row.attempted_at.isoformat()
    # the node still runs jobs of that queue
    fine = eng.insert(Plain.new({}))
    assert wait_end(eng, log, fine.id).state is JobState.COMPLETED
    assert eng._producers[Q]._thread.is_alive()


@pytest.mark.parametrize(
    ("worker", "error"),
    [(Exits, "SystemExit: 3"), (Interrupted, "KeyboardInterrupt: "), (AsyncExits, "SystemExit: 4")],
)
def test_system_exit_and_keyboard_interrupt_fail_only_the_job(make_engine, worker, error) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 1})
    bad = eng.insert(worker.new({}))
    row = wait_end(eng, log, bad.id)
    assert row.state is JobState.RETRYABLE
    assert row.errors[0]["error"] == error
    assert row.scheduled_at > row.attempted_at + timedelta(seconds=10)
    fine = eng.insert(Plain.new({}))
    assert wait_end(eng, log, fine.id).state is JobState.COMPLETED
    assert eng._producers[Q]._thread.is_alive()


def test_last_attempt_system_exit_discards(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    job = eng.insert(Exits.new({}, max_attempts=1))
    assert testing.drain(eng, Q) == {"discarded": 1}
    assert eng.get_job(job.id).errors[0]["error"] == "SystemExit: 3"


def test_a_job_row_never_decides_what_a_node_imports(make_engine) -> None:  # type: ignore[no-untyped-def]
    """``this`` prints on import: a stored worker name under it must import nothing."""
    assert "this" not in sys.modules and "tests.engine._lazy_worker" not in sys.modules
    eng, log = start_node(make_engine, {Q: 2})
    for worker in ("this.Nope", "tests.engine._lazy_worker.Lazy"):
        row = wait_end(eng, log, eng.insert(JobSpec.build(worker=worker, queue=Q, args={})).id)
        assert row.state is JobState.DISCARDED and "nothing was imported" in row.errors[0]["error"]
    assert "this" not in sys.modules and "tests.engine._lazy_worker" not in sys.modules


def test_worker_modules_name_what_may_be_imported_on_demand(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng, log = start_node(make_engine, {Q: 2}, worker_modules=["tests.engine._lazy_worker"])
    row = wait_end(eng, log, eng.insert(JobSpec.build(worker="tests.engine._lazy_worker.Lazy", queue=Q, args={})).id)
    assert row.state is JobState.COMPLETED and row.result == {"lazy": True}
    with pytest.raises(InvalidConfig, match="worker_modules"):
        make_engine(worker_modules="tests.engine")
    with pytest.raises(InvalidConfig, match="not a dotted module name"):
        make_engine(worker_modules=["tests..engine"])


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("period", [float("nan"), float("inf"), 1e300, -1, 0])
def test_unique_period_postgres_cannot_hold_is_invalid_before_sql(make_engine, conn, prefix, period) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    with pytest.raises(InvalidJob, match="unique period"):
        eng.insert(Plain.new({}, unique={"period": period}))
    assert count_jobs(conn, prefix) == 0


def test_args_nested_too_deep_are_invalid() -> None:
    with pytest.raises(InvalidJob, match="args is nested too deeply"):
        Plain.new({"x": _deep(100_000)})


def test_args_that_contain_themselves_are_invalid_and_the_encoder_still_works_after() -> None:
    looped: dict[str, object] = {"a": [1]}
    looped["self"] = looped
    with pytest.raises(InvalidJob, match="args is at least .* bytes of JSON"):  # endless: over any cap
        Plain.new({"x": looped})
    assert Plain.new({"x": [1, {"y": "z"}]}).args == {"x": [1, {"y": "z"}]}


def test_ids_that_cannot_exist_are_not_found_and_ids_that_are_not_ids_are_invalid(make_engine) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine()
    assert eng.cancel_job(2**70) is False and eng.retry_job(2**70) is False and eng.delete_job(-(2**70)) is False
    assert eng.cancel_jobs([2**64, 0, -1]) == []
    with pytest.raises(JobNotFound):
        eng.get_job(2**70)
    for bad in ("1", 1.5, None, True):
        with pytest.raises(InvalidJob, match="job id must be an integer"):
            eng.cancel_jobs([bad])
    for bad in ("x", 2**70, None):
        with pytest.raises(InvalidJob, match="workflow id must be a UUID"):
            eng.workflow_steps(bad)
        with pytest.raises(InvalidJob, match="workflow id must be a UUID"):
            eng.cancel_workflow(bad)


def test_a_saved_spec_is_the_job_it_describes_field_by_field() -> None:
    # JobSpec.saved builds the Job positionally (it runs once per inserted job): a reordered or new
    # field of Job must show up here rather than as a shifted value.
    import dataclasses
    import uuid
    from datetime import UTC, datetime

    from engine import JobState

    flow = uuid.uuid4()
    spec = dataclasses.replace(Plain.new({"a": 1}, meta={"m": 2}, tags=["t"], priority=3, max_attempts=4),
                               workflow_id=flow, workflow_name="w", workflow_step="s", workflow_deps=["d"])
    at = datetime(2026, 1, 2, tzinfo=UTC)
    job = spec.saved(7, "scheduled", at, at.replace(hour=5))
    expected = {
        "id": 7, "state": JobState.SCHEDULED, "queue": spec.queue, "worker": spec.worker, "args": {"a": 1},
        "meta": {"m": 2}, "tags": ["t"], "priority": 3, "attempt": 0, "max_attempts": 4, "errors": [],
        "result": None, "inserted_at": at, "scheduled_at": at.replace(hour=5), "attempted_at": None,
        "completed_at": None, "cancelled_at": None, "discarded_at": None, "attempted_by": None, "node_id": None,
        "unique_key": None, "workflow_id": flow, "workflow_name": "w", "workflow_step": "s", "workflow_deps": ["d"],
        "conflict": False, "unique_states": None, "_engine": None, "_cancel": None, "_on_interrupt": None,
    }
    assert {f.name: getattr(job, f.name) for f in dataclasses.fields(job)} == expected
