"""Plan and detail changes are never lost: the last request wins, in order, under faults and repeated clicks."""

from __future__ import annotations

from licensing.sandbox import StripeSandbox

from .stack import Stack, licensing_stack

# Every Stripe call an update job makes after sign-up, each hit by a 429, a 500 and a lost answer.
CALLS = [
    ("GET", "/v1/payment_methods/"),
    ("GET", "/v1/customers/"),
    ("POST", "/v1/customers/"),
    ("GET", "/v1/subscriptions/"),
    ("POST", "/v1/subscriptions/"),
]


def _fault_every_call(sandbox: StripeSandbox) -> None:
    for method, path in CALLS:
        for kind in ("429", "500", "drop"):
            sandbox.faults.add(kind, path_prefix=path, method=method)


def _signed_up(stack: Stack, email: str) -> int:
    account, job = stack.app.sign_up(email=email, name="Ann", plan="monthly", payment_method=stack.payment_method())
    stack.wait_completed(job.id)
    assert stack.sandbox.wait_for_webhooks(10)
    stack.wait_workflows_done(2)  # the subscription's and its first invoice's
    stack.sandbox.hold_webhooks()  # their workflows read Stripe too: the faults here are for the update jobs
    return account.id


def _price(sandbox: StripeSandbox) -> str:
    (sub,) = sandbox.store.objects("subscription")
    return str(sub["items"]["data"][0]["price"]["id"])


def test_a_to_b_to_a_within_120_s_under_faults_ends_on_a(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, max_network_retries=0) as stack:
        app = stack.app
        account_id = _signed_up(stack, "ann@example.com")
        first = next(j for j in stack.jobs() if j["worker"].endswith("UpdateWorker"))

        _fault_every_call(sandbox)
        to_b = app.change_plan(account_id, "yearly")
        assert len(stack.wait_completed(to_b.id, 60)["errors"]) == 3 * len(CALLS)
        assert sandbox.faults.pending() == [] and _price(sandbox) == "price_yearly"

        _fault_every_call(sandbox)
        to_a = app.change_plan(account_id, "monthly")  # sign-up's plan again, within 120 s: a new job all the same
        assert not to_a.conflict and to_a.id not in (first["id"], to_b.id)
        assert to_a.args["seq"] > to_b.args["seq"] > first["args"]["seq"]
        click = app.change_plan(account_id, "monthly")  # a repeated click changes nothing: the same job answers
        assert click.conflict and click.id == to_a.id
        done = stack.wait_completed(to_a.id, 60)
        assert len(done["errors"]) == 3 * len(CALLS) and sandbox.faults.pending() == []
        moves = [r for r in sandbox.requests if r.method == "POST" and r.path.startswith("/v1/subscriptions/")]
        keys = {str(r.idempotency_key) for r in moves}  # retries of one move replay its key
        assert {k.split("-subscription-update-")[0] for k in keys} == {
            f"lysmore-{prefix}-job{to_b.id}", f"lysmore-{prefix}-job{to_a.id}"
        } and len(keys) == 2
        assert _price(sandbox) == "price_monthly"
        acc = app.account(account_id)
        assert acc is not None
        assert (acc.plan, acc.subscription_plan, acc.synced_seq) == ("monthly", "monthly", acc.change_seq)
        assert sandbox.store.count("subscription") == 1 and sandbox.store.count("customer") == 1
        (cus,) = sandbox.store.objects("customer")
        assert cus["metadata"]["lysmore_plan"] == "monthly"


def test_jobs_that_run_late_apply_the_latest_wish_not_their_own(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app = stack.app
        account, job = app.sign_up(email="bea@example.com", plan="monthly", payment_method=stack.payment_method())
        jobs = [job, app.change_plan(account.id, "yearly"), app.change_plan(account.id, "monthly")]
        infos = [app.update_info(account.id, {"email": e}) for e in ("bea@example.org", "bea@example.com")]
        assert len({j.id for j in jobs + infos}) == 5
        app.start()
        results = [stack.wait_completed(j.id)["result"] for j in jobs + infos]

        # Whichever ran first sent the latest wish; the ones after it found it there already.
        assert {r.get("plan") for r in results[:3]} == {"monthly"}
        assert _price(sandbox) == "price_monthly"
        (cus,) = sandbox.store.objects("customer")
        assert cus["email"] == "bea@example.com"
        subscription_updates = [r for r in sandbox.requests if r.method == "POST" and r.path.startswith("/v1/subscriptions/")]
        assert subscription_updates == []  # never moved to yearly and back: the wish was monthly by then
        acc = app.account(account.id)
        assert acc is not None and acc.synced_seq == acc.change_seq == 5


def test_cancel_at_period_end_and_back_is_sent_as_wished(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, max_network_retries=0) as stack:
        app = stack.app
        account_id = _signed_up(stack, "cat@example.com")
        _fault_every_call(sandbox)
        cancel = app.set_cancel_at_period_end(account_id, True)
        resume = app.set_cancel_at_period_end(account_id, False)
        again = app.set_cancel_at_period_end(account_id, False)
        assert again.conflict and again.id == resume.id
        stack.wait_completed(cancel.id, 60)
        stack.wait_completed(resume.id, 60)
        (sub,) = sandbox.store.objects("subscription")
        assert sub["cancel_at_period_end"] is False
        acc = app.account(account_id)
        assert acc is not None and acc.cancel_at_period_end is False and acc.synced_seq == acc.change_seq


def test_details_a_to_b_to_a_within_120_s_under_faults_end_on_a(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, max_network_retries=0) as stack:
        app = stack.app
        account_id = _signed_up(stack, "dot@example.com")
        infos = []
        for email in ("dot@example.org", "dot@example.com"):
            sandbox.faults.add("500", path_prefix="/v1/customers/", method="GET")
            for kind in ("429", "500", "drop"):
                sandbox.faults.add(kind, path_prefix="/v1/customers/", method="POST")
            infos.append(app.update_info(account_id, {"email": email}))
            assert len(stack.wait_completed(infos[-1].id, 60)["errors"]) == 4
            (cus,) = sandbox.store.objects("customer")
            assert cus["email"] == email
        assert infos[1].args["seq"] > infos[0].args["seq"] and not infos[1].conflict
        again = app.update_info(account_id, {"email": "dot@example.com"})  # a repeated click
        assert again.conflict and again.id == infos[1].id
        assert sandbox.faults.pending() == []
