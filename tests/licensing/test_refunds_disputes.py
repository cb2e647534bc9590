"""Refunds and disputes: a full refund or a dispute revokes access, cancels the subscription in Stripe
at once (once, whatever is delivered twice, out of order or fails on the way) and tells the team; the
customer gets a mail saying why; a closed dispute tells the team won or lost; a partial refund changes
nothing but a note."""

from __future__ import annotations

import datetime as dt
from typing import Any

from licensing.sandbox import StripeSandbox
from licensing.sandbox.store import add_interval
from licensing.workers import cancelled_after

from .stack import Stack, licensing_stack
from .test_lifecycle import DAY, START, advance, license_row, settle, sign_up, subjects

CANCELLED = "Your Lysmore Pro subscription was cancelled"


def team_notes(stack: Stack) -> list[str]:
    """Subjects of the team's notes (not monitoring), oldest first."""
    team = stack.app.settings.team_email
    return [m.subject for m in stack.sink.messages if team in m.recipients and not m.subject.startswith("[lysmore ")]


def note(stack: Stack, subject: str) -> str:
    """The text of the one team note with ``subject``."""
    (found,) = [m for m in stack.sink.messages if m.subject == subject]
    return found.text()


def cancels(stack: Stack, sub: str) -> int:
    """How many cancel requests reached Stripe for ``sub`` (answered or not)."""
    return stack.sandbox.request_count(f"/v1/subscriptions/{sub}", "DELETE")


def deleted_events(stack: Stack, sub: str) -> int:
    return len([e for e in stack.sandbox.store.events("customer.subscription.deleted")
                if e["data"]["object"]["id"] == sub])


def assert_ended_by_app(stack: Stack, account_id: int, sub: str, why: str, charge: str) -> dict[str, Any]:
    """The subscription was cancelled once, by the app, after ``charge``; access is gone for good."""
    got = stack.client.v1.subscriptions.retrieve(sub)
    assert got.status == "canceled" and got.cancel_at_period_end is False
    assert cancelled_after(got.to_dict()) == (why, charge)
    assert deleted_events(stack, sub) == 1
    row = license_row(stack, sub)
    assert row["revoked_at"] is not None and row["revoke_final"]
    assert not stack.app.hex_key_valid(stack.app.hex_key_of(sub))
    acc = stack.app.account(account_id)
    assert acc is not None and acc.subscription_status == "canceled"
    return row


