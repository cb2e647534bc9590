"""The sandbox's money side through the official SDK: invoices, charges, 3-D Secure, refunds, disputes."""

from __future__ import annotations

import uuid

import httpx
import pytest
import stripe

from licensing.sandbox import StripeSandbox


def _customer(client: stripe.StripeClient, card: str = "pm_card_visa") -> tuple[str, str]:
    cus = client.v1.customers.create(params={"email": "pay@example.com", "payment_method": card})
    pm = client.v1.customers.payment_methods.list(cus.id).data[0].id
    client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm}})
    return cus.id, pm


def _subscribe(client: stripe.StripeClient, customer: str, behavior: str = "allow_incomplete") -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"price": "price_monthly"}],
            "payment_behavior": behavior,  # type: ignore[typeddict-item]
            "expand": ["latest_invoice.payment_intent"],
        }
    )


def test_a_new_subscription_pays_its_first_invoice(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, pm = _customer(client)
    sub = _subscribe(client, cus, "error_if_incomplete")
    assert sub.status == "active"
    assert sub.current_period_start == sub["items"].data[0].current_period_start
    assert sub.current_period_end > sub.current_period_start
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.status == "paid" and invoice.amount_due == 4900 and invoice.amount_paid == 4900
    assert invoice.billing_reason == "subscription_create"
    assert invoice.lines.data[0].period.end == sub.current_period_end
    assert invoice.hosted_invoice_url.startswith(sandbox.url)
    pi = invoice.payment_intent
    assert pi.status == "succeeded" and pi.amount_received == 4900 and pi.payment_method == pm
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "succeeded" and charge.paid and charge.amount == 4900
    assert charge.invoice == invoice.id and charge.customer == cus
    assert [i.id for i in client.v1.invoices.list(params={"subscription": sub.id}).data] == [invoice.id]
    assert [c.id for c in client.v1.charges.list(params={"customer": cus}).data] == [charge.id]

    page = httpx.get(invoice.hosted_invoice_url)
    assert page.status_code == 200 and "paid" in page.text and invoice.number in page.text
    assert httpx.get(f"{sandbox.url}/_sandbox/hosted/invoices/in_nope").status_code == 404


def test_a_declined_first_payment(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, _ = _customer(client, "pm_card_chargeCustomerFail")
    with pytest.raises(stripe.CardError) as err:
        _subscribe(client, cus, "error_if_incomplete")
    assert err.value.code == "card_declined"
    assert sandbox.store.count("subscription") == 0 and sandbox.store.count("invoice") == 0

    sub = _subscribe(client, cus, "allow_incomplete")
    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"
    assert sub.latest_invoice.payment_intent.status == "requires_payment_method"
    assert sub.latest_invoice.next_payment_attempt is None  # a first invoice is never retried
    failed = client.v1.charges.list(params={"customer": cus}).data
    assert [c.status for c in failed] == ["failed"]
    assert [e["type"] for e in sandbox.store.events() if e["type"].startswith("invoice.")] == [
        "invoice.created", "invoice.finalized", "invoice.payment_failed",
    ]


def test_3d_secure_sign_up_waits_then_completes(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, pm = _customer(client, "pm_card_authenticationRequiredOnSetup")
    with pytest.raises(stripe.CardError) as err:
        _subscribe(client, cus, "error_if_incomplete")
    assert err.value.code == "authentication_required"

    sub = _subscribe(client, cus, "allow_incomplete")
    assert sub.status == "incomplete"
    invoice = sub.latest_invoice
    pi = invoice.payment_intent
    assert invoice.status == "open"
    assert pi.status == "requires_action"
    redirect = pi.next_action.redirect_to_url.url
    assert redirect.startswith(sandbox.url)
    assert [e["data"]["object"]["id"] for e in sandbox.store.events("invoice.payment_action_required")] == [invoice.id]
    assert "Confirm this payment" in httpx.get(invoice.hosted_invoice_url).text

    # The customer follows the link and completes the challenge.
    page = httpx.get(redirect)
    assert page.status_code == 200 and "Complete authentication" in page.text
    done = httpx.post(redirect, data={"outcome": "complete"})
    assert done.status_code == 200 and "succeeded" in done.text

    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    paid = client.v1.invoices.retrieve(invoice.id)
    assert paid.status == "paid" and paid.attempt_count == 2
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    updated = sandbox.store.events("customer.subscription.updated")[-1]
    assert updated["data"]["previous_attributes"]["status"] == "incomplete"
    # Authenticated once: this card now pays off-session.
    again = _subscribe(client, cus, "error_if_incomplete")
    assert again.status == "active"
    assert pm == again.latest_invoice.payment_intent.payment_method
    # A second authentication of a settled payment is refused, naming the state.
    assert "status is succeeded" in httpx.post(redirect, data={"outcome": "complete"}).text


def test_3d_secure_failure_and_confirm_with_another_card(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, _ = _customer(client, "pm_card_threeDSecure2Required")
    sub = _subscribe(client, cus)
    pi = sub.latest_invoice.payment_intent
    failed = sandbox.authenticate_payment(pi.id, succeed=False)
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"

    visa = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus})
    confirmed = client.v1.payment_intents.confirm(pi.id, params={"payment_method": visa.id})
    assert confirmed.status == "succeeded"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    with pytest.raises(stripe.InvalidRequestError, match="succeeded"):
        client.v1.payment_intents.confirm(pi.id)


def test_default_incomplete_waits_for_a_confirm(client: stripe.StripeClient) -> None:
    cus, _ = _customer(client)
    sub = _subscribe(client, cus, "default_incomplete")
    assert sub.status == "incomplete"
    pi = sub.latest_invoice.payment_intent
    assert pi.status == "requires_confirmation"
    assert client.v1.payment_intents.confirm(pi.id).status == "succeeded"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_full_and_partial_refunds(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, _ = _customer(client)
    sub = _subscribe(client, cus)
    charge_id = sub.latest_invoice.payment_intent.latest_charge

    part = client.v1.refunds.create(params={"charge": charge_id, "amount": 1000, "reason": "requested_by_customer"})
    assert part.status == "succeeded" and part.amount == 1000 and part.charge == charge_id
    charge = client.v1.charges.retrieve(charge_id)
    assert charge.amount_refunded == 1000 and charge.refunded is False

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": charge_id, "amount": 5000})
    assert err.value.code == "amount_too_large" and "$39.00" in str(err.value)

    rest = client.v1.refunds.create(params={"payment_intent": sub.latest_invoice.payment_intent.id})
    assert rest.amount == 3900
    charge = client.v1.charges.retrieve(charge_id)
    assert charge.amount_refunded == 4900 and charge.refunded is True
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": charge_id})
    assert err.value.code == "charge_already_refunded"

    events = sandbox.store.events("charge.refunded")
    assert [(e["data"]["object"]["amount_refunded"], e["data"]["object"]["refunded"]) for e in events] == [
        (1000, False), (4900, True),
    ]
    assert events[1]["data"]["previous_attributes"] == {"amount_refunded": 1000, "refunded": False}
    assert [r.amount for r in client.v1.refunds.list(params={"charge": charge_id}).data] == [3900, 1000]
    # Refunds leave the invoice and the subscription as they were.
    assert client.v1.invoices.retrieve(sub.latest_invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_disputes_by_helper_and_by_test_card(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, _ = _customer(client)
    charge_id = _subscribe(client, cus).latest_invoice.payment_intent.latest_charge
    answer = httpx.post(f"{sandbox.url}/_sandbox/charges/{charge_id}/dispute", json={"reason": "product_not_received"})
    assert answer.status_code == 200
    dispute = client.v1.disputes.retrieve(answer.json()["id"])
    assert dispute.charge == charge_id and dispute.status == "needs_response" and dispute.amount == 4900
    assert dispute.reason == "product_not_received"
    assert client.v1.charges.retrieve(charge_id).disputed is True
    created = sandbox.store.events("charge.dispute.created")
    assert [e["data"]["object"]["id"] for e in created] == [dispute.id]
    again = httpx.post(f"{sandbox.url}/_sandbox/charges/{charge_id}/dispute")
    assert again.status_code == 400 and "already disputed" in again.json()["error"]["message"]
    assert client.v1.disputes.close(dispute.id).status == "lost"
    assert len(sandbox.store.events("charge.dispute.closed")) == 1

    fraud, _ = _customer(client, "pm_card_createDispute")
    sub = _subscribe(client, fraud)
    assert sub.status == "active"
    disputed = client.v1.disputes.list(params={"charge": sub.latest_invoice.payment_intent.latest_charge}).data
    assert [d.reason for d in disputed] == ["fraudulent"]


def test_evidence_wins_or_loses_a_dispute_as_in_stripe_test_mode(
    client: stripe.StripeClient, sandbox: StripeSandbox
) -> None:
    outcomes = {}
    for text in ("winning_evidence", "losing_evidence"):
        cus, _ = _customer(client)
        charge_id = _subscribe(client, cus).latest_invoice.payment_intent.latest_charge
        dispute = sandbox.open_dispute(charge_id, reason="product_unacceptable")
        assert dispute["evidence"]["uncategorized_text"] is None
        assert dispute["evidence_details"]["due_by"] == dispute["created"] + 7 * 86400
        # Evidence kept but not submitted: still open, nothing closed.
        draft = client.v1.disputes.update(dispute["id"], params={
            "evidence": {"customer_name": "Pat"}, "submit": False})
        assert draft.status == "needs_response" and draft.evidence_details.has_evidence is True
        closed = client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": text}})
        outcomes[text] = closed.status
        assert closed.evidence_details.submission_count == 1 and closed.evidence.customer_name == "Pat"
        with pytest.raises(stripe.InvalidRequestError, match="already closed"):
            client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "more"}})
        with pytest.raises(stripe.InvalidRequestError, match="already closed"):
            client.v1.disputes.close(dispute["id"])
    assert outcomes == {"winning_evidence": "won", "losing_evidence": "lost"}
    closed_events = sandbox.store.events("charge.dispute.closed")
    assert [e["data"]["object"]["status"] for e in closed_events] == ["won", "lost"]
    assert len(sandbox.store.events("charge.dispute.updated")) == 4

    cus, _ = _customer(client)
    charge_id = _subscribe(client, cus).latest_invoice.payment_intent.latest_charge
    dispute = sandbox.open_dispute(charge_id)
    other = client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "we shipped it"}})
    assert other.status == "under_review"  # any other evidence: the bank decides later
    with pytest.raises(stripe.InvalidRequestError, match=r"evidence\[shoe_size\]"):
        client.v1.disputes.update(dispute["id"], params={"evidence": {"shoe_size": "9"}})  # type: ignore[typeddict-unknown-key]


