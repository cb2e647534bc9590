"""Subscriptions: billing periods, the charge outcome of test cards, item changes, cancellation, ``/v1/subscriptions``."""

from __future__ import annotations

import calendar
import copy
import datetime as dt
from typing import Any

from ..errors import invalid_request, resource_missing, unknown_parameter
from ..params import (
    Params,
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_str,
    check_known,
    merge_metadata,
    opt_str,
    require,
)
from .billing import Billing
from .catalog import Catalog
from .core import PAGING, Core, Obj, RequestContext, matching, new_id
from .events import EventLog
from .payment_methods import PaymentMethods

#: How long a subscription may wait ``incomplete`` for its first payment before it expires, like Stripe's.
INCOMPLETE_EXPIRES_AFTER = 23 * 3600
#: Subscription statuses that ``GET /v1/subscriptions`` hides unless asked for.
ENDED_STATUSES = ("canceled", "incomplete_expired")
_STATUS_FILTERS = (
    "active",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
    "all",
)
_CREATE = (
    "customer",
    "items",
    "default_payment_method",
    "metadata",
    "cancel_at_period_end",
    "trial_period_days",
    "payment_behavior",
    "proration_behavior",
    "collection_method",
    "description",
    "off_session",
)
_UPDATE = (
    "items",
    "default_payment_method",
    "metadata",
    "cancel_at_period_end",
    "payment_behavior",
    "proration_behavior",
    "description",
    "off_session",
    "cancellation_details",
)
_PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")


def add_interval(timestamp: int, interval: str, count: int = 1) -> int:
    """``timestamp`` moved forward by ``count`` billing intervals, calendar-aware like Stripe."""
    if interval == "day":
        return timestamp + 86400 * count
    if interval == "week":
        return timestamp + 7 * 86400 * count
    months = count if interval == "month" else 12 * count
    start = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def _cycle(price: Obj) -> tuple[str, int]:
    """A price's billing cycle: its recurring interval and interval count."""
    return price["recurring"]["interval"], price["recurring"]["interval_count"]


def _check_same_cycle(prices: list[Obj]) -> None:
    if len({_cycle(p) for p in prices}) > 1:
        raise invalid_request(
            "The price specified has a different billing interval than the other prices. "
            "All prices on a subscription must have the same recurring.interval and "
            "recurring.interval_count.",
            param="items",
        )
    if len({p["currency"] for p in prices}) > 1:
        raise invalid_request("All prices on a subscription must have the same currency.", param="items")


def _item_spec(raw: Any, index: int) -> dict[str, Any]:
    spec = as_dict(raw, f"items[{index}]")
    for key in spec:
        if key not in ("id", "price", "quantity", "metadata", "deleted", "clear_usage"):
            raise unknown_parameter(f"items[{index}][{key}]")
    return spec


def _sync_period(sub: Obj) -> None:
    """Mirror the first item's period on the subscription (where API versions before 2025-03-31 kept it)."""
    item = sub["items"]["data"][0]
    sub["current_period_start"] = item["current_period_start"]
    sub["current_period_end"] = item["current_period_end"]


def _cancellation_details(current: Obj, raw: Any) -> Obj:
    """``current`` with the ``cancellation_details[comment|feedback]`` a request sent applied."""
    merged = dict(current)
    for key, value in as_dict(raw, "cancellation_details").items():
        if key not in ("comment", "feedback"):
            raise unknown_parameter(f"cancellation_details[{key}]")
        merged[key] = as_str(value, f"cancellation_details[{key}]") or None
    return merged


def _new_item(sub_id: str, price: Obj, quantity: int, metadata: dict[str, str], start: int, end: int) -> Obj:
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "created": start,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": metadata,
        "price": copy.deepcopy(price),
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


