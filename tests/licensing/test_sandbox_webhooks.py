"""Signed webhook delivery from the sandbox, verified with ``stripe.Webhook.construct_event``."""

from __future__ import annotations

import json
import logging
import time

import pytest
import stripe

from licensing.sandbox import StripeSandbox, sign_payload

from .receiver import WebhookReceiver

SECRET = "whsec_test_sandbox_secret_0123456789"


def test_sign_payload_matches_the_sdk() -> None:
    payload = '{"id": "evt_1", "object": "event"}'
    assert sign_payload(payload, SECRET, 1_700_000_000) == stripe.WebhookSignature.generate_signature_header(
        payload, SECRET, 1_700_000_000
    )


def test_events_are_delivered_signed_and_verify_with_the_sdk(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver
) -> None:
    endpoint = sandbox.add_webhook_endpoint(receiver.url, secret=SECRET)
    assert SECRET not in repr(endpoint)
    cus = client.v1.customers.create(params={"email": "hook@example.com"})
    assert receiver.wait_for(1)

    got = receiver.received[0]
    assert got.content_type is not None and got.content_type.startswith("application/json")
    assert got.signature is not None and got.signature.startswith("t=")
    event = stripe.Webhook.construct_event(got.body, got.signature, SECRET)
    assert event.type == "customer.created"
    assert event.data.object.id == cus.id
    assert event.id == sandbox.store.events("customer.created")[0]["id"]

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(got.body.replace("hook@", "evil@"), got.signature, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(got.body, got.signature, "whsec_someone_else")
    stale = sign_payload(got.body, SECRET, int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(got.body, stale, SECRET)


def test_subscription_flow_delivers_every_event_in_order(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver
) -> None:
    sandbox.add_webhook_endpoint(receiver.url, secret=SECRET)
    cus = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    pm = client.v1.customers.payment_methods.list(cus.id).data[0]
    sub = client.v1.subscriptions.create(
        params={"customer": cus.id, "items": [{"price": "price_monthly"}], "default_payment_method": pm.id}
    )
    client.v1.subscriptions.update(sub.id, params={"metadata": {"seats": "10"}})
    client.v1.subscriptions.cancel(sub.id)
    assert receiver.wait_for(11)
    types = [stripe.Webhook.construct_event(r.body, r.signature, SECRET).type for r in receiver.received]
    assert types == [
        "customer.created",
        "payment_method.attached",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    updated = json.loads(receiver.received[9].body)
    assert updated["data"]["previous_attributes"] == {"metadata": {"seats": None}}


def test_failed_deliveries_are_retried_until_2xx(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver
) -> None:
    receiver.answer_with(500, 503)
    sandbox.add_webhook_endpoint(receiver.url, secret=SECRET)
    client.v1.customers.create(params={})
    assert receiver.wait_for(3)
    assert sandbox.wait_for_webhooks()
    assert [a.status for a in sandbox.webhook_attempts] == [500, 503, 200]
    assert [a.attempt for a in sandbox.webhook_attempts] == [1, 2, 3]
    bodies = {json.loads(r.body)["id"] for r in receiver.received}
    assert len(bodies) == 1  # the same event each time
    for r in receiver.received:  # each attempt is signed afresh
        stripe.Webhook.construct_event(r.body, r.signature, SECRET)
    event = client.v1.events.retrieve(bodies.pop())
    assert event.pending_webhooks == 0


def test_delivery_gives_up_after_the_last_retry(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver
) -> None:
    receiver.answer_with(500, 500, 500, 500, 500)
    sandbox.add_webhook_endpoint(receiver.url, secret=SECRET)
    client.v1.customers.create(params={})
    assert sandbox.wait_for_webhooks()
    assert [a.status for a in sandbox.webhook_attempts] == [500, 500, 500, 500]  # 1 + 3 retries
    assert sandbox.store.events()[0]["pending_webhooks"] == 1


def test_enabled_events_filter_and_endpoints_made_through_the_api(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.subscription.*"]}
    )
    assert endpoint.secret.startswith("whsec_")
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)
    cus = client.v1.customers.create(params={})
    client.v1.subscriptions.create(
        params={"customer": cus.id, "items": [{"price": "price_monthly"}], "trial_period_days": 3}
    )
    assert receiver.wait_for(1)
    assert sandbox.wait_for_webhooks()
    assert len(receiver.received) == 1
    event = stripe.Webhook.construct_event(receiver.received[0].body, receiver.received[0].signature, endpoint.secret)
    assert event.type == "customer.subscription.created"

    client.v1.webhook_endpoints.delete(endpoint.id)
    client.v1.customers.update(cus.id, params={"name": "after"})
    assert sandbox.wait_for_webhooks()
    assert len(receiver.received) == 1


def test_secrets_never_reach_the_logs(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answer_with(500)
    endpoint = sandbox.add_webhook_endpoint(receiver.url, secret=SECRET)
    client.v1.customers.create(params={"email": "quiet@example.com"})
    assert receiver.wait_for(2)
    assert sandbox.wait_for_webhooks()
    made = client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    # The SDK's own DEBUG log prints response bodies (this one holds a secret): judge ours.
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("stripe"))
    assert "sandbox webhook customer.created" in ours
    assert endpoint.secret not in ours
    assert made.secret not in ours
    assert "sk_test_sandbox" not in caplog.text
