"""Run the Stripe sandbox in the foreground: ``python -m licensing.sandbox --port 12111``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from .server import StripeSandbox

log = logging.getLogger("licensing.sandbox")

#: Environment variable holding the signing secret for ``--webhook-url`` (kept off the command line).
WEBHOOK_SECRET_ENV = "LYSMORE_SANDBOX_WEBHOOK_SECRET"


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m licensing.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        help=f"deliver events here, signed with the secret in ${WEBHOOK_SECRET_ENV}",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    secret = os.environ.get(WEBHOOK_SECRET_ENV)
    if args.webhook_url and not secret:
        parser.error(f"--webhook-url needs the signing secret in ${WEBHOOK_SECRET_ENV}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sandbox = StripeSandbox(host=args.host, port=args.port)
    with sandbox:
        for url in args.webhook_url:
            endpoint = sandbox.add_webhook_endpoint(url, secret)
            log.info("delivering webhooks to %s as %s", url, endpoint.id)
        try:
            done.wait()
        except KeyboardInterrupt:
            log.info("interrupted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
