"""The subscription lifecycle as workflows: renewals, dunning, 3-D Secure, cancel and un-cancel, plan
changes, refunds and disputes; each handler reads the current state from Stripe, so shuffled and repeated
deliveries end in the same place."""

from __future__ import annotations

import datetime as dt
from typing import Any

from licensing.sandbox import StripeSandbox
from licensing.sandbox.store import DUNNING_RETRY_DAYS, add_interval
from licensing.stripe_ops import META_ACCOUNT, META_INSTANCE
from licensing.verify import check_license

from ..helpers import wait_for
from .stack import Stack, licensing_stack

START = int(dt.datetime(2030, 1, 15, 9, tzinfo=dt.UTC).timestamp())
DAY = 86400
DONE = ("completed", "cancelled", "discarded")


def at(ts: int) -> dt.datetime:
    """A Stripe timestamp as an aware datetime."""
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def settle(stack: Stack) -> list[dict[str, Any]]:
    """Wait until every webhook is delivered and every job finished (end-of-access jobs wait for their time)."""
    assert stack.sandbox.wait_for_webhooks(20)

    def done() -> list[dict[str, Any]]:
        jobs = stack.jobs()
        waiting = [j for j in jobs if j["state"] not in DONE
                   and not (j["state"] == "scheduled" and j["worker"].endswith("EndAccessWorker"))]
        return [] if waiting else jobs

    return wait_for(done, 30, "every job finished")


def sign_up(stack: Stack, email: str, card: str = "pm_card_visa", *, clock: bool = True) -> tuple[int, str, str | None]:
    """Sign up with the node stopped; with ``clock`` the customer lives on a test clock at START (made
    beforehand with the account's metadata, so the update job adopts it). Returns (account, subscription, clock)."""
    app = stack.app
    account, job = app.sign_up(email=email, name="Eve", plan="monthly", payment_method=card)
    clock_id = None
    if clock:
        clock_id = stack.client.v1.test_helpers.test_clocks.create(params={"frozen_time": START}).id
        stack.client.v1.customers.create(params={
            "email": email, "test_clock": clock_id,
            "metadata": {META_ACCOUNT: str(account.id), META_INSTANCE: app.prefix},
        })
    app.start()
    result = stack.wait_completed(job.id)["result"]
    assert result["steps"]["customer"] == ("found" if clock else "created")
    settle(stack)
    return account.id, result["subscription"], clock_id


def advance(stack: Stack, clock: str, to: int) -> None:
    """Move the test clock and wait for what it set off."""
    stack.client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    settle(stack)


def license_row(stack: Stack, sub: str) -> dict[str, Any]:
    (row,) = stack.rows("licenses", "subscription_id = %s", [sub])
    return row


def status_at(stack: Stack, sub: str, when: int) -> str:
    found = stack.app.license_status(stack.app.license_key_of(sub), now=at(when))
    assert found is not None
    return str(found["status"])


def subjects(stack: Stack) -> list[str]:
    """Subjects of the customer's mails (not the team's notes nor monitoring), oldest first."""
    team = stack.app.settings.team_email
    return [m.subject for m in stack.sink.messages if team not in m.recipients]