def test_partial_refund_keeps_the_subscription_a_full_one_cancels_it_once(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        client = stack.client
        email = "ref@example.com"
        account_id, sub, clock = sign_up(stack, email)
        assert clock is not None
        (first,) = client.v1.charges.list().data

        # A partial refund: access kept, the subscription continues, and it renews.
        client.v1.refunds.create(params={"charge": first.id, "amount": 900})
        settle(stack)
        assert license_row(stack, sub)["revoked_at"] is None and client.v1.subscriptions.retrieve(sub).status == "active"
        assert team_notes(stack) == [f"New subscriber: {email} (monthly)", f"Partial refund: {email} (monthly)"]
        partial = note(stack, f"Partial refund: {email} (monthly)")
        assert "9.00 USD so far, of 49.00 USD" in partial and first.id in partial and "kept" in partial
        end = add_interval(START, "month")
        advance(stack, clock, end + DAY)
        assert client.v1.subscriptions.retrieve(sub).status == "active"
        assert len(stack.mails("Renewed:")) == 1 and cancels(stack, sub) == 0

        # The rest of the first (older) charge refunded: now in full, so access ends and Stripe stops billing.
        client.v1.refunds.create(params={"charge": first.id})
        settle(stack)
        assert_ended_by_app(stack, account_id, sub, "refund", first.id)
        assert cancels(stack, sub) == 1
        assert team_notes(stack) == [
            f"New subscriber: {email} (monthly)", f"Partial refund: {email} (monthly)",
            f"Refunded in full: {email} (monthly)",  # and no "Subscription ended": this note says it
        ]
        full = note(stack, f"Refunded in full: {email} (monthly)")
        assert f"subscription: {sub} (canceled)" in full and f"charge:       {first.id}, 49.00 USD of 2030-01-15" in full
        assert "refunded:     49.00 USD (in full)" in full and f"account:      {account_id} Eve" in full
        assert subjects(stack) == ["Welcome to Lysmore Pro", "Renewed: Lysmore Pro until 2030-03-22", CANCELLED]
        (mail,) = stack.mails(CANCELLED)
        assert mail.recipients == (email,)
        assert "payment of 49.00 USD from 2030-01-15 was refunded to you in full" in mail.text()
        assert "no further payments" in mail.text()

        # Months later: no invoice, no charge, no mail; the revocation holds.
        invoices = len(client.v1.invoices.list(params={"subscription": sub}).data)
        mails = len(stack.sink.messages)
        advance(stack, clock, add_interval(end, "month", 3) + DAY)
        assert len(client.v1.invoices.list(params={"subscription": sub}).data) == invoices == 2
        assert len(stack.sink.messages) == mails and cancels(stack, sub) == 1
        assert license_row(stack, sub)["revoke_final"]
        # No secret went out in a mail.
        for m in stack.sink.messages:
            for secret in stack.secret.values():
                assert secret not in m.message.as_string()


def test_a_dispute_cancels_and_tells_the_team_its_reason_and_due_date_then_won_or_lost(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        client = stack.client
        won_email, lost_email = "won@example.com", "lost@example.com"
        won_id, won_sub, clock = sign_up(stack, won_email)
        assert clock is not None
        (charge,) = client.v1.charges.list().data
        dispute = sandbox.open_dispute(charge.id, reason="product_not_received")
        settle(stack)
        assert_ended_by_app(stack, won_id, won_sub, "dispute", charge.id)
        assert cancels(stack, won_sub) == 1
        text = note(stack, f"Dispute: {won_email} (monthly)")
        due = dt.datetime.fromtimestamp(dispute["evidence_details"]["due_by"], dt.UTC)
        assert due == dt.datetime(2030, 1, 22, 9, tzinfo=dt.UTC)
        assert f"dispute:      {dispute['id']}, 49.00 USD, reason product_not_received, status needs_response" in text
        assert "evidence due: 2030-01-22 09:00 UTC" in text and f"subscription: {won_sub} (canceled)" in text
        assert "answer the dispute in Stripe" in text
        (mail,) = stack.mails(CANCELLED)
        assert "disputed your payment of 49.00 USD from 2030-01-15" in mail.text()

        # Stripe's test-mode evidence wins it: the team hears, access stays revoked.
        client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "winning_evidence"}})
        settle(stack)
        won = note(stack, f"Dispute won: {won_email} (monthly)")
        assert "status won" in won and "stays revoked until a person re-grants" in won
        assert license_row(stack, won_sub)["revoke_final"] and deleted_events(stack, won_sub) == 1

        # A card the bank disputes at once; the dispute is lost.
        lost_account, job = stack.app.sign_up(email=lost_email, name="Lou", plan="monthly",
                                              payment_method="pm_card_createDispute")
        lost_sub = stack.wait_completed(job.id)["result"]["subscription"]
        settle(stack)
        (lost_charge,) = client.v1.charges.list(params={"customer": client.v1.subscriptions.retrieve(lost_sub).customer}).data
        assert_ended_by_app(stack, lost_account.id, lost_sub, "dispute", lost_charge.id)
        assert "reason fraudulent" in note(stack, f"Dispute: {lost_email} (monthly)")
        (lost_dispute,) = client.v1.disputes.list(params={"charge": lost_charge.id}).data
        client.v1.disputes.update(lost_dispute.id, params={"evidence": {"uncategorized_text": "losing_evidence"}})
        settle(stack)
        lost = note(stack, f"Dispute lost: {lost_email} (monthly)")
        assert "status lost" in lost and "stays with the card holder" in lost

        team = team_notes(stack)
        assert sorted(team) == sorted([
            f"New subscriber: {won_email} (monthly)", f"Dispute: {won_email} (monthly)",
            f"Dispute won: {won_email} (monthly)", f"New subscriber: {lost_email} (monthly)",
            f"Dispute: {lost_email} (monthly)", f"Dispute lost: {lost_email} (monthly)",
        ])
        assert not any(s.startswith("Subscription ended") for s in team)
        assert len(stack.mails(CANCELLED)) == 2
        assert [m for m in stack.sink.messages if m.subject == "Your Lysmore Pro subscription"] == []  # no farewell
        assert [m.subject for m in stack.sink.messages if m.recipients == (won_email,)] == [
            "Welcome to Lysmore Pro", CANCELLED]


