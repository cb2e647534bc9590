"""One customer through a year on the sandbox's test clock (issue 17): sign-up with 3-D Secure, monthly
renewals, a failed payment then recovery, a plan change and back, a cancel then un-cancel, a full refund
that ends the subscription;
the private node runs as a real process and is killed with SIGKILL three times mid-Stripe-call, and
Stripe answers 429s, 500s and lost answers for stretches. It ends with exactly the mails, license
states and Stripe objects listed at the bottom."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from licensing.sandbox import StripeSandbox
from licensing.sandbox.faults import Fault
from licensing.stripe_ops import META_ACCOUNT, META_INSTANCE
from licensing.verify import check_license

from ..helpers import wait_for
from .nodes import NodeProcess, node_env
from .stack import Stack, licensing_stack
from .test_lifecycle import START, at, license_row, settle, status_at, subjects

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EMAIL = "yve@example.com"
HOUR = 3600
#: How long a killed node's Stripe call hangs: far longer than seeing it arrive and sending SIGKILL.
HANG = 3.0


def day(text: str) -> int:
    """A day of the year at 09:00 UTC (START's time of day), as a Stripe timestamp."""
    return int(dt.datetime.fromisoformat(f"{text}T09:00:00+00:00").timestamp())


class Year:
    """The stack, the one node process alive at a time, and the customer's test clock."""

    def __init__(self, stack: Stack, logs: Path) -> None:
        self.stack = stack
        self.logs = logs
        self.env = node_env(stack)
        self.nodes: list[NodeProcess] = []
        self.killed: list[str] = []
        self.clock = ""

    @property
    def node(self) -> NodeProcess:
        return self.nodes[-1]

    def start_node(self) -> None:
        name = f"n{len(self.nodes) + 1}"
        self.nodes.append(NodeProcess(name, self.env, self.logs / f"{name}.log"))

    def kill_in_call(self, method: str, path: str, trigger: Callable[[], Any]) -> None:
        """Make the node's next ``method path`` call hang in Stripe, set it off with ``trigger()``,
        SIGKILL the node while it waits for the answer, start a fresh one, and wait until everything
        settled and the fresh node's reporter told the team the killed one was lost."""
        hang = self.stack.sandbox.faults.add("slow", path_prefix=path, method=method, delay=HANG)
        trigger()
        wait_for(lambda: hang.fired, 30, f"the node's {method} {path} in flight")
        killed = self.node.name
        self.node.kill()
        self.killed.append(killed)
        self.start_node()
        settle(self.stack)
        lost = f"[lysmore {self.stack.app.prefix}] node lost: {killed} NodeLost"
        self.stack.sink.wait_for(lambda ms: any(m.subject == lost for m in ms))

    def advance(self, to: int) -> None:
        """Move the test clock (what it sets off is not waited for)."""
        self.stack.client.v1.test_helpers.test_clocks.advance(self.clock, params={"frozen_time": to})

    def advance_settled(self, to: int) -> None:
        """Move the test clock and wait until its webhooks are delivered and their workflows done."""
        self.advance(to)
        settle(self.stack)


def faults_on(stack: Stack, *specs: tuple[str, str, str, int]) -> list[Fault]:
    """Schedule faults ``(kind, method, path, times)``, on paths only the node calls while they are on."""
    return [stack.sandbox.faults.add(k, method=m, path_prefix=p, times=n) for k, m, p, n in specs]


def all_fired(stack: Stack, faults: list[Fault]) -> None:
    assert stack.sandbox.faults.pending() == [] and all(f.fired == f.times for f in faults)


def test_one_customer_through_a_year(database_url: str, prefix: str, sandbox: StripeSandbox, tmp_path: Path) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app, client = stack.app, stack.client
        grace = dt.timedelta(days=app.settings.license_grace_days)
        year = Year(stack, tmp_path)
        states: list[tuple[str, str]] = []  # (clock time, the license's status then), checked as the year goes
        expiries: list[str] = []  # the license's expiry after each change of it

        def state(when: int) -> None:
            states.append((f"{at(when):%Y-%m-%d %H:%M:%S}", status_at(stack, sub, when)))

        def expiry() -> None:
            """Note the license's expiry, and check it is the period end Stripe has now plus the grace."""
            row = license_row(stack, sub)
            period_end = client.v1.subscriptions.retrieve(sub)["items"]["data"][0]["current_period_end"]
            assert row["expires_at"] == at(period_end) + grace
            expiries.append(f"{row['expires_at']:%Y-%m-%d}")

        try:
            # -- 2030-01-15: sign-up; the card needs 3-D Secure ---------------------------------
            account, signup = app.sign_up(email=EMAIL, name="Yve", plan="monthly",
                                          payment_method="pm_card_authenticationRequiredOnSetup")
            year.clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START}).id
            client.v1.customers.create(params={  # made beforehand on the clock; the update job adopts it
                "email": EMAIL, "test_clock": year.clock,
                "metadata": {META_ACCOUNT: str(account.id), META_INSTANCE: prefix},
            })
            year.start_node()
            result = stack.wait_completed(signup.id)["result"]
            assert result["status"] == "incomplete" and result["steps"]["customer"] == "found"
            sub: str = result["subscription"]
            settle(stack)
            assert subjects(stack) == ["Action needed: confirm your Lysmore Pro payment"]
            assert stack.rows("licenses") == []  # nothing before the payment
            # The customer confirms; n1 dies reading the subscription for the paid first invoice.
            (pi,) = sandbox.store.objects("payment_intent")
            year.kill_in_call("GET", "/v1/subscriptions/", lambda: sandbox.authenticate_payment(pi["id"]))
            expiry()
            state(START)
            state(day("2030-02-22") + 1)  # a week past the first period, had it not renewed

            # -- 2030-02-15: renewal, with 429s and 500s on the node's reads ----------------------
            faults = faults_on(stack, ("429", "GET", "/v1/invoices/", 1), ("500", "GET", "/v1/invoices/", 3),
                               ("500", "GET", "/v1/subscriptions/", 3))
            year.advance_settled(day("2030-02-15") + HOUR)
            all_fired(stack, faults)
            expiry()
            state(day("2030-02-22") + 1)

            # -- 2030-03-15: the card fails; on the 18th it is fixed and Stripe's retry pays --------
            customer = str(client.v1.subscriptions.retrieve(sub).customer)
            bad = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer})
            client.v1.subscriptions.update(sub, params={"default_payment_method": bad.id})
            settle(stack)
            year.advance_settled(day("2030-03-15") + HOUR)
            assert client.v1.subscriptions.retrieve(sub).status == "past_due"
            expiry()  # past_due keeps access while Stripe retries: already the new period
            state(day("2030-03-15") + HOUR)
            good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
            client.v1.subscriptions.update(sub, params={"default_payment_method": good.id})
            settle(stack)
            # n2 dies fetching the invoice the retry paid, to mail the renewal.
            year.kill_in_call("GET", "/v1/invoices/", lambda: year.advance(day("2030-03-18") + HOUR))
            assert client.v1.subscriptions.retrieve(sub).status == "active"
            expiry()

            # -- 2030-04-15: renewal ----------------------------------------------------------------
            year.advance_settled(day("2030-04-15") + HOUR)
            expiry()

            # -- 2030-04-20: monthly -> yearly -> monthly within 120 s, faults on the Stripe calls ---
            year.advance_settled(day("2030-04-20"))
            plan_faults = [("429", "POST", "/v1/subscriptions/", 1), ("500", "POST", "/v1/subscriptions/", 1),
                           ("drop", "POST", "/v1/subscriptions/", 1), ("500", "GET", "/v1/customers/", 3)]
            faults = faults_on(stack, *plan_faults)
            to_yearly = app.change_plan(account.id, "yearly")
            stack.wait_completed(to_yearly.id, 60)
            settle(stack)
            all_fired(stack, faults)
            expiry()
            yearly = check_license(license_row(stack, sub)["license"], app.public_key(), now=at(day("2030-04-20")))
            faults = faults_on(stack, *plan_faults)
            to_monthly = app.change_plan(account.id, "monthly")
            click = app.change_plan(account.id, "monthly")  # a second click: inside the 120 s, the same job
            assert not to_monthly.conflict and to_monthly.id != to_yearly.id
            assert click.conflict and click.id == to_monthly.id
            stack.wait_completed(to_monthly.id, 60)
            settle(stack)
            all_fired(stack, faults)
            expiry()
            state(day("2030-05-27") + 1)  # the monthly license's end, not the yearly one's

            # -- 2030-05-20: renewal ----------------------------------------------------------------
            year.advance_settled(day("2030-05-20") + HOUR)
            expiry()

            # -- 2030-06-01: cancel at the period end (n3 dies sending it); 06-10: un-cancel ---------
            year.advance_settled(day("2030-06-01"))
            year.kill_in_call("POST", "/v1/subscriptions/", lambda: app.set_cancel_at_period_end(account.id, True))
            assert license_row(stack, sub)["ends_at"] == at(day("2030-06-20"))
            state(day("2030-06-20") - 1)
            state(day("2030-06-20"))
            year.advance_settled(day("2030-06-10"))
            stack.wait_completed(app.set_cancel_at_period_end(account.id, False).id)
            settle(stack)
            state(day("2030-06-20"))

            # -- 2030-06-20 to 2030-12-20: renewals; 500s on the node's invoice reads in September ----
            for month in ("06", "07", "08", "09", "10", "11", "12"):
                faults = faults_on(stack, ("500", "GET", "/v1/invoices/", 3)) if month == "09" else []
                year.advance_settled(day(f"2030-{month}-20") + HOUR)
                all_fired(stack, faults)
                expiry()
            state(day("2031-01-27") - 1)

            # -- 2031-01-05: December's payment refunded in full, so the app cancels the subscription;
            # -- 2031-01-15: a year; 2031-01-21: past the period end, nothing renews -----------------
            year.advance_settled(day("2031-01-05"))
            (december,) = [c for c in sandbox.store.objects("charge") if c["created"] == day("2030-12-20")]
            client.v1.refunds.create(params={"charge": december["id"]})
            settle(stack)
            year.advance_settled(day("2031-01-15"))
            # A revocation without an end takes effect at the database's clock, which is before any
            # time on this test clock: so it is checked last, and only at a time after the refund.
            state(day("2031-01-15"))
            year.advance_settled(day("2031-01-21") + HOUR)
            assert year.node.stop() == 0  # its reporter sends what it still holds
        finally:
            for node in year.nodes:
                if node.proc.poll() is None:
                    node.kill()

        # ================================ what a person would expect ===============================
        assert year.killed == ["n1", "n2", "n3"]

        # The customer's mails, oldest first. Each step was settled before the next, so the order
        # is fixed. Plan changes bill the new cycle at once (the sandbox does not prorate), and each
        # paid invoice after the first mails the re-issued license as a renewal.
        assert subjects(stack) == [
            "Action needed: confirm your Lysmore Pro payment",  # 01-15 sign-up, 3-D Secure
            "Welcome to Lysmore Pro",                           # 01-15 confirmed
            "Renewed: Lysmore Pro until 2030-03-22",            # 02-15
            "Payment failed: Lysmore Pro",                      # 03-15 declined
            "Renewed: Lysmore Pro until 2030-04-22",            # 03-18 the retry paid
            "Renewed: Lysmore Pro until 2030-05-22",            # 04-15
            "Renewed: Lysmore Pro until 2031-04-27",            # 04-20 yearly
            "Renewed: Lysmore Pro until 2030-05-27",            # 04-20 monthly again
            "Renewed: Lysmore Pro until 2030-06-27",            # 05-20
            "Your Lysmore Pro subscription",                    # 06-01 cancelled (un-cancelled on 06-10)
            "Renewed: Lysmore Pro until 2030-07-27",            # 06-20
            "Renewed: Lysmore Pro until 2030-08-27",
            "Renewed: Lysmore Pro until 2030-09-27",
            "Renewed: Lysmore Pro until 2030-10-27",
            "Renewed: Lysmore Pro until 2030-11-27",
            "Renewed: Lysmore Pro until 2030-12-27",
            "Renewed: Lysmore Pro until 2031-01-27",            # 12-20
            "Your Lysmore Pro subscription was cancelled",      # 01-05 refunded in full: cancelled at once
        ]
        (cancelled,) = stack.mails("Your Lysmore Pro subscription was cancelled")
        assert "your payment of 49.00 USD from 2030-12-20 was refunded to you in full" in cancelled.text()
        assert all(m.recipients == (EMAIL,) for m in stack.sink.messages if app.settings.team_email not in m.recipients)
        team = [m.subject for m in stack.sink.messages if app.settings.team_email in m.recipients]
        # The team's notes and the monitoring mails come from different threads, so each kind is in
        # order but the two interleave as they happen: compared apart.
        assert [s for s in team if not s.startswith("[lysmore ")] == [
            f"New subscriber: {EMAIL} (monthly)",
            f"Cancellation: {EMAIL} (monthly)",
            f"Refunded in full: {EMAIL} (monthly)",  # 01-05; the cancellation it made sends no second note
        ]
        (refunded,) = stack.mails("Refunded in full")
        assert f"subscription: {sub} (canceled)" in refunded.text()
        assert f"charge:       {december['id']}, 49.00 USD of 2030-12-20" in refunded.text()
        # Monitoring: one "node lost" per kill. The faults only made attempts fail and retry (not
        # reported: MONITOR_FAILURES is off), and nothing was discarded.
        assert [s for s in team if s.startswith("[lysmore ")] == [
            f"[lysmore {prefix}] node lost: {name} NodeLost" for name in ("n1", "n2", "n3")
        ]

        # The license's status through the year, as the online check answers it.
        assert states == [
            ("2030-01-15 09:00:00", "valid"),    # signed up
            ("2030-02-22 09:00:01", "expired"),  # without the February renewal
            ("2030-02-22 09:00:01", "valid"),    # with it
            ("2030-03-15 10:00:00", "valid"),    # payment failed, Stripe retries: access kept
            ("2030-05-27 09:00:01", "expired"),  # back on monthly: not the yearly license's end
            ("2030-06-20 08:59:59", "valid"),    # cancelled: valid until the period end
            ("2030-06-20 09:00:00", "revoked"),  # and revoked from it
            ("2030-06-20 09:00:00", "valid"),    # un-cancelled
            ("2031-01-27 08:59:59", "valid"),    # December's renewal
            ("2031-01-15 09:00:00", "revoked"),  # refunded in full
        ]
        # Its expiry (period end + 7 days' grace) after each change: sign-up, February, the failed
        # March renewal (past_due: kept), its retry, April, yearly, monthly, May, June..December.
        assert expiries == [
            "2030-02-22", "2030-03-22", "2030-04-22", "2030-04-22", "2030-05-22", "2031-04-27", "2030-05-27",
            "2030-06-27", "2030-07-27", "2030-08-27", "2030-09-27", "2030-10-27", "2030-11-27", "2030-12-27",
            "2031-01-27",
        ]
        assert yearly.payload["plan"] == "yearly"
        row = license_row(stack, sub)
        assert (row["plan"], row["revoke_final"], f"{row['expires_at']:%Y-%m-%d}") == ("monthly", True, "2031-01-27")
        signed = check_license(row["license"], app.public_key(), now=at(day("2031-01-15")))
        assert (signed.payload["plan"], signed.payload["seats"], signed.payload["subscription"]) == ("monthly", 1, sub)
        assert not app.hex_key_valid(app.hex_key_of(sub))
        acc = app.account(account.id)
        assert acc is not None
        assert (acc.plan, acc.subscription_id, acc.subscription_status, acc.cancel_at_period_end) == (
            "monthly", sub, "canceled", False)

        # Stripe: one customer with one subscription on the monthly price, cancelled at once by the app
        # on the day of the full refund (the comment names the charge), with one cancel request.
        (cus,) = client.v1.customers.list(params={"email": EMAIL}).data
        subs = client.v1.subscriptions.list(params={"customer": cus.id, "status": "all"}).data
        assert [(s.id, s.status, s.cancel_at_period_end, s["items"]["data"][0]["price"]["id"]) for s in subs] == [
            (sub, "canceled", False, "price_monthly")]
        (ended,) = subs
        assert (ended.canceled_at, ended.ended_at) == (day("2031-01-05"), day("2031-01-05"))
        assert ended.cancellation_details.comment == f"Cancelled by Lysmore after a full refund of charge {december['id']}"
        assert sandbox.request_count(f"/v1/subscriptions/{sub}", "DELETE") == 1
        assert len(sandbox.store.events("customer.subscription.deleted")) == 1
        assert sandbox.store.count("customer") == 1 and sandbox.store.count("subscription") == 1
        assert len(sandbox.store.events("customer.subscription.created")) == 1
        cancels = [e for e in sandbox.store.events("customer.subscription.updated")
                   if e["data"].get("previous_attributes", {}).get("cancel_at_period_end") is False]
        assert len(cancels) == 1  # the cancel sent once, though its sender was killed waiting for the answer
        invoices = sandbox.store.objects("invoice")  # none for 2031-01-20: the subscription had ended
        assert Counter(i["status"] for i in invoices) == {"paid": 14}
        assert Counter(i["billing_reason"] for i in invoices) == {
            "subscription_create": 1, "subscription_cycle": 11, "subscription_update": 2}
        assert sorted({i["amount_paid"] for i in invoices}) == [4900, 49000]
        charges = sandbox.store.objects("charge")
        assert Counter((c["status"], c["refunded"]) for c in charges) == {
            ("succeeded", False): 13, ("succeeded", True): 1, ("failed", False): 1}
        (refund,) = sandbox.store.objects("refund")
        assert (refund["charge"], refund["amount"], refund["status"]) == (december["id"], 4900, "succeeded")

        # The faults and kills happened as planned; every job finished, each rescued one by a fresh node.
        assert Counter(r.fault for r in sandbox.requests if r.fault) == {"429": 3, "500": 17, "drop": 2, "slow": 3}
        jobs = stack.jobs()
        for name in year.killed:
            assert any(f"rescued: node {name}" in e["error"] for j in jobs for e in j["errors"]), name
        # Cancelled: only the created event's grant steps, as the subscription was incomplete then
        # (the grant ran on its activation); the one still scheduled is the cancel's end, now a no-op.
        (created,) = [e["workflow_id"] for e in stack.rows("stripe_events") if e["type"] == "customer.subscription.created"]
        assert {(j["workflow_id"], j["workflow_step"]) for j in jobs if j["state"] == "cancelled"} == {
            (created, step) for step in ("hex", "license", "welcome", "notify")}
        (end_job,) = [j for j in jobs if j["state"] == "scheduled"]
        assert end_job["worker"].endswith("EndAccessWorker") and end_job["scheduled_at"] == at(day("2030-06-20"))
        assert {j["state"] for j in jobs} == {"completed", "cancelled", "scheduled"}