def test_monthly_renewals_move_the_expiry_and_mail_the_renewed_license(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        _, sub, clock = sign_up(stack, "ren@example.com")
        assert clock is not None
        first_end = add_interval(START, "month")
        grace = dt.timedelta(days=stack.app.settings.license_grace_days)
        assert license_row(stack, sub)["expires_at"] == at(first_end) + grace
        assert status_at(stack, sub, first_end + 8 * DAY) == "expired"  # without the renewal

        second_end = add_interval(first_end, "month")
        advance(stack, clock, first_end + DAY)
        row = license_row(stack, sub)
        assert row["expires_at"] == at(second_end) + grace and row["revoked_at"] is None
        assert status_at(stack, sub, first_end + 8 * DAY) == "valid"
        advance(stack, clock, second_end + DAY)
        third_end = add_interval(second_end, "month")
        assert license_row(stack, sub)["expires_at"] == at(third_end) + grace

        renewals = stack.mails("Renewed:")
        assert [m.subject for m in renewals] == [
            f"Renewed: Lysmore Pro until {(at(e) + grace):%Y-%m-%d}" for e in (second_end, third_end)
        ]
        # Each mail carries the license of its renewal, checked offline as the customer would.
        mailed = check_license(renewals[-1].attachments()["lysmore.license"], stack.app.public_key(), now=at(third_end))
        assert mailed.status == "valid" and mailed.expires_at == at(third_end) + grace
        assert subjects(stack) == ["Welcome to Lysmore Pro", *(m.subject for m in renewals)]


def test_a_failed_renewal_dunns_then_unpaid_suspends_and_paying_restores(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        client = stack.client
        _, sub, clock = sign_up(stack, "dun@example.com")
        assert clock is not None
        customer = client.v1.subscriptions.retrieve(sub).customer
        bad = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer})
        client.v1.subscriptions.update(sub, params={"default_payment_method": bad.id})
        end = add_interval(START, "month")

        advance(stack, clock, end + 60)
        invoice = client.v1.subscriptions.retrieve(sub, params={"expand": ["latest_invoice"]}).latest_invoice
        (dunning,) = stack.mails("Payment failed")
        assert invoice.hosted_invoice_url in dunning.text() and dunning.recipients == ("dun@example.com",)
        assert status_at(stack, sub, end + 60) == "valid"  # past_due: still retrying

        advance(stack, clock, end + DUNNING_RETRY_DAYS[-1] * DAY + 60)
        assert client.v1.subscriptions.retrieve(sub).status == "unpaid"
        assert len(stack.mails("Payment failed")) == 1 + len(DUNNING_RETRY_DAYS)
        assert status_at(stack, sub, end + DUNNING_RETRY_DAYS[-1] * DAY + 60) == "revoked"
        assert not stack.app.hex_key_valid(stack.app.hex_key_of(sub))
        assert stack.app.account(stack.rows("accounts")[0]["id"]).subscription_status == "unpaid"  # type: ignore[union-attr]

        good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
        client.v1.subscriptions.update(sub, params={"default_payment_method": good.id})
        client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
        settle(stack)
        row = license_row(stack, sub)
        assert row["revoked_at"] is None and not row["revoke_final"]
        assert status_at(stack, sub, end + DUNNING_RETRY_DAYS[-1] * DAY + 120) == "valid"
        assert stack.app.hex_key_valid(stack.app.hex_key_of(sub))
        assert subjects(stack)[-1].startswith("Renewed:")


def test_3d_secure_sign_up_waits_for_the_customer_then_welcomes(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox) as stack:
        account, job = stack.app.sign_up(email="tds@example.com", plan="monthly",
                                         payment_method="pm_card_authenticationRequired")
        result = stack.wait_completed(job.id)["result"]
        assert result["status"] == "incomplete"  # not cancelled: it waits for the customer
        settle(stack)
        (action,) = stack.mails("Action needed")
        (pi,) = sandbox.store.objects("payment_intent")
        assert f"/_sandbox/3ds/{pi['id']}" in action.text()
        assert stack.mails("Payment failed") == [] and stack.mails("Welcome") == []  # the 3DS failure is no dunning
        assert stack.rows("licenses") == [] and stack.rows("hex_keys") == []

        sandbox.authenticate_payment(pi["id"])
        settle(stack)
        assert len(stack.mails("Welcome")) == 1
        sub = result["subscription"]
        assert license_row(stack, sub)["revoked_at"] is None
        assert stack.app.hex_key_valid(stack.app.hex_key_of(sub))
        assert subjects(stack) == ["Action needed: confirm your Lysmore Pro payment", "Welcome to Lysmore Pro"]
        assert stack.app.account(account.id).subscription_status == "active"  # type: ignore[union-attr]


