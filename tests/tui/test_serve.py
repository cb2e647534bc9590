"""``lysmore dashboard --serve``: the same dashboard in a browser (textual-serve), under the user the
server's resolver answered for, with the database password in no page, command line or log.

The browser is Debian's ``chromium``, headless, driven over the DevTools protocol. xterm.js draws
the terminal on a canvas, so the test reads the text from xterm's own buffer: a script added
before the page loads keeps the page's ``Terminal`` where ``Runtime.evaluate`` can reach it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine import Engine
from tests.conftest import SERVER_PASSWORD, free_port
from tests.tui.seed import seed
from tui.access import Access, application_name
from tui.serve import (
    ACCESS_ENV,
    ServeError,
    check_address,
    encode_access,
    inherited_access,
    public_url,
)

LYSMORE = str(Path(sys.executable).with_name("lysmore"))
ROOT = Path(__file__).resolve().parents[2]
QUEUES = ["default", "mailers", "media", "reports"]  # the seed's
WINDOW = (1000, 620)
BROWSER_TIMEOUT = 60.0

# Runs in the page before its own scripts: textual-serve's client keeps its xterm ``Terminal`` in a
# property named ``terminal``; a setter on Object.prototype sees the assignment and publishes it.
CAPTURE_TERMINAL = """
window.lysmoreTerminal = new Promise(resolve => {
  Object.defineProperty(Object.prototype, 'terminal', {
    configurable: true,
    get() { return undefined; },
    set(value) {
      Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true, enumerable: true});
      if (value && value.buffer && value.onWriteParsed) resolve(value);
    },
  });
});
"""
# Resolves with the terminal's text once every wanted string is on it, after the next two frames
# are drawn (so a screenshot shows it); checked on each write xterm parses, never on a timer.
TEXT_WHEN_SEEN = """
window.lysmoreTerminal.then(term => new Promise(resolve => {
  const wanted = %s;
  const text = () => {
    const buffer = term.buffer.active, rows = [];
    for (let i = 0; i < buffer.length; i++) rows.push(buffer.getLine(i).translateToString(true));
    return rows.join('\\n');
  };
  const check = () => {
    const now = text();
    if (!wanted.every(w => now.includes(w))) return false;
    requestAnimationFrame(() => requestAnimationFrame(() => resolve(text())));
    return true;
  };
  if (check()) return;
  const subscription = term.onWriteParsed(() => { if (check()) subscription.dispose(); });
}))
"""
TERMINAL_TEXT = """
window.lysmoreTerminal.then(term => {
  const buffer = term.buffer.active, rows = [];
  for (let i = 0; i < buffer.length; i++) rows.push(buffer.getLine(i).translateToString(true));
  return rows.join('\\n');
})
"""


class PidResolver:
    """Names the user after the process that asks, so the test can tell whose answer a child used."""

    def resolve_user(self) -> str:
        return f"alice-{os.getpid()}"

    def resolve_access(self, user: str) -> list[str]:
        return ["pause_queues"]


# -- the parts, without a browser ------------------------------------------------------------------


def test_the_access_goes_to_the_child_as_it_was_resolved() -> None:
    access = Access(user="alice@10.0.0.7", rights=frozenset({"pause_queues", "retry_jobs"}), read_only=False,
                    refresh=5.0)
    assert inherited_access({ACCESS_ENV: encode_access(access)}) == access
    assert inherited_access({}) is None


@pytest.mark.parametrize("text", ["not json", "{}", '{"user": "", "rights": [], "read_only": false, "refresh": null}'])
def test_a_damaged_access_is_refused_not_replaced(text: str) -> None:
    with pytest.raises(ServeError, match=ACCESS_ENV):
        inherited_access({ACCESS_ENV: text})


def test_a_port_in_use_is_named() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=f"^port {port} is in use on 127.0.0.1"):
            check_address("127.0.0.1", port)
    check_address("127.0.0.1", port)  # free again


@pytest.mark.parametrize(("host", "port", "message"), [
    ("127.0.0.1", 0, "--port must be 1 to 65535, got 0"),
    ("127.0.0.1", 70000, "--port must be 1 to 65535, got 70000"),
    ("", 8000, "--host is empty"),
    ("no-such-host.invalid", 8000, "--host 'no-such-host.invalid' is not an address of this machine"),
    ("192.0.2.1", 8000, "--host 192.0.2.1 is not an address of this machine"),  # TEST-NET-1: nobody's
])
def test_a_bad_address_is_named(host: str, port: int, message: str) -> None:
    with pytest.raises(ServeError, match=re.escape(message)):
        check_address(host, port)


def test_the_url_to_open() -> None:
    assert public_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert public_url("::1", 8080) == "http://[::1]:8080"
    assert public_url("0.0.0.0", 8000).startswith("http://") and "0.0.0.0" not in public_url("0.0.0.0", 8000)


def test_the_command_line_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([LYSMORE, "dashboard", "--serve", "--port", str(port)], env=_env(tmp_path),
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr == f"lysmore dashboard: port {port} is in use on 127.0.0.1 (pick another with --port)\n"


def test_host_and_port_go_with_serve(tmp_path: Path) -> None:
    run = subprocess.run([LYSMORE, "dashboard", "--port", "8001"], env=_env(tmp_path), capture_output=True,
                         text=True, timeout=60)
    assert (run.returncode, run.stderr) == (2, "lysmore dashboard: --host and --port go with --serve\n")


def test_without_textual_serve_the_extra_is_named(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['textual_serve'] = None; from lysmore.cli import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", hide, "dashboard", "--serve"], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr) == (2, "lysmore dashboard: needs the serve extra (textual_serve is not "
                                               "installed): pip install 'lysmore[serve]'\n")


def test_served_is_refused_without_a_server_behind_it(tmp_path: Path) -> None:
    """A dashboard started by hand with --served does not become someone: it needs its server's access."""
    run = subprocess.run([LYSMORE, "dashboard", "--served"], env=_env(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert (run.returncode, run.stderr) == (
        2, f"lysmore dashboard: --served is for the children of --serve, which set {ACCESS_ENV}\n")


# -- the browser -----------------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_")}
    env.update(HOME=str(tmp_path), LYSMORE_DATA_DIR=str(tmp_path / "pg"), PYTHONPATH=str(ROOT), **extra)
    return env


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture
def secret_instance(password_server: int, prefix: str) -> Iterator[str]:
    """A URL with the password in it, to an instance with the seed's queues."""
    url = f"postgresql://root:{SERVER_PASSWORD}@127.0.0.1:{password_server}/postgres"
    eng = Engine(url, prefix=prefix)
    eng.migrate()
    eng.stop()
    with psycopg.connect(url, autocommit=True) as conn:
        seed(conn, prefix)
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(prefix)))


