"""The Stripe webhook endpoint (Starlette): verify, then record the event and insert its workflow in one transaction."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import stripe
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import Workflow

from .accounts import AccountError
from .context import META_KEY
from .db import one
from .status import status_route
from .workers import (
    GRANTABLE,
    ActionMailWorker,
    ChargeCancelWorker,
    ChargeNotifyWorker,
    ChargeRevokeWorker,
    DisputeClosedWorker,
    DunningWorker,
    FarewellWorker,
    HexWorker,
    LicenseWorker,
    NotifyWorker,
    RenewalMailWorker,
    RevokeHexWorker,
    RevokeLicenseWorker,
    SyncWorker,
    WelcomeWorker,
    subscription_of_invoice,
)

if TYPE_CHECKING:
    from .app import LicensingApp

log = logging.getLogger("licensing.webhooks")

#: The event types the app acts on (and registers for); others are recorded and answered 200.
EVENT_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
)
EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")
SIGNUP_MAX_BYTES = 65_536


class Rejected(Exception):
    """A request the endpoint refuses, with the status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Recorded:
    """What recording one event did."""

    event_id: str
    duplicate: bool
    workflow_id: str | None


def workflow_for(app: LicensingApp, event: dict[str, Any]) -> Workflow | None:
    """The workflow an event starts, or None for events that only get recorded."""
    kind = event["type"]
    obj = event["data"]["object"]
    if kind not in EVENT_TYPES or not isinstance(obj.get("id"), str):
        return None
    meta = {META_KEY: app.prefix}
    if kind.startswith("invoice."):
        return _invoice_workflow(kind, event, obj, meta)
    if kind.startswith("charge."):
        return _charge_workflow(kind, event, obj, meta)
    if obj.get("object") != "subscription":
        return None
    args = {"event": event["id"], "subscription": obj["id"], "customer": obj.get("customer")}
    previous = event["data"].get("previous_attributes") or {}
    if kind == "customer.subscription.created" or (
        previous.get("status") == "incomplete" and obj.get("status") in GRANTABLE  # the first payment went through
    ):
        return _grant_workflow(kind if kind.endswith("created") else f"{kind}:activated", args, meta)
    if kind == "customer.subscription.deleted":
        return _revoke_workflow(kind, {**args, "kind": "deleted", "ends_at": None}, meta)
    sync = SyncWorker.new(args, meta=meta)
    if obj.get("cancel_at_period_end") is True and previous.get("cancel_at_period_end") is False:
        ends = obj.get("cancel_at") or obj.get("current_period_end")
        told = {**args, "kind": "cancelled", "ends_at": ends}
        return (
            Workflow(name=f"{kind}:cancel")
            .add("sync", sync)
            .add("farewell", FarewellWorker.new(told, meta=meta), deps=["sync"])
            .add("notify", NotifyWorker.new(told, meta=meta), deps=["sync"])
        )
    return Workflow(name=kind).add("sync", sync)


def _grant_workflow(name: str, args: dict[str, Any], meta: dict[str, Any]) -> Workflow:
    return (
        Workflow(name=name)
        .add("hex", HexWorker.new(args, meta=meta))
        .add("license", LicenseWorker.new(args, meta=meta))
        .add("welcome", WelcomeWorker.new(args, meta=meta), deps=["hex", "license"])
        .add("notify", NotifyWorker.new({**args, "kind": "created"}, meta=meta), deps=["hex", "license"])
    )


def _invoice_workflow(kind: str, event: dict[str, Any], obj: dict[str, Any], meta: dict[str, Any]) -> Workflow | None:
    """``invoice.paid`` renews, ``invoice.payment_failed`` dunns, ``invoice.payment_action_required``
    asks for 3-D Secure; an invoice of no subscription only gets recorded."""
    sub = subscription_of_invoice(obj)
    if obj.get("object") != "invoice" or sub is None:
        return None
    args = {"event": event["id"], "invoice": obj["id"], "subscription": sub, "customer": obj.get("customer")}
    flow = Workflow(name=kind)
    if kind == "invoice.paid":
        return flow.add("sync", SyncWorker.new(args, meta=meta)).add(
            "renewal", RenewalMailWorker.new(args, meta=meta), deps=["sync"]
        )
    if kind == "invoice.payment_failed":
        return flow.add("dunning", DunningWorker.new(args, meta=meta))
    return flow.add("action", ActionMailWorker.new(args, meta=meta))


