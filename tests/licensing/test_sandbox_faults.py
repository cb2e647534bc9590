"""Injected faults as the official SDK sees them, with and without its retries."""

from __future__ import annotations

import uuid

import httpx
import pytest
import stripe

from licensing.sandbox import StripeSandbox


def test_429_is_a_rate_limit_error_and_does_no_work(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    sandbox.faults.add("429", path_prefix="/v1/customers", method="POST")
    with pytest.raises(stripe.RateLimitError) as err:
        client.v1.customers.create(params={"email": "busy@example.com"})
    assert err.value.http_status == 429
    assert err.value.json_body["error"]["code"] == "rate_limit"
    assert sandbox.store.count("customer") == 0
    assert sandbox.requests[-1].fault == "429"
    # Used up: the next request goes through.
    client.v1.customers.create(params={"email": "busy@example.com"})
    assert sandbox.store.count("customer") == 1


def test_sdk_does_not_retry_429_unless_stripe_says_so(sandbox: StripeSandbox) -> None:
    retrying = sandbox.client(max_network_retries=2)
    sandbox.faults.add("429", path_prefix="/v1/customers")
    with pytest.raises(stripe.RateLimitError):
        retrying.v1.customers.list()
    assert sandbox.request_count("/v1/customers") == 1

    sandbox.faults.add("429", path_prefix="/v1/customers", should_retry=True)
    assert retrying.v1.customers.list().data == []
    assert sandbox.request_count("/v1/customers") == 3


def test_500_is_an_api_error_and_does_no_work(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    sandbox.faults.add("500", path_prefix="/v1/subscriptions")
    cus = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    pm = client.v1.customers.payment_methods.list(cus.id).data[0]
    params = {"customer": cus.id, "items": [{"price": "price_monthly"}], "default_payment_method": pm.id}
    with pytest.raises(stripe.APIError) as err:
        client.v1.subscriptions.create(params=params)
    assert err.value.http_status == 500
    assert err.value.json_body["error"]["type"] == "api_error"
    assert sandbox.store.count("subscription") == 0


def test_sdk_retries_500_with_the_same_key_and_creates_once(sandbox: StripeSandbox) -> None:
    sandbox.faults.add("500", path_prefix="/v1/customers", method="POST", times=2)
    retrying = sandbox.client(max_network_retries=3)
    cus = retrying.v1.customers.create(params={"email": "third-time@example.com"})
    assert sandbox.store.count("customer") == 1
    posts = [r for r in sandbox.requests if r.method == "POST" and r.path == "/v1/customers"]
    assert [r.status for r in posts] == [500, 500, 200]
    assert len({r.idempotency_key for r in posts}) == 1
    assert cus.id == sandbox.store.objects("customer")[0]["id"]


def test_drop_does_the_work_but_the_client_sees_a_network_error(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    sandbox.faults.add("drop", path_prefix="/v1/customers", method="POST")
    key = str(uuid.uuid4())
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create(params={"email": "lost@example.com"}, options={"idempotency_key": key})
    stored = sandbox.store.objects("customer")
    assert len(stored) == 1  # Stripe did it; only the answer was lost

    again = client.v1.customers.create(params={"email": "lost@example.com"}, options={"idempotency_key": key})
    assert again.id == stored[0]["id"]
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert sandbox.store.count("customer") == 1


def test_sdk_retry_after_a_drop_is_replayed_without_a_duplicate(sandbox: StripeSandbox) -> None:
    sandbox.faults.add("drop", path_prefix="/v1/subscriptions", method="POST")
    retrying = sandbox.client(max_network_retries=2)
    cus = retrying.v1.customers.create(params={"payment_method": "pm_card_visa"})
    pm = retrying.v1.customers.payment_methods.list(cus.id).data[0]
    sub = retrying.v1.subscriptions.create(
        params={"customer": cus.id, "items": [{"price": "price_monthly"}], "default_payment_method": pm.id}
    )
    assert sandbox.store.count("subscription") == 1
    assert sub.id == sandbox.store.objects("subscription")[0]["id"]
    assert len(sandbox.store.events("customer.subscription.created")) == 1
    posts = [r for r in sandbox.requests if r.path == "/v1/subscriptions"]
    assert [(r.fault, r.replayed) for r in posts] == [("drop", False), (None, True)]


def test_slow_answer_times_out_the_client_but_the_work_lands(sandbox: StripeSandbox) -> None:
    impatient = sandbox.client(max_network_retries=0, timeout=0.2)
    sandbox.faults.add("slow", path_prefix="/v1/customers", method="POST", delay=1.0)
    key = str(uuid.uuid4())
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.customers.create(params={"name": "slowpoke"}, options={"idempotency_key": key})
    # Still working on it: the same key now is a conflict Stripe asks us to retry (409).
    with pytest.raises(stripe.APIError) as err:
        impatient.v1.customers.create(params={"name": "slowpoke"}, options={"idempotency_key": key})
    assert err.value.http_status == 409
    assert err.value.json_body["error"]["code"] == "idempotency_key_in_use"

    # Requests are logged once answered: the 409 first, then the slow one when it is done.
    assert sandbox.wait_for_requests(2, "/v1/customers", "POST") is True
    stored = sandbox.store.objects("customer")
    assert len(stored) == 1
    done = impatient.v1.customers.create(params={"name": "slowpoke"}, options={"idempotency_key": key})
    assert done.id == stored[0]["id"]


def test_sdk_retries_through_a_slow_answer_to_one_customer(sandbox: StripeSandbox) -> None:
    sandbox.faults.add("slow", path_prefix="/v1/customers", method="POST", delay=0.8)
    retrying = sandbox.client(max_network_retries=5, timeout=0.2)
    cus = retrying.v1.customers.create(params={"name": "patient"})
    assert cus.name == "patient"
    assert sandbox.store.count("customer") == 1
    assert sandbox.request_count("/v1/customers", "POST") >= 2


def test_fault_matching_by_method_path_and_count(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    fault = sandbox.faults.add("500", path_prefix="/v1/prices", method="GET", times=2)
    assert client.v1.customers.list().data == []  # other path: untouched
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.prices.retrieve("price_monthly")
    assert fault.fired == 2 and sandbox.faults.pending() == []
    assert client.v1.prices.retrieve("price_monthly").id == "price_monthly"

    sandbox.faults.add("429", path_prefix="/v1/events", times=None)
    for _ in range(3):
        with pytest.raises(stripe.RateLimitError):
            client.v1.events.list()
    sandbox.faults.clear()
    assert client.v1.events.list().data == []
    assert sandbox.request_count("/v1/events") == 4


def test_faults_can_be_set_over_http(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    answer = httpx.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"kind": "429", "path_prefix": "/v1/customers", "method": "POST", "times": 1},
    )
    assert answer.status_code == 200
    assert answer.json()["faults"][0]["kind"] == "429"
    assert len(httpx.get(f"{sandbox.url}/_sandbox/faults").json()["faults"]) == 1
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.create(params={})

    bad = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"kind": "meteor"})
    assert bad.status_code == 400 and "meteor" in bad.json()["error"]["message"]

    httpx.post(f"{sandbox.url}/_sandbox/faults", json={"faults": [{"kind": "500"}, {"kind": "500"}]})
    assert httpx.delete(f"{sandbox.url}/_sandbox/faults").json() == {"faults": []}
    client.v1.customers.create(params={})
    counts = httpx.get(f"{sandbox.url}/_sandbox/requests").json()["counts"]
    assert counts == {"POST /v1/customers": 2}