class Subscriptions:
    """Subscriptions of customers to prices, and what charging their payment method makes of them."""

    def __init__(
        self, core: Core, events: EventLog, catalog: Catalog, payment_methods: PaymentMethods, billing: Billing
    ) -> None:
        self._core = core
        self._events = events
        self._catalog = catalog
        self._payment_methods = payment_methods
        self._billing = billing

    def _item_terms(self, spec: dict[str, Any], index: int, *, refuse_negative: bool) -> tuple[Obj, int, dict[str, str]]:
        """The price, quantity and metadata of a new item from ``items[index]``."""
        price = self._catalog.active_price(require(spec, "price"), f"items[{index}][price]")
        quantity = as_int(spec.get("quantity", 1), f"items[{index}][quantity]")
        if refuse_negative and quantity < 0:
            raise invalid_request("Invalid quantity.", param=f"items[{index}][quantity]")
        return price, quantity, merge_metadata({}, spec.get("metadata", {}))

    def _first_status(self, pm: Obj | None, behavior: str, trialing: bool) -> str:
        """The status a new subscription starts in, or the error ``error_if_incomplete`` asks for."""
        if trialing:
            return "trialing"
        if behavior == "default_incomplete":
            return "incomplete"
        outcome = self._billing.outcome(pm)
        if outcome == "succeeded":
            return "active"
        if behavior == "error_if_incomplete" or (behavior == "allow_incomplete" and outcome == "no_payment_method"):
            self._billing.refuse(outcome)
        return "incomplete"

    def cancel_now(self, sub: Obj, ctx: RequestContext | None, *, reason: str, at: int | None = None) -> None:
        """End ``sub`` at once (or at ``at``) and record ``customer.subscription.deleted``."""
        ended = self._core.time_for(sub["customer"]) if at is None else at
        sub["status"] = "canceled"
        sub["canceled_at"] = ended
        sub["ended_at"] = ended
        sub["cancel_at"] = None
        sub["cancel_at_period_end"] = False
        sub["cancellation_details"] = dict(sub["cancellation_details"], reason=reason)
        self._events.emit("customer.subscription.deleted", sub, ctx, created=ended)

    def _expire(self, sub: Obj, at: int) -> None:
        """End an ``incomplete`` subscription whose first invoice was not paid in time; its invoice is voided."""
        before = copy.deepcopy(sub)
        sub["status"] = "incomplete_expired"
        sub["ended_at"] = at
        invoice = self._core.tables["invoice"].get(sub["latest_invoice"] or "")
        if invoice is not None and invoice["status"] == "open":
            self._billing.void(invoice, at)
        self._events.emit_changes("customer.subscription.updated", sub, before, None, created=at)

    def renew(self, sub: Obj, at: int) -> None:
        """Start ``sub``'s next period at its period end ``at`` and bill it (run by a test clock)."""
        before = copy.deepcopy(sub)
        end = add_interval(at, *_cycle(sub["items"]["data"][0]["price"]))
        for item in sub["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = at, end
        _sync_period(sub)
        if sub["status"] == "trialing":
            sub["status"] = "active"
        invoice = self._billing.create_invoice(sub, None, reason="subscription_cycle", at=at)
        outcome = self._billing.collect(invoice, None, self._billing.charge_method(sub), at=at)
        self._billing.settle(sub, invoice, outcome, at)
        self._events.emit_changes("customer.subscription.updated", sub, before, None, created=at)

    def due(self, sub: Obj) -> int | None:
        """When a test clock must next act on ``sub`` (its expiry, cancellation or period end), if ever."""
        if sub["status"] == "incomplete":
            return int(sub["created"]) + INCOMPLETE_EXPIRES_AFTER
        if sub["status"] in ENDED_STATUSES or sub["status"] == "unpaid":
            return None
        if sub["cancel_at"] is not None:
            return int(sub["cancel_at"])
        return int(sub["items"]["data"][0]["current_period_end"])

    def act(self, sub: Obj, at: int) -> None:
        """Do what is due on ``sub`` at ``at``: expire it (first payment never made), end it (cancel at period end) or renew it."""
        if sub["status"] == "incomplete":
            self._expire(sub, at)
        elif sub["cancel_at"] is not None and sub["cancel_at"] <= at:
            self.cancel_now(sub, None, reason="cancellation_requested", at=int(sub["cancel_at"]))
        else:
            self.renew(sub, at)

    def create_subscription(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/subscriptions."""
        with self._core.lock:
            check_known(params, _CREATE)
            customer = self._core.get("customer", as_str(require(params, "customer"), "customer"), param="customer")
            specs = as_list(require(params, "items"), "items")
            if not specs:
                raise invalid_request("Missing required param: items.", param="items", code="parameter_missing")
            prices: list[tuple[Obj, int, dict[str, str]]] = []
            for index, raw in enumerate(specs):
                spec = _item_spec(raw, index)
                if "id" in spec or "deleted" in spec:
                    raise unknown_parameter(f"items[{index}][{'id' if 'id' in spec else 'deleted'}]")
                prices.append(self._item_terms(spec, index, refuse_negative=True))
            _check_same_cycle([p for p, _, _ in prices])
            behavior = as_str(params.get("payment_behavior", "allow_incomplete"), "payment_behavior")
            if behavior not in _PAYMENT_BEHAVIORS:
                raise invalid_request(f"Invalid payment_behavior: {behavior}", param="payment_behavior")
            pm_id = opt_str(params, "default_payment_method")
            pm = self._payment_methods.attached_to(customer, pm_id, "default_payment_method") if pm_id else None
            charge_pm = pm
            if charge_pm is None:
                default = customer["invoice_settings"]["default_payment_method"]
                charge_pm = self._core.tables["payment_method"].get(default) if default else None
            trial_days = as_int(params["trial_period_days"], "trial_period_days") if "trial_period_days" in params else 0
            if trial_days < 0:
                raise invalid_request("Invalid trial_period_days.", param="trial_period_days")
            status = self._first_status(charge_pm, behavior, trial_days > 0)
            metadata = merge_metadata({}, params.get("metadata", {}))
            cancel_at_period_end = as_bool(params.get("cancel_at_period_end", False), "cancel_at_period_end")

            start = self._core.time_for(customer["id"])
            if trial_days:
                period_end = start + trial_days * 86400
            else:
                interval, count = _cycle(prices[0][0])
                period_end = add_interval(start, interval, count)
            sub_id = new_id("sub")
            items = [_new_item(sub_id, price, qty, md, start, period_end) for price, qty, md in prices]
            sub = self._core.put(
                "subscription",
                {
                    "id": sub_id,
                    "object": "subscription",
                    "application": None,
                    "automatic_tax": {"enabled": False, "liability": None},
                    "billing_cycle_anchor": period_end if trial_days else start,
                    "cancel_at": period_end if cancel_at_period_end else None,
                    "cancel_at_period_end": cancel_at_period_end,
                    "canceled_at": start if cancel_at_period_end else None,
                    "cancellation_details": {
                        "comment": None,
                        "feedback": None,
                        "reason": "cancellation_requested" if cancel_at_period_end else None,
                    },
                    "collection_method": "charge_automatically",
                    "created": start,
                    "currency": str(prices[0][0]["currency"]),
                    "customer": customer["id"],
                    "days_until_due": None,
                    "default_payment_method": pm_id,
                    "description": opt_str(params, "description"),
                    "discounts": [],
                    "ended_at": None,
                    "items": {
                        "object": "list",
                        "data": items,
                        "has_more": False,
                        "total_count": len(items),
                        "url": f"/v1/subscription_items?subscription={sub_id}",
                    },
                    "latest_invoice": None,
                    "livemode": False,
                    "metadata": metadata,
                    "pause_collection": None,
                    "pending_update": None,
                    "start_date": start,
                    "status": status,
                    "test_clock": customer.get("test_clock"),
                    "trial_end": period_end if trial_days else None,
                    "trial_start": start if trial_days else None,
                },
            )
            _sync_period(sub)
            self._events.emit("customer.subscription.created", sub, ctx)
            invoice = self._billing.create_invoice(sub, ctx, reason="subscription_create", at=start)
            if behavior == "default_incomplete":
                self._billing.prepare_payment(invoice, charge_pm, at=start)
            else:
                self._billing.collect(invoice, ctx, charge_pm, at=start)
            return self._core.answer(sub, params)

    def retrieve_subscription(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/subscriptions/{id} (canceled ones stay retrievable)."""
        return self._core.retrieve("subscription", id, params)

    def _changed_items(self, sub: Obj, raw: Any) -> tuple[list[Obj], int | None]:
        """The items after an ``items[]`` update, and the new billing cycle anchor if the interval changed."""
        new_items = copy.deepcopy(sub["items"]["data"])
        by_id = {item["id"]: item for item in new_items}
        period_start = new_items[0]["current_period_start"]
        period_end = new_items[0]["current_period_end"]
        for index, raw_item in enumerate(as_list(raw, "items")):
            spec = _item_spec(raw_item, index)
            if "id" not in spec:
                price, quantity, metadata = self._item_terms(spec, index, refuse_negative=False)
                new_items.append(_new_item(sub["id"], price, quantity, metadata, period_start, period_end))
                continue
            item_id = as_str(spec["id"], f"items[{index}][id]")
            item = by_id.get(item_id)
            if item is None:
                raise invalid_request(
                    f"Subscription item {item_id} does not belong to this subscription.",
                    param=f"items[{index}][id]",
                )
            if as_bool(spec.get("deleted", False), f"items[{index}][deleted]"):
                new_items = [i for i in new_items if i["id"] != item_id]
                continue
            if "price" in spec:
                item["price"] = copy.deepcopy(self._catalog.active_price(spec["price"], f"items[{index}][price]"))
            if "quantity" in spec:
                item["quantity"] = as_int(spec["quantity"], f"items[{index}][quantity]")
            if "metadata" in spec:
                item["metadata"] = merge_metadata(item["metadata"], spec["metadata"])
        if not new_items:
            raise invalid_request("A subscription must have at least one active plan.", param="items")
        _check_same_cycle([i["price"] for i in new_items])
        interval_changed = {_cycle(i["price"]) for i in new_items} != {_cycle(i["price"]) for i in sub["items"]["data"]}
        if not interval_changed or sub["status"] == "trialing":
            return new_items, None
        # Stripe resets the billing cycle when the interval changes.
        anchor = self._core.time_for(sub["customer"])
        end = add_interval(anchor, *_cycle(new_items[0]["price"]))
        for item in new_items:
            item["current_period_start"], item["current_period_end"] = anchor, end
        return new_items, anchor

    def update_subscription(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/subscriptions/{id}: items and price changes, cancel_at_period_end, default card."""
        with self._core.lock:
            check_known(params, _UPDATE)
            sub = self._core.get("subscription", id)
            if sub["status"] in ENDED_STATUSES and set(params) - {"metadata", "cancellation_details", "expand"}:
                raise invalid_request("A canceled subscription can only update its cancellation_details and metadata.")
            customer = self._core.tables["customer"].get(sub["customer"])
            before = copy.deepcopy(sub)
            new_items: list[Obj] = copy.deepcopy(sub["items"]["data"])
            anchor: int | None = None
            if "items" in params:
                new_items, anchor = self._changed_items(sub, params["items"])
            behavior = as_str(params.get("payment_behavior", "allow_incomplete"), "payment_behavior")
            if behavior not in _PAYMENT_BEHAVIORS:
                raise invalid_request(f"Invalid payment_behavior: {behavior}", param="payment_behavior")
            if anchor is not None and behavior == "error_if_incomplete":
                # The new cycle is billed at once: refuse before changing anything if it cannot be paid.
                pm_for_check = self._billing.charge_method(sub)
                if "default_payment_method" in params and customer is not None and opt_str(params, "default_payment_method"):
                    pm_for_check = self._payment_methods.attached_to(
                        customer, as_str(params["default_payment_method"], "default_payment_method"), "default_payment_method"
                    )
                outcome = self._billing.outcome(pm_for_check)
                if outcome != "succeeded":
                    self._billing.refuse(outcome)
            changes: dict[str, Any] = {}
            if anchor is not None:
                changes["billing_cycle_anchor"] = anchor
            if "default_payment_method" in params:
                pm_id = opt_str(params, "default_payment_method")
                if pm_id and customer is not None:
                    self._payment_methods.attached_to(customer, pm_id, "default_payment_method")
                changes["default_payment_method"] = pm_id
            if "metadata" in params:
                changes["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
            if "description" in params:
                changes["description"] = opt_str(params, "description")
            if "cancellation_details" in params:
                changes["cancellation_details"] = _cancellation_details(sub["cancellation_details"], params["cancellation_details"])
            if "cancel_at_period_end" in params:
                flag = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
                reasons: dict[str, Any] = dict(changes.get("cancellation_details") or sub["cancellation_details"])
                if flag:
                    changes["cancel_at"] = new_items[0]["current_period_end"]
                    changes["canceled_at"] = self._core.time_for(sub["customer"])
                    reasons["reason"] = "cancellation_requested"
                else:
                    changes["cancel_at"] = None
                    changes["canceled_at"] = None
                    reasons["reason"] = None
                changes["cancel_at_period_end"] = flag
                changes["cancellation_details"] = reasons
            sub.update(changes)
            sub["items"]["data"] = new_items
            sub["items"]["total_count"] = len(new_items)
            if sub["cancel_at_period_end"]:
                sub["cancel_at"] = new_items[0]["current_period_end"]
            _sync_period(sub)
            self._events.emit_changes("customer.subscription.updated", sub, before, ctx)
            if anchor is not None and sub["status"] not in ("trialing", "incomplete"):
                invoice = self._billing.create_invoice(sub, ctx, reason="subscription_update", at=anchor)
                self._billing.pay_for_subscription(invoice, ctx, self._billing.charge_method(sub), anchor)
            return self._core.answer(sub, params)

    def cancel_subscription(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/subscriptions/{id}: cancel at once (a second cancel is a 404, like Stripe)."""
        with self._core.lock:
            check_known(params, ("cancellation_details", "invoice_now", "prorate"))
            sub = self._core.get("subscription", id)
            if sub["status"] in ENDED_STATUSES:
                raise resource_missing("subscription", id)
            for name in ("invoice_now", "prorate"):
                if name in params:
                    as_bool(params[name], name)
            sub["cancellation_details"] = _cancellation_details(
                sub["cancellation_details"], params.get("cancellation_details", {})
            )
            self.cancel_now(sub, ctx, reason="cancellation_requested")
            return self._core.answer(sub, params)

    def list_subscriptions(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/subscriptions (canceled ones only with ``status=canceled|ended|all``)."""
        with self._core.lock:
            check_known(params, ("customer", "price", "status", *PAGING))
            found = matching(list(self._core.tables["subscription"].values()), params, "customer")
            if "price" in params:
                price = as_str(params["price"], "price")
                found = [s for s in found if any(i["price"]["id"] == price for i in s["items"]["data"])]
            status = as_str(params.get("status", ""), "status")
            if status and status not in _STATUS_FILTERS:
                raise invalid_request(f"Invalid status: {status}", param="status")
            if status == "ended":
                found = [s for s in found if s["status"] in ENDED_STATUSES]
            elif status and status != "all":
                found = [s for s in found if s["status"] == status]
            elif not status:
                found = [s for s in found if s["status"] not in ENDED_STATUSES]
            return self._core.paginate(found, params, "/v1/subscriptions")
