"""The sandbox's test clocks through the official SDK: renewals, dunning, cancel at period end; event delivery order."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import httpx
import pytest
import stripe

from licensing.sandbox import StripeSandbox
from licensing.sandbox.store import DUNNING_RETRY_DAYS, INCOMPLETE_EXPIRES_AFTER, add_interval

from .receiver import WebhookReceiver

SECRET = "whsec_test_clock_secret_0123456789"
START = int(dt.datetime(2030, 1, 15, 9, tzinfo=dt.UTC).timestamp())
DAY = 86400


def _clocked_customer(client: stripe.StripeClient, card: str = "pm_card_visa") -> tuple[str, str, str]:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START, "name": "a year"})
    cus = client.v1.customers.create(params={"email": "year@example.com", "test_clock": clock.id, "payment_method": card})
    pm = client.v1.customers.payment_methods.list(cus.id).data[0].id
    client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm}})
    return clock.id, cus.id, pm


def _subscribe(client: stripe.StripeClient, customer: str) -> stripe.Subscription:
    return client.v1.subscriptions.create(params={"customer": customer, "items": [{"price": "price_monthly"}]})


def _advance(client: stripe.StripeClient, clock: str, to: int) -> stripe.test_helpers.TestClock:
    return client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})


def _types(sandbox: StripeSandbox, since: int, prefix: str = "") -> list[str]:
    return [e["type"] for e in sandbox.store.events()[since:] if e["type"].startswith(prefix)]


def test_objects_live_at_the_clocks_time_and_it_only_moves_forward(client: stripe.StripeClient) -> None:
    clock, cus, _ = _clocked_customer(client)
    got = client.v1.test_helpers.test_clocks.retrieve(clock)
    assert got.object == "test_helpers.test_clock" and got.frozen_time == START and got.status == "ready"
    customer = client.v1.customers.retrieve(cus)
    assert customer.test_clock == clock and customer.created == START
    sub = _subscribe(client, cus)
    assert sub.test_clock == clock and sub.start_date == START
    assert sub.current_period_end == add_interval(START, "month")
    with pytest.raises(stripe.InvalidRequestError, match="must be after"):
        _advance(client, clock, START)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create(params={"test_clock": "clock_nope"})
    assert err.value.param == "test_clock"
    assert [c.id for c in client.v1.test_helpers.test_clocks.list().data] == [clock]
    client.v1.test_helpers.test_clocks.delete(clock)
    assert client.v1.customers.retrieve(cus).deleted is True
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []
    assert [e.data.object.id for e in client.v1.events.list(params={"type": "test_helpers.test_clock.*"}).data] == [clock] * 2


def test_advancing_across_period_ends_renews_each_month(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    clock, cus, _ = _clocked_customer(client)
    sub = _subscribe(client, cus)
    first_end = sub.current_period_end
    second_end = add_interval(first_end, "month")
    mark = len(sandbox.store.events())

    moved = _advance(client, clock, second_end + DAY)  # two period ends at once
    assert moved.frozen_time == second_end + DAY and moved.status == "ready"
    assert _types(sandbox, mark) == [
        "test_helpers.test_clock.advancing",
        *["invoice.created", "invoice.finalized", "charge.succeeded", "payment_intent.succeeded",
          "invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"] * 2,
        "test_helpers.test_clock.ready",
    ]
    renewed = [e for e in sandbox.store.events()[mark:] if e["type"] == "customer.subscription.updated"]
    assert [e["created"] for e in renewed] == [first_end, second_end]  # stamped with the clock's time
    assert renewed[0]["data"]["previous_attributes"]["current_period_end"] == first_end
    paid = [e["data"]["object"] for e in sandbox.store.events("invoice.paid")]
    assert [i["billing_reason"] for i in paid] == ["subscription_create", "subscription_cycle", "subscription_cycle"]
    assert [i["lines"]["data"][0]["period"]["end"] for i in paid[1:]] == [second_end, add_interval(second_end, "month")]

    now = client.v1.subscriptions.retrieve(sub.id)
    assert now.status == "active" and now.current_period_start == second_end
    assert now.latest_invoice == paid[-1]["id"]
    assert len(client.v1.invoices.list(params={"customer": cus}).data) == 3
    assert len(client.v1.charges.list(params={"customer": cus}).data) == 3


def test_a_failing_card_goes_past_due_then_unpaid_after_the_retries(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    clock, cus, _ = _clocked_customer(client)
    sub = _subscribe(client, cus)
    end = sub.current_period_end
    bad = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": cus})
    client.v1.customers.update(cus, params={"invoice_settings": {"default_payment_method": bad.id}})

    _advance(client, clock, end + 60)
    past_due = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert past_due.status == "past_due"
    invoice = past_due.latest_invoice
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert invoice.next_payment_attempt == end + DUNNING_RETRY_DAYS[0] * DAY
    failed = sandbox.store.events("invoice.payment_failed")
    assert [e["data"]["object"]["id"] for e in failed] == [invoice.id]
    assert failed[0]["data"]["object"]["hosted_invoice_url"] == invoice.hosted_invoice_url

    mark = len(sandbox.store.events())
    _advance(client, clock, end + DUNNING_RETRY_DAYS[-1] * DAY + 60)
    assert _types(sandbox, mark, "invoice.") == ["invoice.payment_failed"] * len(DUNNING_RETRY_DAYS)
    retries = [e["created"] for e in sandbox.store.events()[mark:] if e["type"] == "invoice.payment_failed"]
    assert retries == [end + d * DAY for d in DUNNING_RETRY_DAYS]
    unpaid = client.v1.subscriptions.retrieve(sub.id)
    assert unpaid.status == "unpaid"
    assert client.v1.invoices.retrieve(invoice.id).next_payment_attempt is None
    # An unpaid subscription is not renewed; paying its open invoice with a good card brings it back.
    next_end = add_interval(end, "month")
    _advance(client, clock, next_end + DAY)
    assert len(client.v1.invoices.list(params={"customer": cus}).data) == 2
    good = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": cus})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert paid.status == "paid" and paid.attempt_count == len(DUNNING_RETRY_DAYS) + 2
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    # Its period ended while it was unpaid: the next advance renews it from the clock's time, not the past.
    client.v1.customers.update(cus, params={"invoice_settings": {"default_payment_method": good.id}})
    _advance(client, clock, next_end + 2 * DAY)
    revived = client.v1.subscriptions.retrieve(sub.id)
    assert revived.status == "active" and revived.current_period_start == next_end + DAY
    assert sandbox.store.events("customer.subscription.updated")[-1]["created"] == next_end + DAY


def test_a_retry_with_a_new_default_card_recovers(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    clock, cus, _ = _clocked_customer(client, "pm_card_chargeCustomerFail")
    sub = client.v1.subscriptions.create(
        params={"customer": cus, "items": [{"price": "price_monthly"}], "trial_period_days": 7}
    )
    assert sub.status == "trialing"
    _advance(client, clock, sub.trial_end + 60)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(client.v1.subscriptions.retrieve(sub.id).latest_invoice)  # type: ignore[arg-type]
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus})
    client.v1.customers.update(cus, params={"invoice_settings": {"default_payment_method": good.id}})
    _advance(client, clock, sub.trial_end + DUNNING_RETRY_DAYS[0] * DAY + 60)
    recovered = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert recovered.status == "active" and recovered.latest_invoice.status == "paid"
    statuses = [e["data"]["object"]["status"] for e in sandbox.store.events("customer.subscription.updated")]
    assert statuses[-2:] == ["past_due", "active"]


def test_cancel_at_period_end_ends_it_then_and_uncancel_keeps_it(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    clock, cus, _ = _clocked_customer(client)
    sub = _subscribe(client, cus)
    end = sub.current_period_end
    scheduled = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert scheduled.cancel_at == end
    _advance(client, clock, end - DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    _advance(client, clock, end + DAY)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.ended_at == end
    deleted = sandbox.store.events("customer.subscription.deleted")
    assert [e["created"] for e in deleted] == [end]
    assert len(client.v1.invoices.list(params={"customer": cus}).data) == 1  # no renewal

    other = _subscribe(client, cus)
    client.v1.subscriptions.update(other.id, params={"cancel_at_period_end": True})
    client.v1.subscriptions.update(other.id, params={"cancel_at_period_end": False})
    _advance(client, clock, other.current_period_end + DAY)
    kept = client.v1.subscriptions.retrieve(other.id)
    assert kept.status == "active" and kept.current_period_start == other.current_period_end


def test_3d_secure_card_renewal_needs_action(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    clock, cus, _ = _clocked_customer(client)
    sub = _subscribe(client, cus)
    card = client.v1.payment_methods.attach("pm_card_authenticationRequired", params={"customer": cus})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": card.id})
    _advance(client, clock, sub.current_period_end + 60)
    now = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice.payment_intent"]})
    assert now.status == "past_due"
    assert now.latest_invoice.payment_intent.status == "requires_action"
    assert len(sandbox.store.events("invoice.payment_action_required")) == 1
    with pytest.raises(stripe.CardError) as err:  # paying by hand still needs the customer
        client.v1.invoices.pay(now.latest_invoice.id)
    assert err.value.code == "authentication_required"
    assert client.v1.payment_intents.confirm(now.latest_invoice.payment_intent.id).status == "requires_action"
    sandbox.authenticate_payment(now.latest_invoice.payment_intent.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_first_payment_left_unauthenticated_expires_after_23_hours(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    clock, cus, _ = _clocked_customer(client, "pm_card_authenticationRequired")
    waiting = _subscribe(client, cus)
    done = _subscribe(client, cus)
    assert waiting.status == done.status == "incomplete"
    sandbox.authenticate_payment(client.v1.invoices.retrieve(done.latest_invoice).payment_intent)  # type: ignore[arg-type]
    _advance(client, clock, START + INCOMPLETE_EXPIRES_AFTER - 60)
    assert client.v1.subscriptions.retrieve(waiting.id).status == "incomplete"
    mark = len(sandbox.store.events())
    _advance(client, clock, START + INCOMPLETE_EXPIRES_AFTER + 60)
    expired = client.v1.subscriptions.retrieve(waiting.id, params={"expand": ["latest_invoice.payment_intent"]})
    assert expired.status == "incomplete_expired" and expired.ended_at == START + INCOMPLETE_EXPIRES_AFTER
    assert expired.latest_invoice.status == "void"
    assert expired.latest_invoice.payment_intent.status == "canceled"
    assert _types(sandbox, mark)[1:-1] == ["payment_intent.canceled", "invoice.voided", "customer.subscription.updated"]
    with pytest.raises(stripe.InvalidRequestError, match="void"):
        client.v1.invoices.pay(expired.latest_invoice.id)
    assert client.v1.subscriptions.retrieve(done.id).status == "active"  # paid in time


def test_advance_takes_faults_and_an_idempotent_retry_does_not_advance_twice(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    clock, cus, _ = _clocked_customer(client)
    sub = _subscribe(client, cus)
    to = sub.current_period_end + 60
    key = str(uuid.uuid4())
    sandbox.faults.add("429", path_prefix="/v1/test_helpers/test_clocks")
    with pytest.raises(stripe.RateLimitError):
        client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to}, options={"idempotency_key": key})
    assert client.v1.test_helpers.test_clocks.retrieve(clock).frozen_time == START
    sandbox.faults.add("drop", path_prefix=f"/v1/test_helpers/test_clocks/{clock}/advance")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to}, options={"idempotency_key": key})
    again = client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to}, options={"idempotency_key": key})
    assert again.frozen_time == to and sandbox.requests[-1].replayed is True
    assert len(client.v1.invoices.list(params={"customer": cus}).data) == 2  # renewed once


def test_held_events_are_delivered_shuffled_and_twice(
    client: stripe.StripeClient, sandbox: StripeSandbox, receiver: WebhookReceiver
) -> None:
    sandbox.add_webhook_endpoint(receiver.url, secret=SECRET, enabled_events=["invoice.*", "customer.subscription.*"])
    clock, cus, _ = _clocked_customer(client)
    sandbox.hold_webhooks()
    sub = _subscribe(client, cus)
    _advance(client, clock, sub.current_period_end + 60)
    held = sandbox.webhooks.held
    assert held == 10 and receiver.received == []  # created + 4 invoice events, then 4 more + updated
    assert sandbox.release_webhooks(order="shuffle", duplicate=True, seed=7) == 2 * held
    assert receiver.wait_for(2 * held)
    assert sandbox.wait_for_webhooks()
    events = [stripe.Webhook.construct_event(r.body, r.signature, SECRET) for r in receiver.received]
    ids = [e.id for e in events]
    recorded = [e["id"] for e in sandbox.store.events() if e["type"].startswith(("invoice.", "customer.subscription."))]
    assert sorted(ids) == sorted(recorded * 2)  # every event exactly twice
    assert ids[: len(recorded)] != recorded  # and not in the order they happened
    created = [e.created for e in events]
    assert created != sorted(created)

    # Through the control API, reversed, once each; then delivery is live again.
    receiver.received.clear()
    httpx.post(f"{sandbox.url}/_sandbox/webhooks/hold")
    client.v1.subscriptions.update(sub.id, params={"metadata": {"n": "1"}})
    client.v1.subscriptions.update(sub.id, params={"metadata": {"n": "2"}})
    assert httpx.post(f"{sandbox.url}/_sandbox/webhooks/release", json={"order": "reverse"}).json() == {"released": 2}
    assert receiver.wait_for(2)
    assert [json.loads(r.body)["data"]["object"]["metadata"]["n"] for r in receiver.received] == ["2", "1"]
    bad = httpx.post(f"{sandbox.url}/_sandbox/webhooks/release", json={"order": "sideways"})
    assert bad.status_code == 400 and "sideways" in bad.json()["error"]["message"]
    client.v1.subscriptions.update(sub.id, params={"metadata": {"n": "3"}})
    assert receiver.wait_for(3)
