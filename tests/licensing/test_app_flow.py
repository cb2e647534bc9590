"""End to end on the real stack: sign-up, Stripe (sandbox), signed webhooks, workflows, keys, licenses, mail."""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

import pytest

from licensing.keys import hex_key_hash, verify_license
from licensing.sandbox import StripeSandbox
from licensing.workers import UpdateWorker

from ..helpers import wait_for
from .stack import SMTP_USER, Stack, licensing_stack

HEX_KEY = re.compile(r"lys_hex_[a-z2-7]{40}")


def _finished_update(stack: Stack, job_id: int) -> dict[str, Any]:
    return stack.wait_completed(job_id, 20)


def _assert_no_secret(stack: Stack, text: str, where: str) -> None:
    for name, value in stack.secret.items():
        assert value not in text, f"{name} leaked into {where}"
    auth = base64.b64encode(f"\0{SMTP_USER}\0{stack.secret['smtp_password']}".encode()).decode()
    assert auth not in text, f"the SMTP login leaked into {where}"


def test_sign_up_to_welcome_mail_exactly_once(
    database_url: str, prefix: str, sandbox: StripeSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with licensing_stack(database_url, prefix, sandbox) as stack:
        app = stack.app
        account, job = app.sign_up(
            email="ada@example.com", name="Ada", plan="monthly", payment_method=stack.payment_method()
        )
        assert job.args == {"id": account.id, "plan": "monthly", "seq": 1}
        again = app.engine.insert(UpdateWorker.new({"id": account.id, "plan": "monthly", "seq": 1}, meta=app.job_meta()))
        assert again.conflict and again.id == job.id  # unique for 120 s

        done = _finished_update(stack, job.id)
        assert done["result"]["steps"] == {
            "customer": "created", "attach": "attached", "update": "updated", "subscription": "created",
        }
        steps = stack.wait_workflows_done(2)  # the new subscription's, and its first invoice.paid's
        created = next(e["workflow_id"] for e in stack.rows("stripe_events") if e["type"] == "customer.subscription.created")
        assert {s["workflow_step"]: s["state"] for s in steps if s["workflow_id"] == created} == dict.fromkeys(
            ["hex", "license", "welcome", "notify"], "completed"
        )
        assert sandbox.wait_for_webhooks(10)

        # Stripe: one customer, one subscription, the card attached once.
        assert sandbox.store.count("customer") == 1
        assert sandbox.store.count("subscription") == 1
        assert len(sandbox.store.events("payment_method.attached")) == 1
        sub = sandbox.store.objects("subscription")[0]
        acc = app.account(account.id)
        assert acc is not None and acc.subscription_id == sub["id"] and acc.subscription_status == "active"
        assert acc.stripe_customer_id == sub["customer"]

        # Exactly one of each.
        keys, licenses = stack.rows("hex_keys"), stack.rows("licenses")
        assert len(keys) == 1 and len(licenses) == 1
        welcome, notes = stack.mails("Welcome"), stack.mails("New subscriber")
        assert len(welcome) == 1 and len(notes) == 1
        assert len(stack.rows("mails")) == 2

        # The welcome mail carries the key and a license the public key verifies offline.
        mail = welcome[0]
        assert mail.recipients == ("ada@example.com",)
        found = HEX_KEY.findall(mail.text())
        assert found and hex_key_hash(found[0]) == keys[0]["key_hash"] and app.hex_key_valid(found[0])
        license_text = mail.attachments()["lysmore.license"]
        assert license_text == licenses[0]["license"]
        payload = verify_license(license_text, app.public_key())
        assert payload["subscription"] == sub["id"] and payload["customer"] == "ada@example.com"
        assert payload["plan"] == "monthly" and payload["product"] == "lysmore-pro"
        assert notes[0].recipients == (app.settings.team_email,)
        assert stack.sink.logins and all(stack.sink.logins)  # type: ignore[attr-defined]

        # No secret in job rows (args, meta, errors, results), app tables, mails or logs.
        _assert_no_secret(stack, json.dumps(stack.jobs(), default=str), "job rows")
        for table in ("accounts", "stripe_events", "hex_keys", "licenses", "mails"):
            _assert_no_secret(stack, json.dumps(stack.rows(table), default=str), table)
        for m in stack.sink.messages:
            _assert_no_secret(stack, m.message.as_string(), "a mail")
        _assert_no_secret(stack, caplog.text, "the logs")
        assert "ada@example.com" in caplog.text  # the logs were captured at all
        assert found[0] not in caplog.text  # nor the customer's key
        assert stack.secret["stripe_api_key"] not in repr(app.settings)


def test_plan_change_and_info_update_touch_the_same_subscription(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox) as stack:
        app = stack.app
        account, job = app.sign_up(email="bo@example.com", plan="monthly", payment_method=stack.payment_method())
        _finished_update(stack, job.id)
        stack.wait_workflows_done(1)

        change = app.change_plan(account.id, "yearly")
        result = _finished_update(stack, change.id)["result"]
        assert result["steps"] == {"customer": "recorded", "attach": "already", "update": "updated", "subscription": "updated"}
        info = app.update_info(account.id, {"email": "bo@example.org", "name": "Bo"})
        assert info.args == {"id": account.id, "info": {"email": "bo@example.org", "name": "Bo"}, "seq": 3}
        assert _finished_update(stack, info.id)["result"]["steps"] == {"info": "updated"}
        same = app.change_plan(account.id, "yearly")  # within 120 s: the unique job answers
        assert same.conflict and same.id == change.id
        spec = UpdateWorker.new({"id": account.id, "plan": "yearly", "seq": 2}, meta=app.job_meta(), unique=False)  # type: ignore[arg-type]
        again = app.engine.insert(spec)  # another job id: every step finds its work done
        assert _finished_update(stack, again.id)["result"]["steps"] == {
            "customer": "recorded", "attach": "already", "update": "already", "subscription": "already",
        }

        assert sandbox.store.count("subscription") == 1 and sandbox.store.count("customer") == 1
        sub = sandbox.store.objects("subscription")[0]
        assert sub["items"]["data"][0]["price"]["id"] == "price_yearly"
        cus = sandbox.store.objects("customer")[0]
        assert (cus["email"], cus["name"]) == ("bo@example.org", "Bo")
        assert cus["invoice_settings"]["default_payment_method"] == sub["default_payment_method"]
        assert app.account(account.id).plan == "yearly"  # type: ignore[union-attr]
        # A plan change is a subscription update, not a new subscriber: still one key, one license.
        assert sandbox.wait_for_webhooks(10)
        assert len(stack.rows("hex_keys")) == 1 and len(stack.rows("licenses")) == 1


def test_cancellation_then_deletion_revoke_key_and_license(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox) as stack:
        app = stack.app
        _, job = app.sign_up(email="cy@example.com", plan="yearly", payment_method=stack.payment_method())
        sub_id = _finished_update(stack, job.id)["result"]["subscription"]
        stack.wait_workflows_done(1)
        key = app.hex_key_of(sub_id)
        assert app.hex_key_valid(key)

        stack.client.v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})
        assert sandbox.wait_for_webhooks(10)
        stack.wait_workflows_done(3)  # the subscription's, its first invoice's, the cancellation's
        farewell = stack.sink.wait_for(lambda ms: any(m.subject.startswith("Your Lysmore") for m in ms))
        assert "ends on" in [m for m in farewell if m.subject.startswith("Your Lysmore")][0].text()
        revoked = stack.rows("hex_keys")[0]
        assert revoked["revoked_at"] is not None and app.hex_key_valid(key)  # valid until the period ends

        stack.client.v1.subscriptions.cancel(sub_id)
        assert sandbox.wait_for_webhooks(10)
        steps = stack.wait_workflows_done(4)
        assert all(s["state"] == "completed" for s in steps)
        assert not app.hex_key_valid(key)
        lic = stack.rows("licenses")[0]
        assert lic["revoked_at"] is not None and lic["ends_at"] <= revoked["ends_at"]
        assert len(stack.mails("Your Lysmore")) == 2
        assert len(stack.mails("Cancellation")) == 1 and len(stack.mails("Subscription ended")) == 1
        assert len(stack.mails("Welcome")) == 1
        events = {e["type"]: e["workflow_id"] for e in stack.rows("stripe_events")}
        assert set(events) >= {"customer.subscription.created", "customer.subscription.deleted"}


def test_a_declined_card_cancels_the_update_job_without_retrying(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox) as stack:
        _, job = stack.app.sign_up(email="gus@example.com", plan="monthly",
                                   payment_method=stack.payment_method("tok_chargeDeclined"))
        row = wait_for(
            lambda: next((j for j in stack.jobs() if j["id"] == job.id and j["state"] == "cancelled"), {}),
            20, "the update job cancelled",
        )
        assert row["attempt"] == 1 and "card refused: card_declined" in row["errors"][-1]["error"]
        assert sandbox.store.count("customer") == 1 and sandbox.store.count("subscription") == 0
        assert stack.jobs()[0]["id"] == job.id and len(stack.jobs()) == 1  # no workflow started