class Output:
    """A process's output, kept whole while it runs; lines can be awaited."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream, self.text = stream, ""

    async def line_matching(self, pattern: str, what: str) -> re.Match[str]:
        while True:
            line = (await self.stream.readline()).decode(errors="replace")
            self.text += line
            if not line:
                raise AssertionError(f"{what}: the process ended first; it said:\n{self.text}")
            if found := re.search(pattern, line):
                return found

    async def drain(self) -> None:
        while chunk := await self.stream.read(65536):
            self.text += chunk.decode(errors="replace")


@asynccontextmanager
async def _process(argv: list[str], env: dict[str, str]) -> AsyncIterator[tuple[asyncio.subprocess.Process, Output]]:
    """``argv`` in its own process group, stdout and stderr merged; the whole group ends afterwards."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    output = Output(proc.stdout)
    try:
        yield proc, output
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        await output.drain()


class DevTools:
    """One page of a headless chromium, spoken to over the DevTools protocol's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.last = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last += 1
        sent = self.last
        await self.ws.send_json({"id": sent, "method": method, "params": params})
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") == sent:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return dict(data["result"])
        raise AssertionError(f"{method}: the browser closed the connection")

    async def navigate(self, url: str) -> None:
        """Open ``url`` and return once its load event fired (the page's scripts ran)."""
        await self.call("Page.navigate", url=url)
        async for message in self.ws:
            if json.loads(message.data).get("method") == "Page.loadEventFired":
                return
        raise AssertionError(f"{url}: the browser closed the connection")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"in the page: {result['exceptionDetails']}")
        return result["result"]["value"]


