"""A local Stripe-compatible API server on loopback for the official ``stripe`` SDK, with idempotency, faults and signed webhooks."""

# Usage: ``with StripeSandbox() as sb: client = sb.client()`` (or ``stripe.api_base = sb.url``);
# ``sb.faults.add("drop", path_prefix="/v1/customers")``; ``sb.add_webhook_endpoint(url, secret)``.

from __future__ import annotations

from .errors import StripeApiError
from .faults import FAULT_KINDS, Fault, FaultPlan
from .server import DEFAULT_API_KEY, RequestRecord, StripeSandbox, WebhookEndpoint
from .store import DEFAULT_API_VERSION, SandboxStore
from .webhooks import DeliveryAttempt, sign_payload

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_VERSION",
    "FAULT_KINDS",
    "DeliveryAttempt",
    "Fault",
    "FaultPlan",
    "RequestRecord",
    "SandboxStore",
    "StripeApiError",
    "StripeSandbox",
    "WebhookEndpoint",
    "sign_payload",
]
