"""The filter language, parsed without a database."""

from __future__ import annotations

import pytest

from tui.filters import FilterError, Term, parse_duration, parse_filter


def test_empty_filter_has_no_terms() -> None:
    assert not parse_filter("   ")
    assert parse_filter("").terms == ()


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("state:retryable", Term("state", ("retryable",))),
        ("state:Retryable,discarded", Term("state", ("retryable", "discarded"))),
        ("queue:mailers", Term("queue", ("mailers",))),
        ("worker:Mailer", Term("worker", ("Mailer",))),
        ("node:web-1", Term("node", ("web-1",))),
        ("tag:billing,email", Term("tag", ("billing", "email"))),
        ("priority:0", Term("priority", (0,))),
        ("priority:>2", Term("priority", (2,), op=">")),
        ("id:42,43", Term("id", (42, 43))),
        ("id:<=1000", Term("id", (1000,), op="<=")),
        ("attempt:>3", Term("attempt", (3,), op=">")),
        ("age:>1h", Term("age", (3600.0,), op=">")),
        ("age:1h30m", Term("age", (5400.0,), op=">")),
        ("age:<90s", Term("age", (90.0,), op="<")),
        ('error:"timed out"', Term("error", ("timed out",))),
        ("args.user_id:42", Term("args", (42,), path=("user_id",))),
        ('args.user_id:"42"', Term("args", ("42",), path=("user_id",))),
        ("meta.a.b:true", Term("meta", (True,), path=("a", "b"))),
        ("args.email:*", Term("args", ("*",), path=("email",))),
        ("Mailer", Term("text", ("Mailer",))),
        ('"two words"', Term("text", ("two words",))),
        ("!queue:default", Term("queue", ("default",), negated=True)),
        ("!Mailer", Term("text", ("Mailer",), negated=True)),
        (r'error:"say \"hi\""', Term("error", ('say "hi"',))),
    ],
)
def test_qualifiers_parse_to_terms(text: str, term: Term) -> None:
    assert parse_filter(text).terms == (term,)


def test_terms_combine_and_keep_the_text() -> None:
    flt = parse_filter("  state:retryable queue:mailers !tag:slow Charge ")
    assert [t.field for t in flt.terms] == ["state", "queue", "tag", "text"]
    assert flt.terms[2].negated
    assert flt.text == "state:retryable queue:mailers !tag:slow Charge"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("state:runing", "'runing' is not a state"),
        ("color:red", "unknown qualifier 'color:'"),
        ("priority:high", "'high' is not a whole number"),
        ("priority:12", "0 to 9"),
        ("age:>soon", "not a duration"),
        ("age:=1h,2h", "one duration"),
        ('error:"open', "unclosed quote"),
        ("queue:", "needs a value"),
        ("queue:a,,b", "empty value"),
        ("args.:1", "name the key"),
        ("! state:available", "'!' must be followed"),
        ("attempt:>1,2", "one number"),
        ("id:-3", "whole number"),
        ("args.a..b:1", "name the key"),
        ("meta." + ".".join("k" * 9) + ":1", "at most 8 levels"),
        ("tag:", "needs a value"),
        ("error:", "needs a value"),
        ("worker:a,", "empty value"),
        ("age:>", "not a duration"),
    ],
)
def test_malformed_filters_say_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert message in info.value.message


def test_too_many_terms_is_an_error() -> None:
    with pytest.raises(FilterError):
        parse_filter(" ".join(f"queue:q{i}" for i in range(30)))


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("2d") == 172800
    assert parse_duration("1w") == 604800
    assert parse_duration("500ms") == 0.5
    for bad in ("", "h", "1x", "1h 2m", "m1"):
        with pytest.raises(ValueError):
            parse_duration(bad)