def test_cancel_schedules_the_end_and_un_cancel_restores(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app = stack.app
        account_id, sub, clock = sign_up(stack, "unc@example.com")
        end = add_interval(START, "month")
        stack.wait_completed(app.set_cancel_at_period_end(account_id, True).id)
        settle(stack)
        row = license_row(stack, sub)
        assert row["revoked_at"] is not None and row["ends_at"] == at(end)
        assert status_at(stack, sub, end - 60) == "valid" and status_at(stack, sub, end) == "revoked"
        (end_job,) = [j for j in stack.jobs() if j["worker"].endswith("EndAccessWorker")]
        assert end_job["state"] == "scheduled" and end_job["scheduled_at"] == at(end)
        assert len(stack.mails("Your Lysmore")) == 1

        stack.wait_completed(app.set_cancel_at_period_end(account_id, False).id)
        settle(stack)
        row = license_row(stack, sub)
        assert row["revoked_at"] is None and row["ends_at"] is None
        assert status_at(stack, sub, end + DAY) == "valid" and app.hex_key_valid(app.hex_key_of(sub))

        assert app.engine.retry_job(end_job["id"])  # its time comes: the subscription continues
        assert stack.wait_completed(end_job["id"])["result"]["access"] == "continues: un-cancelled"
        assert license_row(stack, sub)["revoked_at"] is None
        assert clock is not None
        advance(stack, clock, end + DAY)  # and it renews
        assert client_status(stack, sub) == "active" and len(stack.mails("Renewed:")) == 1


def client_status(stack: Stack, sub: str) -> str:
    return str(stack.client.v1.subscriptions.retrieve(sub).status)


def test_a_plan_change_re_issues_the_license_with_the_new_plan(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        account_id, sub, _ = sign_up(stack, "pla@example.com", clock=False)
        before = license_row(stack, sub)
        stack.wait_completed(stack.app.change_plan(account_id, "yearly").id)
        settle(stack)
        after = license_row(stack, sub)
        assert (before["plan"], after["plan"]) == ("monthly", "yearly") and after["license"] != before["license"]
        checked = check_license(after["license"], stack.app.public_key())
        assert checked.payload["plan"] == "yearly" and checked.expires_at > before["expires_at"]
        acc = stack.app.account(account_id)
        assert acc is not None and acc.subscription_plan == "yearly"


def test_a_plan_change_back_to_monthly_re_issues_the_license_for_the_sooner_end(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        account_id, sub, clock = sign_up(stack, "bac@example.com")
        assert clock is not None
        changed = START + 5 * DAY
        advance(stack, clock, changed)
        for plan in ("yearly", "monthly"):
            stack.wait_completed(stack.app.change_plan(account_id, plan).id)
            settle(stack)
        # Each change of interval restarted the cycle at the clock's time; the monthly one ends first.
        grace = dt.timedelta(days=stack.app.settings.license_grace_days)
        row = license_row(stack, sub)
        assert row["plan"] == "monthly" and row["expires_at"] == at(add_interval(changed, "month")) + grace
        assert check_license(row["license"], stack.app.public_key(), now=at(changed)).payload["plan"] == "monthly"
        assert status_at(stack, sub, add_interval(changed, "month") + 8 * DAY) == "expired"


def test_a_full_refund_and_a_dispute_revoke_a_partial_refund_does_not(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        client = stack.client
        _, sub, _ = sign_up(stack, "ref@example.com", clock=False)
        (charge,) = client.v1.charges.list().data
        client.v1.refunds.create(params={"charge": charge.id, "amount": 100})
        settle(stack)
        assert license_row(stack, sub)["revoked_at"] is None
        client.v1.refunds.create(params={"charge": charge.id})
        settle(stack)
        row = license_row(stack, sub)
        assert row["revoked_at"] is not None and row["revoke_final"]
        assert not stack.app.hex_key_valid(stack.app.hex_key_of(sub))
        results = [j["result"] for j in stack.jobs() if j["worker"].endswith("ChargeRevokeWorker")]
        assert sorted(r["access"] for r in results) == ["kept: partial refund", "revoked"]

        disputed, job = stack.app.sign_up(email="dis@example.com", plan="monthly", payment_method="pm_card_createDispute")
        sub2 = stack.wait_completed(job.id)["result"]["subscription"]
        settle(stack)
        row = license_row(stack, sub2)
        assert row["revoked_at"] is not None and row["revoke_final"]
        assert not stack.app.hex_key_valid(stack.app.hex_key_of(sub2))


def test_shuffled_and_repeated_deliveries_end_in_the_current_state(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox) as stack:
        app = stack.app
        sandbox.hold_webhooks()
        account, job = app.sign_up(email="shu@example.com", plan="monthly", payment_method="pm_card_visa")
        sub = stack.wait_completed(job.id)["result"]["subscription"]
        for change in (lambda: app.set_cancel_at_period_end(account.id, True),
                       lambda: app.change_plan(account.id, "yearly"),
                       lambda: app.set_cancel_at_period_end(account.id, False)):
            stack.wait_completed(change().id)
        assert sandbox.release_webhooks(order="shuffle", duplicate=True, seed=17) > 0
        settle(stack)

        recorded = stack.rows("stripe_events")
        assert len(recorded) == len({e["id"] for e in recorded})  # each event once, though delivered twice
        row = license_row(stack, sub)
        assert row["revoked_at"] is None and row["plan"] == "yearly"
        assert check_license(row["license"], app.public_key()).payload["plan"] == "yearly"
        assert app.hex_key_valid(app.hex_key_of(sub))
        assert len(stack.mails("Welcome")) == 1 and stack.mails("Payment failed") == []
        assert stack.mails("Your Lysmore") == []  # un-cancelled before the farewell went out
        acc = app.account(account.id)
        assert acc is not None and acc.subscription_status == "active" and acc.subscription_cancel_at_period_end is False
