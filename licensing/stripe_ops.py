"""The Stripe steps of the update worker, each idempotent: check what is done, then act with a fixed key."""

# Keys: the customer, which must exist once per account, is created with a key fixed by the account
# and by its create request, stored before the first call (lysmore-<prefix>-account<id>-customer-
# <digest>), and its id is recorded right after; other writes use lysmore-<prefix>-job<id>-<step>
# [-<what>] so every attempt of one job replays the same request, and the digest of the parameters
# is part of the key where a changed value means a new operation. The attempt is never in a key.
# What is sent is the account's wanted state read when the step runs, and the number of that state
# (``change_seq``) is in the key of every update: a job that sees A, then B, then A again sends three
# requests, never a replay of the first whose cached answer would leave Stripe on B.

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any, cast

import stripe

from engine import InvalidConfig, Job

from . import accounts
from .accounts import Account

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams, CustomerUpdateParams, SubscriptionCreateParams

    from .app import LicensingApp
    from .settings import LicensingSettings

log = logging.getLogger("licensing.stripe")

ENDED = accounts.ENDED
META_ACCOUNT = "lysmore_account"
META_INSTANCE = "lysmore_instance"


def make_stripe_client(settings: LicensingSettings) -> stripe.StripeClient:
    """A ``StripeClient`` from settings (Stripe itself, or ``stripe_api_base``), with retries set explicitly."""
    if settings.stripe_api_key is None:
        raise InvalidConfig("no Stripe key: set LYSMORE_LICENSING_STRIPE_API_KEY (or run `lysmore licensing serve`)")
    quiet_stripe_logging()
    kwargs: dict[str, Any] = {}
    if settings.stripe_api_base:
        kwargs["base_addresses"] = {"api": settings.stripe_api_base}
    return stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        max_network_retries=settings.stripe_max_network_retries,
        http_client=stripe.RequestsClient(timeout=settings.stripe_timeout),
        **kwargs,
    )


def quiet_stripe_logging() -> None:
    """Keep the SDK's DEBUG output (request and response bodies) out of every log."""
    logger = logging.getLogger("stripe")
    if logger.level < logging.INFO:
        logger.setLevel(logging.INFO)
    if stripe.log == "debug" or (stripe.log is None and os.environ.get("STRIPE_LOG") == "debug"):
        log.warning("STRIPE_LOG=debug would print request bodies; logging Stripe at info instead")
        stripe.log = "info"


def plain(obj: Any) -> dict[str, Any]:
    """An SDK object as plain dicts and lists (``StripeObject`` is not a dict in SDK 16)."""
    data: dict[str, Any] = obj.to_dict()
    return data


def digest(value: Any) -> str:
    """A short stable digest of JSON-able ``value``, for keys that change when the request changes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def job_key(app: LicensingApp, job: Job, step: str, *parts: str) -> str:
    """The idempotency key of ``step`` of ``job``: the same on every attempt of that job."""
    return "-".join([f"lysmore-{app.prefix}-job{job.id}-{step}", *parts])[:255]


def customer_key(app: LicensingApp, account_id: int, params: dict[str, Any]) -> str:
    """The key creating an account's customer: the same for every job and attempt, as the stored request is."""
    return f"lysmore-{app.prefix}-account{account_id}-customer-{digest(params)}"


def _ours(app: LicensingApp, obj: Any, account_id: int) -> bool:
    meta = obj.get("metadata") or {}
    return meta.get(META_ACCOUNT) == str(account_id) and meta.get(META_INSTANCE) == app.prefix


def _reload(app: LicensingApp, account_id: int) -> Account:
    with app.engine.connection() as c:
        acc = accounts.load(c, app.q, account_id)
    if acc is None:
        raise accounts.AccountError(f"account {account_id} vanished")
    return acc


# -- steps ----------------------------------------------------------------------------------------


def ensure_customer(app: LicensingApp, job: Job, acc: Account) -> tuple[str, str]:
    """The account's Stripe customer, created at most once; returns (customer id, what happened)."""
    if acc.stripe_customer_id:
        return acc.stripe_customer_id, "recorded"
    wanted = {"email": acc.email, "name": acc.name or "", "metadata": {META_ACCOUNT: str(acc.id), META_INSTANCE: app.prefix}}
    with app.engine.connection() as c:
        params = accounts.remember_customer_request(c, app.q, acc.id, wanted)
    # Done before by an attempt whose answer was lost? Stripe knows the customer by its metadata.
    found = plain(app.stripe.v1.customers.list(params={"email": params["email"], "limit": 100}))
    for cus in found["data"]:
        if _ours(app, cus, acc.id):
            with app.engine.connection() as c:
                accounts.record_customer(c, app.q, acc.id, cus["id"])
            log.info("account %s: adopted existing Stripe customer %s", acc.id, cus["id"])
            return _reload(app, acc.id).stripe_customer_id or cus["id"], "found"
    try:
        cus = plain(
            app.stripe.v1.customers.create(
                params=cast("CustomerCreateParams", params),
                options={"idempotency_key": customer_key(app, acc.id, params)},
            )
        )
    except stripe.InvalidRequestError:
        # Refused outright, so nothing was created: forget the request, the next job sends fresh details.
        with app.engine.connection() as c:
            accounts.forget_customer_request(c, app.q, acc.id)
        raise
    with app.engine.connection() as c:
        accounts.record_customer(c, app.q, acc.id, cus["id"])
    log.info("account %s: Stripe customer %s", acc.id, cus["id"])
    return _reload(app, acc.id).stripe_customer_id or cus["id"], "created"


