"""User key remaps: the file format and its rules, where it is found, and the remapped keys in the app."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from textual.widgets import Input

from lysmore.cli import main
from tests.tui.conftest import AppFactory
from tests.tui.helpers import screen_text, settle, toasts
from tests.tui.test_gate import audit_rows, state_of
from tui.actions import action, gated_for_key, help_sections
from tui.app import DashboardApp
from tui.keymap import KEYMAP_ENV, Keymap, KeymapError, load_keymap, parse_keymap
from tui.screens.jobs import JobsScreen
from tui.screens.modals import ConfirmScreen, HelpScreen, help_text

REMAPS = '[keys]\nfilter = "f"\ncancel = "X"\nhelp = "h"\nquit = "ctrl+q"\n'


def write(tmp_path: Path, text: str, name: str = "keys.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- the format and its rules --------------------------------------------------------------------
def test_a_keymap_moves_an_action_everywhere_it_appears() -> None:
    keymap = parse_keymap(REMAPS + 'pause = "U"\nfaster = "="\n', "keys.toml")
    assert keymap.key_for("quit") == "ctrl+q" and keymap.key_for("faster") == "equals_sign"
    bindings = keymap.binding_keymap()
    assert bindings["app.quit"] == "ctrl+q" and bindings["jobs.filter"] == "f"
    assert {k for k, v in bindings.items() if v == "U"} == {"queues.pause", "queue.pause", "nodes.pause", "crons.pause"}
    assert {k for k, v in bindings.items() if v == "X"} == {"jobs.cancel", "job.cancel", "workflows.cancel",
                                                              "workflow.cancel"}
    assert gated_for_key("jobs", "X", keymap) is not None and gated_for_key("jobs", "C", keymap) is None
    entry = action("jobs", "quit", keymap)
    assert entry is not None and entry.display_key == "^q"
    jobs_help = dict((e[3], e[0]) for e in help_sections("jobs", keymap)[0][1])
    assert jobs_help["filter"] == "f" and jobs_help["cancel"] == "X"


def test_keys_may_swap_and_be_written_as_characters_or_names() -> None:
    keymap = parse_keymap('[keys]\nquit = "z"\nfreeze = "q"\nhelp = "?"\nback = "esc"\nopen = "Return"\n')
    assert dict(keymap.keys) == {"quit": "z", "freeze": "q", "help": "question_mark", "back": "escape",
                                 "open": "enter"}
    assert parse_keymap("") == Keymap() and parse_keymap("[keys]\n") == Keymap()


@pytest.mark.parametrize(("text", "message"), [
    ('[keys]\nquitt = "x"', "unknown action 'quitt' (did you mean 'quit'?)"),
    ('[keys]\ncancel = "c"', "cancel = 'c': cancel changes things, so it needs an uppercase letter (A-Z)"),
    ('[keys]\ndelete = "ctrl+d"', "delete = 'ctrl+d': delete changes things, so it needs an uppercase letter"),
    ('[keys]\nfilter = "F"', "filter = 'F': uppercase letters are kept for actions that change things"),
    ('[keys]\nfilter = "a"', "a is both filter and mark_visible on Jobs"),
    ('[keys]\nretry = "D"', "D is both retry and delete on Jobs"),
    ('[keys]\nhelp = "z"', "z is both freeze and help on"),
    ('[keys]\nquit = "j"', "quit = 'j': j is kept for moving in lists"),
    ('[keys]\nfilter = "ctrl+c"', "^c is kept for copying text"),
    ('[keys]\nfilter = "hyper+x"', "'hyper+x' is not a key: modifiers are ctrl, alt and shift"),
    ('[keys]\nfilter = "flter"', "filter: 'flter' is not a key"),
    ('[keys]\nfilter = "f,g"', "filter: one key per action"),
    ('[keys]\nfilter = ""', "filter: the key is empty"),
    ('[keys]\nfilter = 5', "filter = 5: the key must be a string"),
    ('[keys]\nfilter = "shift+f"', "write an uppercase letter ('F') for shift+letter"),
    ("[keys]\nfilter = f", "not valid TOML"),
    ('[bindings]\nquit = "x"', "unknown section or setting 'bindings'; remaps go in a [keys] table"),
    ('keys = "quit"', "'keys' must be a table"),
])
def test_a_bad_keymap_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(KeymapError) as info:
        parse_keymap(text, "/home/ann/.config/lysmore/keys.toml")
    assert str(info.value).startswith("keymap /home/ann/.config/lysmore/keys.toml: ")
    assert message in str(info.value)


def test_every_problem_is_named_in_one_message() -> None:
    with pytest.raises(KeymapError) as info:
        parse_keymap('[keys]\nquitt = "x"\ncancel = "c"\nfilter = "flter"\n', "k.toml")
    text = str(info.value)
    assert "\n" not in text
    assert "'quitt'" in text and "cancel = 'c'" in text and "'flter'" in text


# -- where the file is found ---------------------------------------------------------------------
def test_the_file_is_found_by_argument_then_env_then_xdg(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    write(xdg, '[keys]\nfilter = "f"', "lysmore/keys.toml")
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path / "home")}
    assert load_keymap(environ=env).key_for("filter") == "f"
    assert load_keymap(environ={**env, "XDG_CONFIG_HOME": "relative/ignored"}) == Keymap()  # no file: no remaps
    home = tmp_path / "home"
    write(home, '[keys]\nfilter = "x"', ".config/lysmore/keys.toml")
    assert load_keymap(environ={"HOME": str(home)}).key_for("filter") == "x"
    named = write(tmp_path, '[keys]\nfilter = "e"', "named.toml")
    assert load_keymap(environ={**env, KEYMAP_ENV: str(named)}).key_for("filter") == "e"
    given = write(tmp_path, '[keys]\nfilter = "y"', "given.toml")
    assert load_keymap(given, environ={**env, KEYMAP_ENV: str(named)}).key_for("filter") == "y"
    with pytest.raises(KeymapError, match=r"keymap .*missing.toml: no such file"):
        load_keymap(environ={**env, KEYMAP_ENV: str(tmp_path / "missing.toml")})


# -- in the app ----------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_a_remapped_key_does_the_action_and_the_old_key_does_not(
    make_app: AppFactory, conn: psycopg.Connection, seeded: str, tmp_path: Path,
) -> None:
    app = make_app(keymap=write(tmp_path, REMAPS))
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        footer = screen_text(app).splitlines()[-1]
        assert "f Filter" in footer and "X Cancel" in footer and "h Help" in footer and "/ Filter" not in footer
        bar = screen.query_one("#filter", Input)
        await pilot.press("slash")
        assert not bar.has_focus and bar.has_class("-hidden")
        await pilot.press("f")
        assert bar.has_focus
        bar.value = "id:13"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("X")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "Cancel 1 job?" in screen_text(app)
        await pilot.press("y")
        await settle(pilot)
        assert state_of(conn, seeded, 13) == "cancelled"
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("h")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "f         filter" in text and "X         cancel" in text
        assert f"Keys remapped from {tmp_path}" in help_text("jobs", {}, app.keymap).plain
        await pilot.press("escape", "4")
        await settle(pilot)
        await pilot.press("X")  # the same action id, remapped on the Workflows screen too
        await settle(pilot)
        assert "Cancel workflow ingest (3 steps)?" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("q")  # quit moved to ctrl+q: q does nothing now
        assert app.is_running
        await pilot.press("ctrl+q")
    assert [(r[1], r[3]) for r in audit_rows(conn, seeded)] == [
        ("cancel_jobs", "allowed"), ("cancel_workflow", "declined"),
    ]


@pytest.mark.anyio
async def test_a_denied_remapped_key_is_still_explained_and_audited(
    make_app: AppFactory, conn: psycopg.Connection, seeded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv(KEYMAP_ENV, raising=False)
    write(tmp_path, REMAPS, "lysmore/keys.toml")
    app = make_app(read_only=True, keymap=None)  # None: found in $XDG_CONFIG_HOME/lysmore/keys.toml
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert not toasts(app)
        await pilot.press("X")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only" in t for t in toasts(app))
    assert [(r[1], r[3]) for r in audit_rows(conn, seeded)] == [("cancel_workflow", "denied")]


def test_the_app_refuses_a_bad_keymap_with_its_message(tmp_path: Path) -> None:
    bad = write(tmp_path, '[keys]\ncancel = "c"\n')
    with pytest.raises(KeymapError, match="cancel changes things"):
        DashboardApp(database_url="postgresql://nobody@127.0.0.1:1/none", keymap=bad)


def test_the_dashboard_command_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bad = write(tmp_path, '[keys]\nquitt = "x"\n')
    assert main(["dashboard", "--keymap", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lysmore dashboard: keymap {bad}: unknown action 'quitt' (did you mean 'quit'?)")
    assert "Traceback" not in err and err.count("\n") == 1
    monkeypatch.setenv(KEYMAP_ENV, str(tmp_path / "nope.toml"))
    assert main(["dashboard"]) == 2
    assert capsys.readouterr().err == f"lysmore dashboard: keymap {tmp_path / 'nope.toml'}: no such file\n"
