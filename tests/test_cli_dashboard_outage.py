"""``lysmore dashboard`` in a real 80x24 terminal while its database goes away and comes back: the
cause on the screen in one line, no log line drawn over it (they go to the log file help names),
and live again on its own once the database returns."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine import Engine
from tests.test_cli_dashboard import Noop, Terminal
from tests.tui.test_outage import Outage


def test_an_outage_on_a_real_terminal_shows_the_cause_and_never_a_log_line(server_url: str, prefix: str,
                                                                           tmp_path: Path) -> None:
    outage = Outage(server_url)
    outage.create()
    term = None
    try:
        eng = Engine(outage.url, prefix=prefix)
        eng.migrate()
        eng.insert_all([Noop.new({"n": n}) for n in range(3)])
        eng.stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
        state = tmp_path / "state"
        env.update(TERM="xterm-256color", HOME=str(tmp_path), XDG_STATE_HOME=str(state))
        term = Terminal([str(Path(sys.executable).with_name("lysmore")), "dashboard", "--database-url", outage.url,
                         "--prefix", prefix, "--no-mouse", "--refresh", "60"], env)
        term.wait_for(lambda s: "live_refresh_queue" in s, 30, "the first read")
        log_file = state / "lysmore" / "dashboard.log"  # the default place: $XDG_STATE_HOME/lysmore

        outage.close()
        os.write(term.fd, b"\x12")  # ctrl+r: read now (the rate is a minute)
        screen = term.wait_for(lambda s: "not currently accepting connections" in s, 30, "the cause of the outage")
        flowing = " ".join(screen.split())  # the error line wraps at 80 columns
        assert "refresh failed: cannot connect to PostgreSQL at 127.0.0.1" in flowing and "stale" in screen
        assert "live_refresh_queue" in screen  # the rows stay
        term.wait_for(lambda s: log_file.is_file() and "psycopg.pool" in log_file.read_text(), 30,
                      "the pool's warnings, in the log file")
        for seen in (screen, term.text()):
            assert "WARNING" not in seen and "psycopg" not in seen and "discarding" not in seen

        outage.reopen()  # no key pressed: the dashboard reads again on its own, well before its minute
        term.wait_for(lambda s: "not currently accepting" not in s and "stale" not in s, 30, "fresh again")
        assert "WARNING" not in term.text()

        os.write(term.fd, b"?")
        term.wait_for(lambda s: "Help" in s or "Everywhere" in s, 15, "the help")
        os.write(term.fd, b"G")
        term.wait_for(lambda s: "dashboard.log" in s, 15, "the log file named in help")
    finally:
        if term is not None:
            term.close()
        outage.drop()
