"""The screenshot script doubles as a smoke test: every screen loads and is saved as SVG."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tui import run_dashboard
from tui.app import DashboardApp
from tui.screenshots import SHOTS, main, take


def test_screenshots_of_every_screen(database_url: str, seeded: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--database-url", database_url, "--prefix", seeded, "--out", str(tmp_path),
                 "--size", "100x30", "--now", "2030-01-15T12:00:00+00:00"])
    assert code == 0, capsys.readouterr().err
    names = sorted(p.stem for p in tmp_path.glob("*.svg"))
    assert names == sorted(s.name for s in SHOTS)
    assert "node-a" in (tmp_path / "nodes.svg").read_text()
    assert "connection" in (tmp_path / "job-detail.svg").read_text()  # the retryable job's error
    assert str(tmp_path / "queues.svg") in capsys.readouterr().out


def test_screenshots_fail_when_a_screen_cannot_load(database_url: str, tmp_path: Path) -> None:
    app = DashboardApp(database_url=database_url, prefix="no_such_schema", cursor_blink=False)
    problems = asyncio.run(take(app, tmp_path, (80, 24), SHOTS[:2]))
    assert problems and problems[0].startswith("queues: prefix no_such_schema has no Lysmore tables")


def test_run_dashboard_refuses_a_bad_prefix(database_url: str) -> None:
    assert run_dashboard(database_url, prefix="Not A Schema") == 2


def test_screenshots_name_no_folder_of_this_machine() -> None:
    import sysconfig

    import tui
    from tui.screenshots import without_machine_paths

    here = str(Path(tui.__file__).resolve().parents[1])
    site = sysconfig.get_paths()["purelib"]
    trace = f'File "{here}/engine/_runner.py", line 9 · File "{site}/psycopg/cursor.py"'
    assert without_machine_paths(trace) == 'File "engine/_runner.py", line 9 · File "psycopg/cursor.py"'