def _charge_workflow(kind: str, event: dict[str, Any], obj: dict[str, Any], meta: dict[str, Any]) -> Workflow | None:
    """``charge.refunded`` and ``charge.dispute.created``: revoke, then cancel the subscription (both
    nothing for a partial refund), then tell the team (also when the cancel failed for good: the note
    says so). ``charge.dispute.closed``: tell the team it was won or lost."""
    if kind == "charge.refunded" and obj.get("object") == "charge":
        args = {"event": event["id"], "charge": obj["id"], "customer": obj.get("customer")}
    elif kind.startswith("charge.dispute.") and obj.get("object") == "dispute" and isinstance(obj.get("charge"), str):
        args = {"event": event["id"], "dispute": obj["id"], "charge": obj["charge"]}
    else:
        return None
    if kind == "charge.dispute.closed":
        return Workflow(name=kind).add("notify", DisputeClosedWorker.new(args, meta=meta))
    return (
        Workflow(name=kind)
        .add("revoke", ChargeRevokeWorker.new(args, meta=meta))
        .add("cancel", ChargeCancelWorker.new(args, meta=meta), deps=["revoke"])
        .add("notify", ChargeNotifyWorker.new(args, meta=meta), deps=["cancel"],
             ignore_cancelled=True, ignore_discarded=True)
    )


def _revoke_workflow(name: str, args: dict[str, Any], meta: dict[str, Any]) -> Workflow:
    return (
        Workflow(name=name)
        .add("revoke_hex", RevokeHexWorker.new(args, meta=meta))
        .add("revoke_license", RevokeLicenseWorker.new(args, meta=meta))
        .add("farewell", FarewellWorker.new(args, meta=meta), deps=["revoke_hex", "revoke_license"])
        .add("notify", NotifyWorker.new(args, meta=meta), deps=["revoke_hex", "revoke_license"])
    )


def parse_event(body: bytes, signature: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    """Verify the signature with the SDK, then check the event's shape; raises ``Rejected``."""
    if not signature:
        raise Rejected(400, "missing Stripe-Signature header")
    try:
        stripe.Webhook.construct_event(body, signature, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise Rejected(400, f"signature check failed: {exc.user_message or exc}") from None
    except Exception:  # the SDK parses the JSON after the signature: non-UTF-8, non-JSON, not an object
        raise Rejected(400, "the body is not a JSON event") from None
    try:
        event = json.loads(body)
    except ValueError:
        raise Rejected(400, "the body is not JSON") from None
    if b"\\u0000" in body:
        raise Rejected(400, "the event contains a NUL character")
    data = event.get("data") if isinstance(event, dict) else None
    if (
        not isinstance(event, dict)
        or event.get("object") != "event"
        or not isinstance(event.get("id"), str)
        or not EVENT_ID.match(event["id"])
        or not isinstance(event.get("type"), str)
        or not 0 < len(event["type"]) <= 255
        or not isinstance(data, dict)
        or not isinstance(data.get("object"), dict)
    ):
        raise Rejected(400, "the JSON is not a Stripe event")
    return event


def record_event(app: LicensingApp, event: dict[str, Any]) -> Recorded:
    """Insert the event row and its workflow in one transaction; a known event id inserts nothing."""
    workflow = workflow_for(app, event)
    with app.engine.atomic() as c:
        row = one(
            c,
            app.q(
                "INSERT INTO {s}.stripe_events (id, type, livemode, payload, workflow_id) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            [event["id"], event["type"], bool(event.get("livemode")), Jsonb(event),
             workflow.id if workflow else None],
        )
        if row is None:
            return Recorded(event["id"], True, None)
        if workflow is not None:
            app.engine.insert_all(workflow, conn=c)
    return Recorded(event["id"], False, str(workflow.id) if workflow else None)


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise Rejected(400, "bad Content-Length")
        if int(length) > limit:
            raise Rejected(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_web_app(app: LicensingApp) -> Starlette:
    """The HTTP app: ``POST /webhooks/stripe``, ``POST /accounts`` (sign-up), ``GET /health`` and
    ``GET /licenses/{key}/status``."""
    secret = app.webhook_secret()
    settings = app.settings

    async def stripe_webhook(request: Request) -> Response:
        try:
            body = await _read_body(request, settings.webhook_max_bytes)
            event = parse_event(body, request.headers.get("stripe-signature"), secret, settings.webhook_tolerance)
        except Rejected as exc:
            log.warning("webhook rejected (%d): %s", exc.status, exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        done = await run_in_threadpool(record_event, app, event)
        if done.duplicate:
            log.info("webhook %s %s: already recorded", event["id"], event["type"])
        else:
            log.info("webhook %s %s: recorded, workflow %s", event["id"], event["type"], done.workflow_id)
        return JSONResponse({"received": True, "duplicate": done.duplicate, "workflow": done.workflow_id})

    async def sign_up(request: Request) -> Response:
        try:
            body = await _read_body(request, SIGNUP_MAX_BYTES)
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError
        except Rejected as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        except ValueError:
            return JSONResponse({"error": "send a JSON object"}, status_code=400)
        try:
            account, job = await run_in_threadpool(
                lambda: app.sign_up(
                    email=data.get("email"), name=data.get("name"), plan=data.get("plan"),
                    payment_method=data.get("payment_method"),
                )
            )
        except AccountError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"account": account.id, "job": job.id}, status_code=201)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "instance": app.prefix})

    return Starlette(
        routes=[
            Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
            Route("/accounts", sign_up, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            status_route(app),
        ]
    )
