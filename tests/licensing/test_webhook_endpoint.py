"""The webhook endpoint over real HTTP (uvicorn): verification, limits, deduplication, one workflow per event."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from licensing.sandbox import StripeSandbox, sign_payload

from .stack import Stack, licensing_stack


@pytest.fixture
def stack(database_url: str, prefix: str, sandbox: StripeSandbox) -> Iterator[Stack]:
    """The app with its web server but no node, so what a request inserted stays in place to look at."""
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as built:
        yield built


def event(kind: str, obj: dict[str, Any] | None = None, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Stripe-shaped event."""
    data: dict[str, Any] = {"object": obj or subscription()}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2026-10-28.endive",
        "created": int(time.time()), "data": data, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": kind,
    }


def subscription(**fields: Any) -> dict[str, Any]:
    """A subscription object as events carry it."""
    return {"id": f"sub_{uuid.uuid4().hex[:24]}", "object": "subscription", "customer": "cus_test",
            "status": "active", "cancel_at_period_end": False, "cancel_at": None, "metadata": {}, **fields}


def post(stack: Stack, body: str | bytes, signature: str | None, **headers: str) -> httpx.Response:
    """POST a body to the endpoint with a Stripe-Signature header (none when ``signature`` is None)."""
    if signature is not None:
        headers["Stripe-Signature"] = signature
    headers.setdefault("Content-Type", "application/json")
    return httpx.post(stack.hook_url, content=body, headers=headers, timeout=10)


def send(stack: Stack, evt: dict[str, Any]) -> httpx.Response:
    """Deliver an event signed with the right secret, as Stripe would."""
    body = json.dumps(evt)
    return post(stack, body, sign_payload(body, stack.secret["webhook_secret"]))


def snapshot(stack: Stack) -> tuple[list[str], list[int]]:
    """Recorded event ids and job ids: what a rejected request must leave as it was."""
    return [e["id"] for e in stack.rows("stripe_events")], [j["id"] for j in stack.jobs()]


def test_subscription_created_records_the_event_and_one_workflow(stack: Stack) -> None:
    evt = event("customer.subscription.created")
    got = send(stack, evt)
    assert got.status_code == 200 and got.json()["duplicate"] is False
    (row,) = stack.rows("stripe_events")
    assert row["id"] == evt["id"] and str(row["workflow_id"]) == got.json()["workflow"]
    jobs = stack.jobs()
    assert {j["workflow_step"]: j["state"] for j in jobs} == {
        "hex": "available", "license": "available", "welcome": "held", "notify": "held",
    }
    assert all(str(j["workflow_id"]) == got.json()["workflow"] for j in jobs)
    assert {j["workflow_name"] for j in jobs} == {"customer.subscription.created"}
    for j in jobs:  # ids only, never the event body or a secret
        assert set(j["args"]) <= {"event", "subscription", "customer", "kind"}
        assert j["meta"]["licensing"] == stack.app.prefix


def test_the_same_event_twice_inserts_one_workflow(stack: Stack) -> None:
    evt = event("customer.subscription.created")
    assert send(stack, evt).json()["duplicate"] is False
    before = snapshot(stack)
    again = send(stack, evt)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert snapshot(stack) == before and len(before[1]) == 4


def test_fifty_concurrent_deliveries_of_one_event_insert_one_workflow(stack: Stack) -> None:
    evt = event("customer.subscription.created")
    body = json.dumps(evt)
    signature = sign_payload(body, stack.secret["webhook_secret"])

    async def deliver_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*[
                client.post(stack.hook_url, content=body, headers={"Stripe-Signature": signature})
                for _ in range(50)
            ])

    answers = asyncio.run(deliver_all())
    assert [a.status_code for a in answers] == [200] * 50
    assert sum(1 for a in answers if not a.json()["duplicate"]) == 1
    assert len(stack.rows("stripe_events")) == 1
    jobs = stack.jobs()
    assert len(jobs) == 4 and len({j["workflow_id"] for j in jobs}) == 1


