"""After a subscription ended: a cancel or un-cancel is refused and never creates a subscription (not
even when it ends between the request and the job), a plan change subscribes again after an ordinary
end or a full refund, and after a dispute only once a person has allowed it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from psycopg import sql

from licensing.accounts import AccountError
from licensing.sandbox import StripeSandbox
from licensing.sandbox.store import add_interval
from licensing.workers import UpdateWorker

from ..helpers import wait_for
from .nodes import node_env
from .stack import Stack, licensing_stack, select
from .test_lifecycle import DAY, DONE, START, advance, license_row, settle, sign_up


def finished(stack: Stack, job_id: int) -> dict[str, Any]:
    """Wait until the job ``job_id`` is completed, cancelled or discarded; returns its row."""
    return wait_for(lambda: next((j for j in stack.jobs() if j["id"] == job_id and j["state"] in DONE), {}),
                    30, f"job {job_id} finished")


def account_row(stack: Stack, account_id: int) -> dict[str, Any]:
    (row,) = stack.rows("accounts", "id = %s", [account_id])
    return row


def creates(stack: Stack) -> int:
    """How many subscription create requests reached Stripe."""
    return stack.sandbox.request_count("/v1/subscriptions", "POST")


def live_subscriptions(stack: Stack) -> list[dict[str, Any]]:
    return [s for s in stack.sandbox.store.objects("subscription") if s["status"] not in ("canceled", "incomplete_expired")]


def assert_refused_writing_nothing(stack: Stack, account_id: int, match: str, request: Any) -> None:
    """``request()`` raises ``AccountError`` matching ``match``; the account row and the jobs are as before."""
    row, jobs = account_row(stack, account_id), stack.jobs()
    with pytest.raises(AccountError, match=match):
        request()
    assert account_row(stack, account_id) == row and stack.jobs() == jobs


def test_cancel_and_un_cancel_after_an_ordinary_end_are_refused_and_a_plan_change_subscribes_again(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app = stack.app
        # Before the sign-up's job made a subscription there is none to cancel; an unknown account is named.
        pending, _ = app.sign_up(email="pen@example.com", plan="monthly", payment_method="pm_card_visa")
        assert_refused_writing_nothing(stack, pending.id, rf"^account {pending.id} has no subscription to cancel$",
                                       lambda: app.set_cancel_at_period_end(pending.id, True))
        with pytest.raises(AccountError, match=r"^no account 999999$"):
            app.set_cancel_at_period_end(999999, False)

        account_id, sub, clock = sign_up(stack, "end@example.com")
        assert clock is not None
        stack.wait_completed(app.set_cancel_at_period_end(account_id, True).id)
        settle(stack)
        end = add_interval(START, "month")
        advance(stack, clock, end + DAY)  # the customer's cancellation takes effect: the subscription ends
        assert stack.client.v1.subscriptions.retrieve(sub).status == "canceled"
        acc = app.account(account_id)
        assert acc is not None and acc.subscription_status == "canceled" and acc.cancel_at_period_end

        for cancel, what in ((False, "un-cancel"), (True, "cancel")):
            assert_refused_writing_nothing(
                stack, account_id,
                rf"^account {account_id} cannot {what}: its subscription {sub} has ended \(canceled\); "
                "a plan change subscribes again$",
                lambda cancel=cancel: app.set_cancel_at_period_end(account_id, cancel),  # type: ignore[misc]
            )
        ours = [s for s in sandbox.store.objects("subscription") if s["customer"] == acc.stripe_customer_id]
        assert [s["id"] for s in ours] == [sub] and creates(stack) == 2  # the pending sign-up's and this one's

        # A plan change subscribes again, to the same plan too: a new subscription, started un-cancelled.
        before = acc.plan_seq
        again = app.change_plan(account_id, "monthly")
        assert again.args["seq"] > before
        result = stack.wait_completed(again.id)["result"]
        assert result["steps"]["subscription"] == "created" and result["subscription"] != sub
        settle(stack)
        (new,) = [s for s in live_subscriptions(stack) if s["customer"] == acc.stripe_customer_id]
        assert new["id"] == result["subscription"] and new["status"] == "active" and not new["cancel_at_period_end"]
        acc = app.account(account_id)
        assert acc is not None and (acc.subscription_id, acc.cancel_at_period_end) == (new["id"], False)
        assert license_row(stack, new["id"])["revoked_at"] is None and creates(stack) == 3
        assert len([m for m in stack.mails("Welcome") if m.recipients == ("end@example.com",)]) == 2
        # A full refund of the old subscription's first charge, now: its events are newer than the
        # new subscription's, but they are about the old one, which stays history.
        (old_charge,) = [ch for ch in sandbox.store.objects("charge") if ch["customer"] == acc.stripe_customer_id
                         and ch["created"] < new["created"]]
        stack.client.v1.refunds.create(params={"charge": old_charge["id"]})
        settle(stack)
        acc = app.account(account_id)
        assert acc is not None and (acc.subscription_id, acc.subscription_status) == (new["id"], "active")
        assert license_row(stack, new["id"])["revoked_at"] is None
        assert stack.client.v1.subscriptions.retrieve(new["id"]).status == "active"
        # ... which can be cancelled as any other.
        done = stack.wait_completed(app.set_cancel_at_period_end(account_id, True).id)
        assert done["result"]["steps"]["subscription"] == "updated"
        assert stack.client.v1.subscriptions.retrieve(new["id"]).cancel_at_period_end is True


def test_a_subscription_that_ends_between_the_request_and_the_job_is_not_created_again(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app, client = stack.app, stack.client
        account_id, sub, _ = sign_up(stack, "rac@example.com", clock=False)
        sandbox.hold_webhooks()  # the account keeps saying "active": the request is accepted
        jobs = []
        for cancel in (True, False):
            # The job meets the account's lock until the subscription has ended in Stripe (the customer
            # cancelling in the portal, say): then it runs.
            with app.account_lock(account_id) as held:
                assert held
                job = app.set_cancel_at_period_end(account_id, cancel)
                assert job.args["cancel"] is cancel
                if cancel:
                    client.v1.subscriptions.cancel(sub)
            jobs.append(finished(stack, job.id))
        for row, what in zip(jobs, ("cancel", "un-cancel"), strict=True):
            assert row["state"] == "cancelled"
            assert (f"account {account_id}: {what} not sent: its subscription {sub} has ended in Stripe "
                    "(a cancel or un-cancel never creates a subscription") in str(row["errors"])
        assert creates(stack) == 1 and sandbox.store.count("subscription") == 1
        assert sandbox.request_count(f"/v1/subscriptions/{sub}", "POST") == 0  # nothing sent to the ended one

        sandbox.release_webhooks()
        settle(stack)
        acc = app.account(account_id)
        assert acc is not None and acc.subscription_status == "canceled"
        assert_refused_writing_nothing(stack, account_id, rf"^account {account_id} cannot un-cancel: ",
                                       lambda: app.set_cancel_at_period_end(account_id, False))


def test_a_plan_change_after_a_dispute_waits_for_a_person_to_allow_it(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app, client = stack.app, stack.client
        account_id, sub, _ = sign_up(stack, "dsp@example.com", clock=False)
        (charge,) = client.v1.charges.list().data
        sandbox.open_dispute(charge.id)
        settle(stack)
        assert client.v1.subscriptions.retrieve(sub).status == "canceled"
        (hold,) = stack.rows("charge_ends")
        assert (hold["account_id"], hold["subscription_id"], hold["charge_id"], hold["reason"], hold["holds"],
                hold["allowed_at"]) == (account_id, sub, charge.id, "dispute", True, None)
        assert "subscribing:  held" in next(m for m in stack.sink.messages if m.subject.startswith("Dispute:")).text()

        refused = (rf"^account {account_id} may not subscribe again: its subscription {sub} ended after a dispute "
                   rf"on charge {charge.id}: a person must re-allow it \(LicensingApp.allow_resubscribe\)$")
        for plan in ("yearly", "monthly"):
            assert_refused_writing_nothing(stack, account_id, refused,
                                           lambda plan=plan: app.change_plan(account_id, plan))  # type: ignore[misc]
        # A plan change accepted just before the dispute landed: its job does not subscribe either.
        acc = app.account(account_id)
        assert acc is not None
        late = app.engine.insert(UpdateWorker.new({"id": account_id, "plan": "yearly", "seq": acc.plan_seq + 1},
                                                  meta=app.job_meta()))
        row = finished(stack, late.id)
        assert row["state"] == "cancelled" and f"ended after a dispute on charge {charge.id}" in str(row["errors"])
        assert creates(stack) == 1

        # A person allows it, with the command (once; a second time says there is nothing to allow).
        def allow() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "lysmore", "licensing", "allow-resubscribe", str(account_id)],
                                  env=node_env(stack), capture_output=True, text=True, timeout=60)

        done = allow()
        assert (done.returncode, done.stdout) == (
            0, f"account {account_id} may subscribe again (it was held after {charge.id})\n"), done.stderr
        again = allow()
        assert again.returncode == 2 and f"account {account_id} is not held from subscribing again" in again.stderr
        assert stack.secret["stripe_api_key"] not in done.stdout + done.stderr + again.stderr
        with pytest.raises(AccountError, match=rf"^account {account_id} is not held from subscribing again"):
            app.allow_resubscribe(account_id)
        with pytest.raises(AccountError, match=r"^no account 999999$"):
            app.allow_resubscribe(999999)
        (audit,) = select(app.engine.database_url, sql.SQL(
            "SELECT * FROM {}.lysmore_audit WHERE action = 'allow_resubscribe'").format(sql.Identifier(prefix)))
        assert audit["targets"] == [account_id] and audit["detail"]["charges"] == [charge.id]
        # The dispute's cancel step run again (a replay) does not put the hold back.
        (cancel_job,) = [j for j in stack.jobs() if j["worker"].endswith("ChargeCancelWorker")]
        assert app.engine.retry_job(cancel_job["id"])
        assert stack.wait_completed(cancel_job["id"])["result"]["cancel"] == "already canceled"

        changed = app.change_plan(account_id, "yearly")
        result = stack.wait_completed(changed.id)["result"]
        assert result["steps"]["subscription"] == "created"
        settle(stack)
        assert creates(stack) == 2
        (new,) = live_subscriptions(stack)
        assert new["id"] == result["subscription"] != sub and new["items"]["data"][0]["price"]["id"] == "price_yearly"
        assert license_row(stack, new["id"])["revoked_at"] is None
        assert license_row(stack, sub)["revoke_final"]  # the disputed subscription's access stays revoked


def test_a_plan_change_after_a_full_refund_subscribes_again(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app, client = stack.app, stack.client
        account_id, sub, _ = sign_up(stack, "rfd@example.com", clock=False)
        (charge,) = client.v1.charges.list().data
        client.v1.refunds.create(params={"charge": charge.id})
        settle(stack)
        (ended,) = stack.rows("charge_ends")
        assert (ended["subscription_id"], ended["charge_id"], ended["reason"], ended["holds"]) == (
            sub, charge.id, "refund", False)
        assert_refused_writing_nothing(stack, account_id, rf"^account {account_id} cannot cancel: ",
                                       lambda: app.set_cancel_at_period_end(account_id, True))
        result = stack.wait_completed(app.change_plan(account_id, "monthly").id)["result"]
        assert result["steps"]["subscription"] == "created" and creates(stack) == 2
        settle(stack)
        (new,) = live_subscriptions(stack)
        assert new["id"] == result["subscription"] != sub