def attach_payment_method(app: LicensingApp, job: Job, acc: Account, customer: str) -> tuple[str | None, str]:
    """Attach the account's payment method to its customer unless it is already; returns (pm id, what happened)."""
    pm_id = acc.payment_method
    if not pm_id:
        return None, "none"
    pm = plain(app.stripe.v1.payment_methods.retrieve(pm_id))
    if pm.get("customer") == customer:
        return pm["id"], "already"
    if pm.get("customer"):
        raise accounts.AccountError(f"payment method {pm_id} belongs to another customer")
    attached = plain(app.stripe.v1.payment_methods.attach(
        pm_id, params={"customer": customer}, options={"idempotency_key": job_key(app, job, "attach", pm_id)}
    ))
    if attached["id"] != pm_id:
        with app.engine.connection() as c:
            accounts.record_payment_method(c, app.q, acc.id, pm_id, attached["id"])
    log.info("account %s: payment method %s attached to %s", acc.id, attached["id"], customer)
    return attached["id"], "attached"


def _customer_matches(cus: Any, wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "metadata":
            have = cus.get("metadata") or {}
            if any(have.get(k) != v for k, v in value.items()):
                return False
        elif key == "invoice_settings":
            have = (cus.get("invoice_settings") or {}).get("default_payment_method")
            if have != value["default_payment_method"]:
                return False
        elif (cus.get(key) or "") != value:
            return False
    return True


def update_customer(
    app: LicensingApp, job: Job, customer: str, wanted: dict[str, Any], step: str = "customer", seq: int = 0
) -> str:
    """Bring the customer's details to ``wanted`` (change ``seq`` of the account) unless they are there already."""
    cus = plain(app.stripe.v1.customers.retrieve(customer))
    if _customer_matches(cus, wanted):
        return "already"
    app.stripe.v1.customers.update(
        customer, params=cast("CustomerUpdateParams", wanted),
        options={"idempotency_key": job_key(app, job, step, f"s{seq}", digest(wanted))},
    )
    return "updated"


def customer_details(app: LicensingApp, acc: Account, pm: str | None, plan: str | None) -> dict[str, Any]:
    """What the customer should say about the account."""
    wanted: dict[str, Any] = {
        "email": acc.email,
        "name": acc.name or "",
        "metadata": {META_ACCOUNT: str(acc.id), META_INSTANCE: app.prefix},
    }
    if plan:
        wanted["metadata"]["lysmore_plan"] = plan
    if pm:
        wanted["invoice_settings"] = {"default_payment_method": pm}
    return wanted


def _live_subscription(app: LicensingApp, acc: Account, customer: str) -> dict[str, Any] | None:
    if acc.subscription_id:
        sub = plain(app.stripe.v1.subscriptions.retrieve(acc.subscription_id))
        if sub.get("status") not in ENDED:
            return sub
    found = plain(app.stripe.v1.subscriptions.list(params={"customer": customer, "limit": 100}))
    ours = [s for s in found["data"] if _ours(app, s, acc.id) and s.get("status") not in ENDED]
    if not ours:
        return None
    sub = max(ours, key=lambda s: s.get("created") or 0)
    if sub["id"] != acc.subscription_id:
        log.info("account %s: adopted existing subscription %s", acc.id, sub["id"])
    return sub


class NotCreated(accounts.AccountError):
    """The update job found no live subscription and may not create one (a cancel or un-cancel, or an
    account held after a dispute): nothing is sent to Stripe."""


def check_may_create(app: LicensingApp, acc: Account, *, cancel: bool | None) -> None:
    """Raise ``NotCreated`` unless a job may create a subscription for ``acc``, which has none live
    in Stripe: never for a cancel or un-cancel (``cancel`` is its wish; None: a sign-up or plan change),
    and not while a dispute holds the account from subscribing again."""
    ended = f"its subscription {acc.subscription_id} has ended" if acc.subscription_id else "it has no subscription"
    if cancel is not None:
        raise NotCreated(
            f"account {acc.id}: {'cancel' if cancel else 'un-cancel'} not sent: {ended} in Stripe "
            "(a cancel or un-cancel never creates a subscription; a plan change subscribes again)"
        )
    with app.engine.connection() as c:
        hold = accounts.open_hold(c, app.q, acc.id)
    if hold is not None:
        raise NotCreated(f"account {acc.id} may not subscribe again: {accounts.hold_text(hold)}: "
                         "a person must re-allow it (LicensingApp.allow_resubscribe)")


def ensure_subscription(
    app: LicensingApp, job: Job, acc: Account, customer: str, pm: str | None, plan: str, price: str,
    sub: dict[str, Any] | None,
) -> tuple[dict[str, Any], str]:
    """Create the subscription once (``sub`` None: none is live; the caller checked it may), or bring
    the live ``sub`` to ``price`` and the wanted cancellation; returns (subscription, what happened)."""
    meta = {META_ACCOUNT: str(acc.id), META_INSTANCE: app.prefix, "lysmore_plan": plan}
    if sub is None:
        params: dict[str, Any] = {
            "customer": customer,
            "items": [{"price": price}],
            "metadata": meta,
            # A first payment that needs 3-D Secure (or fails) leaves the subscription incomplete and
            # the invoice open: the customer is mailed the link, and access starts when it is paid.
            "payment_behavior": "allow_incomplete",
        }
        if pm:
            params["default_payment_method"] = pm
        sub = plain(app.stripe.v1.subscriptions.create(
            params=cast("SubscriptionCreateParams", params),
            options={"idempotency_key": job_key(app, job, "subscription-create")},
        ))
        what = "created"
    else:
        item = sub["items"]["data"][0]
        change: dict[str, Any] = {}
        if item["price"]["id"] != price:
            change.update(items=[{"id": item["id"], "price": price}], metadata=meta)
        if bool(sub.get("cancel_at_period_end")) != acc.cancel_at_period_end:
            change["cancel_at_period_end"] = acc.cancel_at_period_end
        if not change:
            what = "already"
        else:
            sub = plain(app.stripe.v1.subscriptions.update(
                sub["id"], params=change,  # type: ignore[arg-type]
                options={"idempotency_key": job_key(
                    app, job, "subscription-update", f"s{acc.change_seq}", digest(change)
                )},
            ))
            what = "updated"
    with app.engine.connection() as c:
        accounts.record_subscription(c, app.q, acc.id, sub["id"], sub.get("status"), plan)
    log.info("account %s: subscription %s %s (%s)", acc.id, sub["id"], what, sub.get("status"))
    return sub, what


# -- the two shapes of the update job -------------------------------------------------------------


def apply_plan(app: LicensingApp, job: Job, account_id: int, *, cancel: bool | None = None) -> dict[str, Any]:
    """Bring Stripe to the account's wanted state as it is now (not as it was when the job was
    inserted): attach the payment method, update the customer, create or update the subscription.

    ``cancel`` (a cancel or un-cancel job, else None): such a job only updates a live subscription.
    Whether one is live is read from Stripe before anything is sent; with none, ``NotCreated`` is
    raised unless the job may create one (``check_may_create``)."""
    steps: dict[str, str] = {}
    first = _reload(app, account_id)
    if cancel is not None and not first.stripe_customer_id:
        check_may_create(app, first, cancel=cancel)  # no customer, so no subscription: nothing to send
    customer, steps["customer"] = ensure_customer(app, job, first)
    acc = _reload(app, account_id)  # every later step works from this one reading
    seq, plan = acc.change_seq, acc.plan
    with app.engine.connection() as c:
        price = accounts.plan_price(c, app.q, plan) if plan else None
    if plan is None or price is None:
        raise accounts.AccountError(f"unknown plan {plan!r}")
    live = _live_subscription(app, acc, customer)
    if live is None:
        check_may_create(app, acc, cancel=cancel)
    pm, steps["attach"] = attach_payment_method(app, job, acc, customer)
    steps["update"] = update_customer(app, job, customer, customer_details(app, acc, pm, plan), seq=seq)
    sub, steps["subscription"] = ensure_subscription(app, job, acc, customer, pm, plan, price, live)
    with app.engine.connection() as c:
        accounts.record_synced(c, app.q, account_id, seq)
    return {
        "account": account_id, "customer": customer, "subscription": sub["id"], "status": sub.get("status"),
        "plan": plan, "seq": seq, "steps": steps,
    }


def apply_info(app: LicensingApp, job: Job, account_id: int) -> dict[str, Any]:
    """Send the account's details as they are now to the customer; nothing to do while it has no customer yet."""
    acc = _reload(app, account_id)
    if not acc.stripe_customer_id:
        return {"account": account_id, "steps": {"info": "no customer yet"}}
    wanted: dict[str, Any] = {"email": acc.email, "name": acc.name or ""}
    what = update_customer(app, job, acc.stripe_customer_id, wanted, step="info", seq=acc.change_seq)
    return {"account": account_id, "customer": acc.stripe_customer_id, "seq": acc.change_seq, "steps": {"info": what}}