def _signed_raw(raw: bytes, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def test_bad_requests_get_4xx_and_change_nothing(stack: Stack) -> None:
    secret = stack.secret["webhook_secret"]
    send(stack, event("customer.subscription.created"))  # something there already, to see it stays
    before = snapshot(stack)
    body = json.dumps(event("customer.subscription.created"))
    limit = stack.app.settings.webhook_max_bytes
    big_event = event("customer.subscription.created", subscription(description="x" * limit))
    big = json.dumps(big_event)
    cases: dict[str, tuple[str | bytes, str | None, int]] = {
        "no signature": (body, None, 400),
        "empty signature": (body, "", 400),
        "garbage signature": (body, "t=abc,v1=zz", 400),
        "another secret": (body, sign_payload(body, "whsec_someone_else"), 400),
        "stale timestamp": (body, sign_payload(body, secret, int(time.time()) - 301), 400),
        "body changed after signing": (body.replace("active", "paused_"), sign_payload(body, secret), 400),
        "signature of another body": (body, sign_payload(body + " ", secret), 400),
        "over 1 MB": (big, sign_payload(big, secret), 413),
        "not JSON": ("not json at all", sign_payload("not json at all", secret), 400),
        "JSON, not an event": ('{"hello": "world"}', sign_payload('{"hello": "world"}', secret), 400),
        "a JSON list": ("[1, 2]", sign_payload("[1, 2]", secret), 400),
        "not UTF-8": (b'{"id": "\xff"}', _signed_raw(b'{"id": "\xff"}', secret), 400),
        "event without data": (
            json.dumps({"id": "evt_x1", "object": "event", "type": "customer.subscription.created"}),
            sign_payload(json.dumps({"id": "evt_x1", "object": "event", "type": "customer.subscription.created"}), secret),
            400,
        ),
    }
    for name, (payload, signature, status) in cases.items():
        got = post(stack, payload, signature)
        assert got.status_code == status, f"{name}: {got.status_code} {got.text}"
        assert snapshot(stack) == before, f"{name} changed the database"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536].encode()

    got = httpx.post(stack.hook_url, content=chunks(), headers={"Stripe-Signature": sign_payload(big, secret)})
    assert got.status_code == 413 and snapshot(stack) == before
    assert httpx.get(stack.hook_url).status_code == 405


def test_unknown_and_uninteresting_events_are_recorded_without_a_workflow(stack: Stack) -> None:
    for evt in (
        event("invoice.paid", {"id": "in_1", "object": "invoice"}),
        event("charge.succeeded", {"id": "ch_1", "object": "charge"}),  # not one the app acts on
        event("customer.subscription.created", {"id": "cus_1", "object": "customer"}),  # odd object
    ):
        got = send(stack, evt)
        assert got.status_code == 200 and got.json()["workflow"] is None
    assert len(stack.rows("stripe_events")) == 3
    assert stack.jobs() == []


def test_cancellation_and_deletion_start_revoking_workflows(stack: Stack) -> None:
    cancel = event(
        "customer.subscription.updated",
        subscription(cancel_at_period_end=True, cancel_at=int(time.time()) + 86400),
        {"cancel_at_period_end": False},
    )
    deleted = event("customer.subscription.deleted", subscription(status="canceled"))
    for evt in (cancel, deleted):
        assert send(stack, evt).json()["workflow"] is not None
    jobs = stack.jobs()
    assert len(jobs) == 7
    by_name: dict[str, set[str]] = {}
    for j in jobs:
        by_name.setdefault(j["workflow_name"], set()).add(j["workflow_step"])
    assert by_name == {  # a cancellation reconciles with the subscription as Stripe has it, then mails
        "customer.subscription.updated:cancel": {"sync", "farewell", "notify"},
        "customer.subscription.deleted": {"revoke_hex", "revoke_license", "farewell", "notify"},
    }
    ends = {j["args"]["ends_at"] for j in jobs if j["workflow_name"].endswith(":cancel") and j["workflow_step"] != "sync"}
    assert ends == {cancel["data"]["object"]["cancel_at"]}
