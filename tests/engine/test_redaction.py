"""Passwords never leave in any DSN form: redact_url over URL, keyword (quoted or not) and query
forms, in a text that holds several; server_label; the log file's formatter; a failed connection's
one-line error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine import (
    DatabaseUnavailable,
    Engine,
    RedactingFormatter,
    logging_to,
    redact_url,
    server_label,
)
from tests.conftest import free_port

PW = "Hunter2pw"
FORMS = {
    "url": f"postgresql://u:{PW}@h:5433/db",
    "query": f"postgresql://u@h:5433/db?sslmode=disable&password={PW}&application_name=x",
    "keyword": f"host=h port=5433 password={PW} dbname=db",
    "keyword quoted": f"host=h port=5433 password='{PW} two' dbname=db",
    "keyword escaped quote": f"host=h port=5433 password = '{PW}\\' two' dbname=db",
    "keyword spaced": f"host=h port=5433 password = {PW} dbname=db",
    "sslpassword": f"host=h port=5433 sslpassword={PW} dbname=db",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_is_masked_and_the_rest_is_kept(form: str) -> None:
    masked = redact_url(FORMS[form])
    assert PW not in masked and "two" not in masked
    assert "***" in masked and "h" in masked and "db" in masked
    if form == "query":
        assert masked.endswith("&application_name=x")  # only the password goes


def test_several_forms_in_one_text_are_all_masked() -> None:
    text = " and ".join(FORMS.values())
    masked = redact_url(f"could not use {text}; PGPASSWORD={PW} was set too, Password: no")
    assert PW not in masked and masked.count("***") == len(FORMS) + 1


@pytest.mark.parametrize("form", sorted(FORMS))
def test_server_label_names_the_server_only(form: str) -> None:
    assert server_label(FORMS[form]) == "h:5433/db"


def test_an_unparsable_connection_string_is_never_echoed() -> None:
    bad = f"host=h password={PW} two dbname=db"  # a space in an unquoted password: not a DSN
    assert server_label(bad) == "an unparsable connection string"
    eng = Engine(bad, prefix="p")
    with pytest.raises(DatabaseUnavailable) as caught:
        eng.check_schema()
    assert PW not in str(caught.value) and "two" not in str(caught.value)
    assert caught.value.__cause__ is None  # a traceback (lysmore -v) shows libpq's quote of it nowhere


@pytest.mark.parametrize("form", ["url", "query", "keyword quoted"])
def test_a_refused_connection_names_the_cause_never_the_password(form: str) -> None:
    url = FORMS[form].replace("h:5433", f"127.0.0.1:{free_port()}").replace("host=h port=5433",
                                                                             f"host=127.0.0.1 port={free_port()}")
    with pytest.raises(DatabaseUnavailable) as caught:
        Engine(url, prefix="p", connect_timeout=2).check_schema()
    assert "refused" in str(caught.value) and "\n" not in str(caught.value)
    assert PW not in str(caught.value)


def test_the_log_formatter_masks_messages_tracebacks_and_literal_passwords() -> None:
    formatter = RedactingFormatter(secrets=[f"{PW} two"])
    try:
        raise RuntimeError(f"bad {FORMS['url']}")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("psycopg.pool", logging.WARNING, __file__, 1,
                               "error connecting to %s (libpq quoted %r)", (FORMS["keyword"], f"{PW} two"), exc_info)
    text = formatter.format(record)
    assert PW not in text and "RuntimeError" in text and "psycopg.pool" in text


def test_logging_to_keeps_the_terminal_clean_and_masks_the_file(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    terminal = logging.StreamHandler()  # what logging.basicConfig puts on the root logger
    root.addHandler(terminal)
    try:
        with logging_to(tmp_path / "deep" / "dashboard.log", urls=[f"host=h password='{PW} two'"]) as path:
            assert terminal not in root.handlers
            logging.getLogger("psycopg.pool").warning("discarding broken connection to %s", FORMS["query"])
            logging.getLogger("lysmore.tui").warning("libpq said: missing = after %s two", PW)
            import warnings

            warnings.warn(f"deprecated, see {FORMS['url']}", DeprecationWarning, stacklevel=1)
        assert terminal in root.handlers  # given back afterwards
    finally:
        root.removeHandler(terminal)
    written = path.read_text()
    assert "discarding broken connection" in written and "DeprecationWarning" in written
    assert PW not in written
    captured = capsys.readouterr()
    assert "discarding" not in captured.err + captured.out


def test_a_log_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write the log file .*file/dashboard.log"):
        with logging_to(blocker / "dashboard.log"):
            pass
