"""``lysmore``: the command line. Imports are lazy so that ``lysmore --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: LYSMORE_DATABASE_URL, else embedded)")
    parser.add_argument("--prefix", help="schema of the instance (default: LYSMORE_PREFIX or public)")


def _cmd_migrate(args: argparse.Namespace) -> int:
    from engine import Engine

    eng = Engine(args.database_url, prefix=args.prefix)
    try:
        applied = eng.migrate()
    finally:
        eng.stop()
    print(f"prefix {eng.prefix}: " + (f"applied {applied}" if applied else "up to date"))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from engine.bench import run_bench

    def progress(msg: str) -> None:
        if not args.json:
            print(f"... {msg}", file=sys.stderr)

    result = run_bench(args.database_url, jobs=args.jobs, concurrency=args.concurrency, progress=progress)
    data = result.as_dict()
    if args.json:
        print(json.dumps(data))
    else:
        print(f"jobs {result.jobs}, concurrency {result.concurrency}")
        print(f"  single insert   {result.insert_single_per_s:>12,.0f} jobs/s")
        print(f"  bulk insert     {result.insert_bulk_per_s:>12,.0f} jobs/s")
        print(f"  processing      {result.process_per_s:>12,.0f} jobs/s")
        print(f"  latency p50     {result.latency_p50_ms:>12.2f} ms")
        print(f"  latency p95     {result.latency_p95_ms:>12.2f} ms")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lysmore", description="PostgreSQL-backed background jobs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create or upgrade the schema of an instance")
    _common(p)
    p.set_defaults(fn=_cmd_migrate)

    p = sub.add_parser("bench", help="measure insert and processing throughput and latency")
    _common(p)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs to insert and process (default 20000)")
    p.add_argument("--concurrency", type=int, default=10, help="local limit of the bench queue (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from engine import LysmoreError

        if isinstance(exc, LysmoreError):
            print(f"lysmore: {exc}", file=sys.stderr)
            return 2
        raise
