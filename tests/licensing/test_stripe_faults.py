"""Every Stripe step of the update job survives a 429, a 500 and a lost answer without a duplicate."""

from __future__ import annotations

from licensing.sandbox import StripeSandbox

from .stack import licensing_stack

# POSTs of the four steps, in the order the job makes them; each gets a 429, a 500, then a drop.
STEPS = [
    ("create customer", "/v1/customers"),
    ("attach payment method", "/v1/payment_methods/"),
    ("update customer", "/v1/customers/"),
    ("create subscription", "/v1/subscriptions"),
]


def test_429_500_and_dropped_answers_on_every_step_make_one_of_each(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    for _, path in STEPS:
        for kind in ("429", "500", "drop"):
            sandbox.faults.add(kind, path_prefix=path, method="POST")
    # The SDK retries nothing here, so the job sees every fault and retries on its own.
    with licensing_stack(database_url, prefix, sandbox, max_network_retries=0) as stack:
        app = stack.app
        account, job = app.sign_up(email="dee@example.com", name="Dee", plan="monthly",
                                   payment_method=stack.payment_method())
        done = stack.wait_completed(job.id, 30)
        steps = stack.wait_workflows_done(1)
        assert sandbox.wait_for_webhooks(10)

        assert sandbox.faults.pending() == []  # every fault fired
        errors = [e["error"] for e in done["errors"]]
        # Twelve failures, then the success; an attempt that met the account's lock held by the
        # sign-up's own webhook workflow snoozed (no error, one attempt more), which a busy machine
        # makes happen now and then.
        snoozed = done["meta"].get("snoozed", 0)
        assert len(errors) == 12 and done["attempt"] == 13 + snoozed, (done["attempt"], snoozed, errors)
        assert sum("RateLimitError" in e for e in errors) == 4, errors
        assert sum("APIError" in e for e in errors) == 4
        assert sum("APIConnectionError" in e for e in errors) == 4
        # Work done by a dropped request was found again, not done twice (the last attempt's view).
        assert done["result"]["steps"] == {
            "customer": "recorded", "attach": "already", "update": "already", "subscription": "already",
        }

        assert sandbox.store.count("customer") == 1
        assert sandbox.store.count("subscription") == 1
        assert len(sandbox.store.events("payment_method.attached")) == 1
        assert len(sandbox.store.events("customer.subscription.created")) == 1
        sub = sandbox.store.objects("subscription")[0]
        assert app.account(account.id).subscription_id == sub["id"]  # type: ignore[union-attr]

        # One key per create: every attempt sent the same idempotency key.
        for label, path in (("create customer", "/v1/customers"), ("create subscription", "/v1/subscriptions")):
            keys = {r.idempotency_key for r in sandbox.requests if r.method == "POST" and r.path == path}
            assert len(keys) == 1 and None not in keys, label
        assert keys == {f"lysmore-{prefix}-job{job.id}-subscription-create"}

        assert all(s["state"] == "completed" for s in steps)
        assert len(stack.rows("hex_keys")) == 1 and len(stack.rows("licenses")) == 1
        assert len(stack.mails("Welcome")) == 1 and len(stack.mails("New subscriber")) == 1
