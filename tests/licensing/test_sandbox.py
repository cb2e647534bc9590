"""The Stripe sandbox driven by the official SDK: resources, events, errors and idempotency."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
import stripe

from licensing.sandbox import DEFAULT_API_KEY, StripeSandbox
from licensing.sandbox.params import parse_form
from licensing.sandbox.store import add_interval


def _key() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- form decoding


def test_parse_form_nested_keys_and_arrays() -> None:
    raw = (
        "customer=cus_1&items[0][price]=price_monthly&items[0][quantity]=2"
        "&items[1][price]=price_yearly&metadata[plan]=pro&metadata[seats]="
        "&expand[0]=customer&expand[1]=items.data.price&cancel_at_period_end=true"
    )
    assert parse_form(raw) == {
        "customer": "cus_1",
        "items": [{"price": "price_monthly", "quantity": "2"}, {"price": "price_yearly"}],
        "metadata": {"plan": "pro", "seats": ""},
        "expand": ["customer", "items.data.price"],
        "cancel_at_period_end": "true",
    }
    assert parse_form("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}


def test_add_interval_is_calendar_aware() -> None:
    jan31 = int(dt.datetime(2024, 1, 31, 12, tzinfo=dt.UTC).timestamp())
    feb29 = int(dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC).timestamp())
    assert add_interval(jan31, "month") == feb29
    assert add_interval(feb29, "year") == int(dt.datetime(2025, 2, 28, 12, tzinfo=dt.UTC).timestamp())


# ---------------------------------------------------------------- customers


def test_customer_create_retrieve_update_list_delete(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"plan": "pro", "seats": "5"}}
    )
    assert cus.id.startswith("cus_")
    assert cus.object == "customer"
    assert cus.livemode is False
    assert isinstance(cus.created, int)
    assert cus.email == "ada@example.com"
    assert cus.metadata.to_dict() == {"plan": "pro", "seats": "5"}
    assert cus.invoice_settings.default_payment_method is None

    got = client.v1.customers.retrieve(cus.id)
    assert got.id == cus.id and got.name == "Ada"

    updated = client.v1.customers.update(
        cus.id, params={"email": "ada@lovelace.dev", "metadata": {"seats": "", "tier": "gold"}}
    )
    assert updated.email == "ada@lovelace.dev"
    assert updated.metadata.to_dict() == {"plan": "pro", "tier": "gold"}

    other = client.v1.customers.create(params={"email": "bob@example.com"})
    found = client.v1.customers.list(params={"email": "ada@lovelace.dev"})
    assert [c.id for c in found.data] == [cus.id]
    everyone = client.v1.customers.list()
    assert [c.id for c in everyone.data] == [other.id, cus.id]  # newest first, like Stripe

    deleted = client.v1.customers.delete(cus.id)
    assert deleted.deleted is True and deleted.id == cus.id
    assert client.v1.customers.retrieve(cus.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.update(cus.id, params={"name": "ghost"})
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"
    assert [c.id for c in client.v1.customers.list().data] == [other.id]
    assert sandbox.store.count("customer") == 1


def test_list_pagination_with_auto_paging(client: stripe.StripeClient) -> None:
    made = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    page = client.v1.customers.list(params={"limit": 2})
    assert len(page.data) == 2 and page.has_more is True
    assert [c.id for c in page.auto_paging_iter()] == list(reversed(made))
    after = client.v1.customers.list(params={"limit": 2, "starting_after": made[2]})
    assert [c.id for c in after.data] == [made[1], made[0]] and after.has_more is False


# ---------------------------------------------------------------- payment methods


def test_payment_method_create_attach_default_detach(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus = client.v1.customers.create(params={"email": "pm@example.com"})
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    assert pm.object == "payment_method" and pm.type == "card"
    assert pm.card.brand == "visa" and pm.card.last4 == "4242"
    assert pm.customer is None

    attached = client.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    assert attached.customer == cus.id
    magic = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": cus.id})
    assert magic.id.startswith("pm_") and magic.id != "pm_card_mastercard"
    assert magic.card.brand == "mastercard"

    listed = client.v1.payment_methods.list(params={"customer": cus.id, "type": "card"})
    assert {p.id for p in listed.data} == {pm.id, magic.id}
    via_customer = client.v1.customers.payment_methods.list(cus.id)
    assert {p.id for p in via_customer.data} == {pm.id, magic.id}

    cus = client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    assert cus.invoice_settings.default_payment_method == pm.id

    other = client.v1.customers.create(params={})
    with pytest.raises(stripe.InvalidRequestError, match="already been attached"):
        client.v1.payment_methods.attach(pm.id, params={"customer": other.id})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.update(other.id, params={"invoice_settings": {"default_payment_method": pm.id}})

    detached = client.v1.payment_methods.detach(pm.id)
    assert detached.customer is None
    assert client.v1.customers.retrieve(cus.id).invoice_settings.default_payment_method is None
    assert [p.id for p in client.v1.payment_methods.list(params={"customer": cus.id}).data] == [magic.id]

    template = client.v1.payment_methods.retrieve("pm_card_visa")
    assert template.card.last4 == "4242"


def test_declined_card_cannot_be_attached(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus = client.v1.customers.create(params={})
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_methods.attach("pm_card_chargeDeclined", params={"customer": cus.id})
    assert err.value.http_status == 402
    assert err.value.code == "card_declined"
    with pytest.raises(stripe.CardError) as bad:
        client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4000000000000001", "exp_month": 1, "exp_year": 2040}}
        )
    assert bad.value.code == "incorrect_number"
    assert sandbox.store.count("payment_method") == 0


def test_customer_created_with_payment_method(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create(params={"email": "x@example.com", "payment_method": "pm_card_visa"})
    pms = client.v1.customers.payment_methods.list(cus.id)
    assert len(pms.data) == 1 and pms.data[0].customer == cus.id


# ---------------------------------------------------------------- prices and products


def test_seeded_prices_and_products(client: stripe.StripeClient) -> None:
    monthly = client.v1.prices.retrieve("price_monthly")
    yearly = client.v1.prices.retrieve("price_yearly")
    assert monthly.object == "price" and monthly.recurring.interval == "month"
    assert yearly.recurring.interval == "year"
    assert monthly.product == yearly.product
    product = client.v1.products.retrieve(monthly.product)
    assert product.object == "product" and product.active is True
    assert {p.id for p in client.v1.prices.list().data} >= {"price_monthly", "price_yearly"}
    by_key = client.v1.prices.list(params={"lookup_keys": ["pro_yearly"]})
    assert [p.id for p in by_key.data] == ["price_yearly"]
    expanded = client.v1.prices.retrieve("price_monthly", params={"expand": ["product"]})
    assert expanded.product.name == product.name
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.retrieve("price_nope")
    assert err.value.http_status == 404


# ---------------------------------------------------------------- subscriptions


@pytest.fixture
def paying_customer(client: stripe.StripeClient) -> Iterator[tuple[str, str]]:
    """A customer with an attached visa card; yields (customer id, payment method id)."""
    cus = client.v1.customers.create(params={"email": "payer@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id})
    yield cus.id, pm.id


def test_subscription_create_update_cancel(
    client: stripe.StripeClient, sandbox: StripeSandbox, paying_customer: tuple[str, str]
) -> None:
    cus_id, pm_id = paying_customer
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus_id,
            "items": [{"price": "price_monthly"}],
            "default_payment_method": pm_id,
            "metadata": {"license": "lic_1"},
        }
    )
    assert sub.object == "subscription" and sub.status == "active"
    assert sub.customer == cus_id and sub.default_payment_method == pm_id
    item = sub["items"].data[0]
    assert item.price.id == "price_monthly" and item.quantity == 1
    assert item.current_period_end == add_interval(item.current_period_start, "month")
    assert sub.cancel_at_period_end is False

    changed = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "price": "price_yearly"}], "proration_behavior": "none"}
    )
    new_item = changed["items"].data[0]
    assert new_item.id == item.id and new_item.price.id == "price_yearly"
    assert new_item.current_period_end == add_interval(new_item.current_period_start, "year")

    ending = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert ending.cancel_at_period_end is True and ending.status == "active"
    assert ending.cancel_at == new_item.current_period_end
    assert ending.cancellation_details.reason == "cancellation_requested"
    resumed = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert resumed.cancel_at is None and resumed.canceled_at is None

    listed = client.v1.subscriptions.list(params={"customer": cus_id})
    assert [s.id for s in listed.data] == [sub.id]

    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at is not None
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert client.v1.subscriptions.list(params={"customer": cus_id}).data == []
    assert [s.id for s in client.v1.subscriptions.list(params={"customer": cus_id, "status": "all"}).data] == [sub.id]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.cancel(sub.id)
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError, match="canceled subscription"):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})


def test_subscription_payment_outcomes(client: stripe.StripeClient) -> None:
    bare = client.v1.customers.create(params={})
    with pytest.raises(stripe.InvalidRequestError, match="no attached payment source"):
        client.v1.subscriptions.create(params={"customer": bare.id, "items": [{"price": "price_monthly"}]})
    trial = client.v1.subscriptions.create(
        params={"customer": bare.id, "items": [{"price": "price_monthly"}], "trial_period_days": 14}
    )
    assert trial.status == "trialing" and trial.trial_end is not None

    failing = client.v1.customers.create(params={"payment_method": "pm_card_chargeCustomerFail"})
    pm = client.v1.customers.payment_methods.list(failing.id).data[0]
    client.v1.customers.update(failing.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    incomplete = client.v1.subscriptions.create(params={"customer": failing.id, "items": [{"price": "price_monthly"}]})
    assert incomplete.status == "incomplete"
    with pytest.raises(stripe.CardError):
        client.v1.subscriptions.create(
            params={
                "customer": failing.id,
                "items": [{"price": "price_monthly"}],
                "payment_behavior": "error_if_incomplete",
            }
        )

    stranger = client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    with pytest.raises(stripe.InvalidRequestError, match="must be attached"):
        client.v1.subscriptions.create(
            params={"customer": bare.id, "items": [{"price": "price_monthly"}], "default_payment_method": stranger.id}
        )


def test_deleting_customer_cancels_subscriptions(
    client: stripe.StripeClient, paying_customer: tuple[str, str]
) -> None:
    cus_id, pm_id = paying_customer
    sub = client.v1.subscriptions.create(
        params={"customer": cus_id, "items": [{"price": "price_monthly"}], "default_payment_method": pm_id}
    )
    client.v1.customers.delete(cus_id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_expand_customer_on_subscription(client: stripe.StripeClient, paying_customer: tuple[str, str]) -> None:
    cus_id, pm_id = paying_customer
    sub = client.v1.subscriptions.create(
        params={
            "customer": cus_id,
            "items": [{"price": "price_monthly"}],
            "default_payment_method": pm_id,
            "expand": ["customer", "default_payment_method"],
        }
    )
    assert sub.customer.id == cus_id and sub.customer.email == "payer@example.com"
    assert sub.default_payment_method.card.last4 == "4242"
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.subscriptions.retrieve(sub.id, params={"expand": ["nonsense"]})


# ---------------------------------------------------------------- events


def test_every_change_records_an_event(
    client: stripe.StripeClient, paying_customer: tuple[str, str]
) -> None:
    cus_id, pm_id = paying_customer
    client.v1.customers.update(cus_id, params={"invoice_settings": {"default_payment_method": pm_id}})
    sub = client.v1.subscriptions.create(
        params={"customer": cus_id, "items": [{"price": "price_monthly"}]},
        options={"idempotency_key": "sub-create-1"},
    )
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    client.v1.subscriptions.cancel(sub.id)

    events = list(client.v1.events.list(params={"limit": 2}).auto_paging_iter())
    assert [e.type for e in reversed(events)] == [
        "customer.created",
        "payment_method.attached",
        "customer.updated",
        "customer.subscription.created",
        # The first period is billed at once (see test_sandbox_billing.py for the money side).
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    for event in events:
        assert event.id.startswith("evt_") and event.object == "event" and event.livemode is False

    updated = next(e for e in events if e.type == "customer.updated")
    assert updated.data.object.invoice_settings.default_payment_method == pm_id
    assert updated.data.previous_attributes.invoice_settings.default_payment_method is None

    created = next(e for e in events if e.type == "customer.subscription.created")
    assert created.data.object.id == sub.id
    assert created.request.idempotency_key == "sub-create-1"
    assert client.v1.events.retrieve(created.id).type == created.type

    sub_events = client.v1.events.list(params={"type": "customer.subscription.*"})
    assert len(sub_events.data) == 3


# ---------------------------------------------------------------- errors and auth


def test_bad_requests_are_stripe_shaped(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create(params={"emial": "typo@example.com"})
    assert err.value.http_status == 400 and err.value.param == "emial"
    assert err.value.json_body["error"]["type"] == "invalid_request_error"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.subscriptions.create(params={"items": [{"price": "price_monthly"}]})
    assert missing.value.param == "customer"
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client.v1.customers.retrieve("cus_missing")
    assert gone.value.http_status == 404 and "No such customer" in str(gone.value)

    raw = httpx.get(f"{sandbox.url}/v1/nothing_here", headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"})
    assert raw.status_code == 404
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert raw.headers["request-id"].startswith("req_")


def test_api_keys_are_checked_and_never_echoed(sandbox: StripeSandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    live_key = "sk_live_" + "9" * 24
    with pytest.raises(stripe.AuthenticationError) as err:
        sandbox.client(live_key).v1.customers.list()
    assert err.value.http_status == 401
    assert live_key not in str(err.value) and live_key not in (err.value.http_body or "")
    assert live_key not in caplog.text

    raw = httpx.get(f"{sandbox.url}/v1/customers")
    assert raw.status_code == 401 and "API key" in raw.json()["error"]["message"]

    strict = StripeSandbox(api_keys=["sk_test_only_this_one"])
    with strict:
        with pytest.raises(stripe.AuthenticationError):
            strict.client("sk_test_another").v1.customers.list()
        assert strict.client("sk_test_only_this_one").v1.customers.list().data == []
    assert "sk_test_another" not in caplog.text


def test_module_level_sdk_configuration(sandbox: StripeSandbox) -> None:
    saved = (stripe.api_base, stripe.api_key, stripe.max_network_retries)
    try:
        sandbox.configure_stripe_module()
        stripe.max_network_retries = 0
        cus = stripe.Customer.create(email="module@example.com", metadata={"via": "module"})
        assert stripe.Customer.retrieve(cus.id).metadata["via"] == "module"
        sub = stripe.Subscription.create(
            customer=cus.id, items=[{"price": "price_yearly"}], trial_period_days=7
        )
        assert sub.status == "trialing"
    finally:
        stripe.api_base, stripe.api_key, stripe.max_network_retries = saved


# ---------------------------------------------------------------- idempotency


def test_idempotent_replay_returns_same_object_and_does_nothing_new(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    key = _key()
    params = {"email": "once@example.com", "metadata": {"order": "42"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": key})
    again = client.v1.customers.create(params=params, options={"idempotency_key": key})
    assert again.id == first.id
    assert again.to_dict() == first.to_dict()
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert again.last_response.headers["Original-Request"] == first.last_response.request_id
    assert sandbox.store.count("customer") == 1
    assert len(sandbox.store.events("customer.created")) == 1
    assert sandbox.request_count("/v1/customers", "POST") == 2


def test_idempotency_key_reused_with_other_parameters_or_endpoint(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    key = _key()
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": key})
    assert err.value.http_status == 400
    assert err.value.json_body["error"]["type"] == "idempotency_error"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_methods.create(
            params={"type": "card", "card": {"token": "tok_visa"}}, options={"idempotency_key": key}
        )
    assert sandbox.store.count("customer") == 1


def test_idempotency_keys_are_scoped_per_api_key(sandbox: StripeSandbox) -> None:
    key = _key()
    one = sandbox.client("sk_test_account_one").v1.customers.create(params={}, options={"idempotency_key": key})
    two = sandbox.client("sk_test_account_two").v1.customers.create(params={}, options={"idempotency_key": key})
    assert one.id != two.id
    assert sandbox.store.count("customer") == 2


def test_idempotency_saves_card_errors_but_not_validation_errors(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    cus = client.v1.customers.create(params={})
    key = _key()
    for _ in range(2):
        with pytest.raises(stripe.CardError) as err:
            client.v1.payment_methods.attach(
                "pm_card_chargeDeclined", params={"customer": cus.id}, options={"idempotency_key": key}
            )
    assert err.value.headers.get("Idempotent-Replayed") == "true"

    other = _key()
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.create(params={"nmae": "typo"}, options={"idempotency_key": other})
    # A request that failed validation saved nothing, so its key is free for the corrected one.
    fixed = client.v1.customers.create(params={"name": "fixed"}, options={"idempotency_key": other})
    assert fixed.name == "fixed"
    assert fixed.last_response.headers.get("Idempotent-Replayed") is None
    assert sandbox.store.count("customer") == 2