def test_new_calls_take_faults_and_replay_idempotently(client: stripe.StripeClient, sandbox: StripeSandbox) -> None:
    cus, _ = _customer(client)
    charge_id = _subscribe(client, cus).latest_invoice.payment_intent.latest_charge
    key = str(uuid.uuid4())
    params = {"charge": charge_id, "amount": 500}

    sandbox.faults.add("500", path_prefix="/v1/refunds", method="POST")
    with pytest.raises(stripe.APIError):
        client.v1.refunds.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert sandbox.store.count("refund") == 0  # a 500 does no work

    sandbox.faults.add("drop", path_prefix="/v1/refunds", method="POST")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.refunds.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert sandbox.store.count("refund") == 1  # done, answer lost

    retried = client.v1.refunds.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert sandbox.requests[-1].replayed is True
    assert sandbox.store.count("refund") == 1 and retried.id == sandbox.store.objects("refund")[0]["id"]
    assert client.v1.charges.retrieve(charge_id).amount_refunded == 500

    for path in ("/v1/invoices", "/v1/charges", "/v1/payment_intents", "/v1/disputes"):
        sandbox.faults.add("429", path_prefix=path)
    with pytest.raises(stripe.RateLimitError):
        client.v1.invoices.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.charges.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.payment_intents.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.disputes.list()
    assert not sandbox.faults.pending()


def test_the_module_level_sdk_works_too(sandbox: StripeSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_base", sandbox.url)
    monkeypatch.setattr(stripe, "api_key", "sk_test_module")
    cus = stripe.Customer.create(payment_method="pm_card_visa")
    pm = stripe.Customer.list_payment_methods(cus.id).data[0]
    stripe.Customer.modify(cus.id, invoice_settings={"default_payment_method": pm.id})
    sub = stripe.Subscription.create(customer=cus.id, items=[{"price": "price_yearly"}])
    invoices = stripe.Invoice.list(customer=cus.id)
    assert [i.amount_paid for i in invoices.data] == [49000]
    charge = stripe.Charge.retrieve(invoices.data[0].charge)
    refund = stripe.Refund.create(charge=charge.id, amount=100)
    assert stripe.Refund.retrieve(refund.id).amount == 100
    assert stripe.Subscription.retrieve(sub.id).status == "active"
