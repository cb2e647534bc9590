"""Fixtures for the licensing tests: a Stripe sandbox, an SDK client on it, a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from licensing.sandbox import StripeSandbox

from .receiver import WebhookReceiver


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    """A running sandbox of this test's own."""
    with StripeSandbox(webhook_retry_delays=(0.01, 0.02, 0.05)) as sb:
        yield sb


@pytest.fixture
def client(sandbox: StripeSandbox) -> stripe.StripeClient:
    """A ``StripeClient`` on the sandbox that never retries, so every fault is seen as it is."""
    return sandbox.client(max_network_retries=0)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A running webhook receiver answering 200."""
    rec = WebhookReceiver()
    rec.start()
    yield rec
    rec.stop()