def test_shuffled_and_repeated_refund_and_dispute_events_cancel_once(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox) as stack:
        app, client = stack.app, stack.client
        sandbox.hold_webhooks()
        made = []
        for email in ("shr@example.com", "shd@example.com"):
            account, job = app.sign_up(email=email, name="Sam", plan="monthly", payment_method="pm_card_visa")
            made.append((account.id, stack.wait_completed(job.id)["result"]["subscription"]))
        (refunded_id, refunded), (disputed_id, disputed) = made
        (charge,) = client.v1.charges.list(params={"customer": client.v1.subscriptions.retrieve(refunded).customer}).data
        (disputed_charge,) = client.v1.charges.list(
            params={"customer": client.v1.subscriptions.retrieve(disputed).customer}).data
        # Two partial refunds that add up to the whole: two charge.refunded events, both "in full" when read.
        client.v1.refunds.create(params={"charge": charge.id, "amount": 900})
        client.v1.refunds.create(params={"charge": charge.id})
        dispute = sandbox.open_dispute(disputed_charge.id)
        client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "winning_evidence"}})

        assert sandbox.release_webhooks(order="shuffle", duplicate=True, seed=23) > 0
        sandbox.hold_webhooks()  # the cancellations' own events: held, then shuffled and repeated too
        settle(stack)
        assert sandbox.webhooks.held >= 2
        sandbox.release_webhooks(order="shuffle", duplicate=True, seed=5)
        settle(stack)

        assert_ended_by_app(stack, refunded_id, refunded, "refund", charge.id)
        assert_ended_by_app(stack, disputed_id, disputed, "dispute", disputed_charge.id)
        recorded = stack.rows("stripe_events")
        assert len(recorded) == len({e["id"] for e in recorded})
        for sub in (refunded, disputed):
            assert cancels(stack, sub) == 1
        results = [j["result"]["cancel"] for j in stack.jobs()
                   if j["worker"].endswith("ChargeCancelWorker") and j["state"] == "completed"]
        assert sorted(results) == ["already canceled", "cancelled", "cancelled"]  # the second refund event: done
        team = team_notes(stack)
        assert sorted(s for s in team if not s.startswith("New subscriber")) == [
            "Dispute won: shd@example.com (monthly)", "Dispute: shd@example.com (monthly)",
            "Refunded in full: shr@example.com (monthly)",  # once per charge, though two events said so
        ]
        assert len(stack.mails(CANCELLED)) == 2 and stack.mails("Payment failed") == []
        for row in stack.rows("licenses"):
            assert row["revoked_at"] is not None and row["revoke_final"]


def test_faults_on_the_cancel_still_cancel_once(database_url: str, prefix: str, sandbox: StripeSandbox) -> None:
    # The SDK retries nothing here, so the job sees a 429, a 500 and a lost answer, and retries on its own;
    # the lost answer's cancel went through, so the next attempt finds the subscription canceled.
    with licensing_stack(database_url, prefix, sandbox, start_node=False, max_network_retries=0) as stack:
        client = stack.client
        account_id, sub, _ = sign_up(stack, "flt@example.com", clock=False)
        for kind in ("429", "500", "drop"):
            sandbox.faults.add(kind, path_prefix="/v1/subscriptions/", method="DELETE")
        (charge,) = client.v1.charges.list().data
        client.v1.refunds.create(params={"charge": charge.id})
        settle(stack)
        assert sandbox.faults.pending() == []
        assert_ended_by_app(stack, account_id, sub, "refund", charge.id)
        assert cancels(stack, sub) == 3  # 429 and 500 refused before acting, the drop acted: one cancellation
        (job,) = [j for j in stack.jobs() if j["worker"].endswith("ChargeCancelWorker")]
        assert job["state"] == "completed" and job["result"]["cancel"] == "already canceled"
        errors = [e["error"] for e in job["errors"]]
        assert len(errors) == 3 and "RateLimitError" in errors[0] and "APIConnectionError" in errors[2]
        keys = {r.idempotency_key for r in sandbox.requests if r.method == "DELETE"}
        assert keys == {f"lysmore-{prefix}-{charge.id}-cancel-{sub}"}
        assert len(stack.mails(CANCELLED)) == 1 and len(stack.mails("Refunded in full")) == 1