@asynccontextmanager
async def _browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    import aiohttp

    argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank"]
    async with _process(argv, os.environ.copy()) as (_, output):
        found = await output.line_matching(r"DevTools listening on ws://[^:]+:(\d+)/", "chromium's DevTools")
        drained = asyncio.ensure_future(output.drain())  # chromium keeps talking; never let its pipe fill
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{found.group(1)}/json/list") as response:
                    page = next(t for t in await response.json() if t["type"] == "page")
                async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    tools = DevTools(ws)
                    await tools.call("Page.enable")
                    await tools.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                                     deviceScaleFactor=1, mobile=False)
                    await tools.call("Page.addScriptToEvaluateOnNewDocument", source=CAPTURE_TERMINAL)
                    yield tools
        finally:
            drained.cancel()


def _png_colours(png: bytes) -> int:
    """How many different colours a PNG (8-bit RGB or RGBA, as chromium writes them) holds."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, header, data = 8, b"", b""
    while pos < len(png):
        (size,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + size]
        header, data = (body, data) if kind == b"IHDR" else (header, data + body if kind == b"IDAT" else data)
        pos += 12 + size
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"a PNG of depth {depth}, colour type {colour}"
    step = 4 if colour == 6 else 3
    raw, stride = zlib.decompress(data), width * step
    previous, colours = bytearray(stride), set()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):  # undo the row's filter (PNG spec, section 9)
            left = line[x - step] if x >= step else 0
            up, corner = previous[x], previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        colours.update(bytes(line[i:i + step]) for i in range(0, stride, step))
        previous = line
    return len(colours)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (textual-serve's app processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def _serve_and_look(url: str, prefix: str, tmp_path: Path) -> dict[str, Any]:
    port = free_port()
    argv = [LYSMORE, "dashboard", "--serve", "--port", str(port), "--prefix", prefix,
            "--resolver", "tests.tui.test_serve:PidResolver"]
    async with _process(argv, _env(tmp_path, LYSMORE_DATABASE_URL=url)) as (server, output):
        announced = await output.line_matching(r"serving the dashboard on (\S+) ", "the server's first line")
        async with _browser(tmp_path) as page:
            await page.navigate(announced.group(1))
            try:
                screen = await asyncio.wait_for(page.evaluate(TEXT_WHEN_SEEN % json.dumps(QUEUES)),
                                                BROWSER_TIMEOUT)
            except TimeoutError:
                try:
                    shown = await asyncio.wait_for(page.evaluate(TERMINAL_TEXT), 5)
                except TimeoutError:
                    shown = "(no xterm Terminal was seen: does textual-serve's page still keep it as .terminal?)"
                raise AssertionError(f"the queues are not in the page; it shows:\n{shown}\n"
                                     f"the server said:\n{output.text}") from None
            shot = base64.b64decode((await page.call("Page.captureScreenshot", format="png"))["data"])
            html = await page.evaluate("document.documentElement.outerHTML")
            children = _children(server.pid)
            command_lines = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                             for pid in children]
            with psycopg.connect(url, autocommit=True) as conn:
                names = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity "
                                                    "WHERE pid <> pg_backend_pid()")}
            await page.navigate("about:blank")  # the browser leaves: its app process ends
        (tmp_path / "browser.png").write_bytes(shot)
    return {"url": announced.group(1), "port": port, "server_pid": server.pid, "screen": screen, "shot": shot,
            "html": html, "children": command_lines, "connections": names, "output": output.text}


def test_the_browser_shows_the_queues_as_the_servers_user(secret_instance: str, prefix: str,
                                                          tmp_path: Path) -> None:
    seen = asyncio.run(_serve_and_look(secret_instance, prefix, tmp_path))
    assert seen["url"] == f"http://127.0.0.1:{seen['port']}"
    for queue in QUEUES:
        assert queue in seen["screen"], seen["screen"]
    assert f"{prefix}" in seen["screen"].splitlines()[0]  # the same header as in a terminal
    shot = tmp_path / "browser.png"
    assert shot.stat().st_size > 10_000 and _png_colours(shot.read_bytes()) > 8, "a blank screenshot"
    # One app process for the one page: the same dashboard, told nothing secret on its command line.
    assert len(seen["children"]) == 1 and f" -m lysmore dashboard --served --prefix {prefix}" in seen["children"][0]
    # Its connections carry the user the server's resolver answered (its pid), not the child's own.
    user = f"alice-{seen['server_pid']}"
    assert application_name(user) in seen["connections"], seen["connections"]
    assert f"as {user} (pause_queues)" in seen["output"]
    for where in ("screen", "html", "output"):
        assert SERVER_PASSWORD not in seen[where], where
    assert all(SERVER_PASSWORD not in line for line in seen["children"])
