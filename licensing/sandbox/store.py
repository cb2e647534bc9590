"""The sandbox's in-memory Stripe objects, the operations on them, and the events they record."""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import fnmatch
import logging
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import cards
from .errors import (
    StripeApiError,
    card_error,
    invalid_request,
    resource_missing,
    unknown_parameter,
)
from .params import (
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

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: The API version stamped on events when the request named none.
DEFAULT_API_VERSION = "2026-10-28.endive"

_ALPHABET = string.ascii_letters + string.digits

#: Subscription statuses that ``GET /v1/subscriptions`` hides unless asked for.
_ENDED_STATUSES = ("canceled", "incomplete_expired")
_SUBSCRIPTION_STATUSES = (
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


def new_id(prefix: str, length: int = 24) -> str:
    """A random Stripe-looking id such as ``cus_X1y2...``."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


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


def diff_previous(before: Any, after: Any) -> Any:
    """Stripe's ``previous_attributes``: the old values of what changed, recursing into hashes."""
    if isinstance(before, dict) and isinstance(after, dict):
        changed: dict[str, Any] = {}
        for key in before.keys() | after.keys():
            old, new = before.get(key), after.get(key)
            if old != new:
                changed[key] = diff_previous(old, new) if isinstance(old, dict) and isinstance(new, dict) else copy.deepcopy(old)
        return changed
    return copy.deepcopy(before)


@dataclass(frozen=True)
class RequestContext:
    """What an operation knows about the API request that caused it (for events' ``request``)."""

    request_id: str | None = None
    idempotency_key: str | None = None
    api_version: str | None = None


@dataclass(frozen=True)
class WebhookTarget:
    """Where one event is to be delivered: an endpoint's id, URL and signing secret."""

    endpoint_id: str
    url: str
    secret: str = field(repr=False)


EventListener = Callable[[Obj, list[WebhookTarget]], None]


class SandboxStore:
    """Thread-safe in-memory state of the sandbox: customers, cards, prices, subscriptions, events."""

    def __init__(self, *, seed: bool = True) -> None:
        self._lock = threading.RLock()
        self._listeners: list[EventListener] = []
        self._seed = seed
        self.reset()

    # ------------------------------------------------------------------ plumbing

    def reset(self) -> None:
        """Forget every object and event, then re-create the seed products and prices."""
        with self._lock:
            self._seq = 0
            self._order: dict[str, int] = {}
            self._objects: dict[str, dict[str, Obj]] = {
                kind: {}
                for kind in (
                    "customer",
                    "payment_method",
                    "product",
                    "price",
                    "subscription",
                    "event",
                    "webhook_endpoint",
                )
            }
            self._deleted_customers: dict[str, Obj] = {}
            self._webhook_secrets: dict[str, str] = {}
            if self._seed:
                self._seed_catalog()

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event, targets)`` for every event recorded from now on."""
        with self._lock:
            self._listeners.append(listener)

    def _now(self) -> int:
        return int(time.time())

    def _put(self, kind: str, obj: Obj) -> Obj:
        self._seq += 1
        self._order[obj["id"]] = self._seq
        self._objects[kind][obj["id"]] = obj
        return obj

    def _get(self, kind: str, ident: str, *, label: str, param: str = "id") -> Obj:
        obj = self._objects[kind].get(ident)
        if obj is None:
            raise resource_missing(label, ident, param=param)
        return obj

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` (``customer``, ``subscription``, ``event``, ...) exist."""
        with self._lock:
            return len(self._objects[kind])

    def objects(self, kind: str) -> list[Obj]:
        """Copies of every object of ``kind``, oldest first."""
        with self._lock:
            found = sorted(self._objects[kind].values(), key=lambda o: self._order[o["id"]])
            return copy.deepcopy(found)

    def get(self, kind: str, ident: str) -> Obj | None:
        """A copy of one object, or ``None``."""
        with self._lock:
            obj = self._objects[kind].get(ident)
            return copy.deepcopy(obj) if obj is not None else None

    def events(self, type_: str | None = None) -> list[Obj]:
        """Copies of the recorded events (optionally of one type), oldest first."""
        return [e for e in self.objects("event") if type_ is None or e["type"] == type_]

    def _paginate(self, objs: Iterable[Obj], params: Params, url: str) -> Obj:
        limit = as_int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise invalid_request(
                "Invalid limit: must be between 1 and 100", param="limit"
            )
        ordered = sorted(
            objs, key=lambda o: (o.get("created", 0), self._order[o["id"]]), reverse=True
        )
        ids = [o["id"] for o in ordered]
        after = opt_str(params, "starting_after")
        before = opt_str(params, "ending_before")
        if after and before:
            raise invalid_request(
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
            )
        if after:
            if after not in self._order:
                raise resource_missing("object", after, param="starting_after")
            window = ordered[ids.index(after) + 1 :] if after in ids else []
            page, has_more = window[:limit], len(window) > limit
        elif before:
            if before not in self._order:
                raise resource_missing("object", before, param="ending_before")
            window = ordered[: ids.index(before)] if before in ids else []
            page, has_more = window[-limit:], len(window) > limit
        else:
            page, has_more = ordered[:limit], len(ordered) > limit
        result = {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": url}
        self._expand(result, params)
        return result

    def _expand(self, obj: Obj, params: Params) -> Obj:
        """Replace expandable ids named by ``expand[]`` with the objects they point to."""
        paths = as_list(params.get("expand", []), "expand")
        for path in paths:
            self._expand_path(obj, as_str(path, "expand").split("."), path)
        return obj

    def _expand_path(self, node: Any, parts: list[str], whole: str) -> None:
        if isinstance(node, list):
            for item in node:
                self._expand_path(item, parts, whole)
            return
        if not isinstance(node, dict) or not parts:
            return
        key, rest = parts[0], parts[1:]
        if key not in node:
            raise invalid_request(
                f"This property cannot be expanded ({whole}).", param="expand"
            )
        value = node[key]
        if isinstance(value, str):
            found = self._lookup_any(value)
            if found is None:
                if rest:
                    return
                raise invalid_request(
                    f"This property cannot be expanded ({whole}).", param="expand"
                )
            node[key] = value = copy.deepcopy(found)
        if rest:
            self._expand_path(value, rest, whole)

    def _lookup_any(self, ident: str) -> Obj | None:
        for objs in self._objects.values():
            if ident in objs:
                return objs[ident]
        return self._deleted_customers.get(ident)

    def _emit(
        self,
        type_: str,
        obj: Obj,
        ctx: RequestContext | None,
        previous: Mapping[str, Any] | None = None,
    ) -> Obj:
        ctx = ctx or RequestContext()
        targets = [
            WebhookTarget(ep["id"], ep["url"], self._webhook_secrets[ep["id"]])
            for ep in self._objects["webhook_endpoint"].values()
            if ep["status"] == "enabled"
            and any(fnmatch.fnmatchcase(type_, pat) for pat in ep["enabled_events"])
        ]
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(dict(previous))
        event = self._put(
            "event",
            {
                "id": new_id("evt"),
                "object": "event",
                "api_version": ctx.api_version or DEFAULT_API_VERSION,
                "created": self._now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": len(targets),
                "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
                "type": type_,
            },
        )
        log.debug("sandbox event %s %s", event["id"], type_)
        snapshot = copy.deepcopy(event)
        for listener in self._listeners:
            try:
                listener(snapshot, targets)
            except Exception:
                log.exception("sandbox event listener failed for %s", event["id"])
        return event

    def webhook_delivered(self, event_id: str) -> None:
        """Count one successful delivery of ``event_id`` off its ``pending_webhooks``."""
        with self._lock:
            event = self._objects["event"].get(event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    # ------------------------------------------------------------------ catalog

    def _seed_catalog(self) -> None:
        self.add_product("prod_lysmore_pro", name="Lysmore Pro", description="Lysmore Pro license")
        self.add_price(
            "price_monthly",
            product="prod_lysmore_pro",
            unit_amount=4900,
            interval="month",
            lookup_key="pro_monthly",
            nickname="Pro monthly",
        )
        self.add_price(
            "price_yearly",
            product="prod_lysmore_pro",
            unit_amount=49000,
            interval="year",
            lookup_key="pro_yearly",
            nickname="Pro yearly",
        )

    def add_product(self, product_id: str, *, name: str, description: str | None = None) -> Obj:
        """Create a product directly (no API request, no event)."""
        with self._lock:
            now = self._now()
            return copy.deepcopy(
                self._put(
                    "product",
                    {
                        "id": product_id,
                        "object": "product",
                        "active": True,
                        "created": now,
                        "default_price": None,
                        "description": description,
                        "images": [],
                        "livemode": False,
                        "marketing_features": [],
                        "metadata": {},
                        "name": name,
                        "package_dimensions": None,
                        "shippable": None,
                        "statement_descriptor": None,
                        "tax_code": None,
                        "type": "service",
                        "unit_label": None,
                        "updated": now,
                        "url": None,
                    },
                )
            )

    def add_price(
        self,
        price_id: str,
        *,
        product: str,
        unit_amount: int,
        interval: str = "month",
        currency: str = "usd",
        interval_count: int = 1,
        lookup_key: str | None = None,
        nickname: str | None = None,
        active: bool = True,
    ) -> Obj:
        """Create a recurring price directly (no API request, no event)."""
        with self._lock:
            prod = self._objects["product"].get(product)
            if prod is None:
                raise KeyError(f"no product {product}")
            price = self._put(
                "price",
                {
                    "id": price_id,
                    "object": "price",
                    "active": active,
                    "billing_scheme": "per_unit",
                    "created": self._now(),
                    "currency": currency,
                    "custom_unit_amount": None,
                    "livemode": False,
                    "lookup_key": lookup_key,
                    "metadata": {},
                    "nickname": nickname,
                    "product": product,
                    "recurring": {
                        "interval": interval,
                        "interval_count": interval_count,
                        "meter": None,
                        "trial_period_days": None,
                        "usage_type": "licensed",
                    },
                    "tax_behavior": "unspecified",
                    "tiers_mode": None,
                    "transform_quantity": None,
                    "type": "recurring",
                    "unit_amount": unit_amount,
                    "unit_amount_decimal": str(unit_amount),
                },
            )
            if prod["default_price"] is None:
                prod["default_price"] = price_id
            return copy.deepcopy(price)

    def retrieve_product(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/products/{id}."""
        with self._lock:
            check_known(params, ())
            return self._expand(copy.deepcopy(self._get("product", id, label="product")), params)

    def list_products(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/products."""
        with self._lock:
            check_known(params, ("active", "ids", "limit", "starting_after", "ending_before"))
            found = list(self._objects["product"].values())
            if "active" in params:
                active = as_bool(params["active"], "active")
                found = [p for p in found if p["active"] == active]
            if "ids" in params:
                ids = set(as_list(params["ids"], "ids"))
                found = [p for p in found if p["id"] in ids]
            return self._paginate(found, params, "/v1/products")

    def retrieve_price(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/prices/{id}."""
        with self._lock:
            check_known(params, ())
            return self._expand(copy.deepcopy(self._get("price", id, label="price")), params)

    def list_prices(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/prices."""
        with self._lock:
            check_known(
                params,
                ("active", "currency", "lookup_keys", "product", "type", "limit", "starting_after", "ending_before"),
            )
            found = list(self._objects["price"].values())
            if "active" in params:
                active = as_bool(params["active"], "active")
                found = [p for p in found if p["active"] == active]
            for name in ("currency", "product", "type"):
                if name in params:
                    wanted = as_str(params[name], name)
                    found = [p for p in found if p[name] == wanted]
            if "lookup_keys" in params:
                keys = set(as_list(params["lookup_keys"], "lookup_keys"))
                found = [p for p in found if p["lookup_key"] in keys]
            return self._paginate(found, params, "/v1/prices")

    # ------------------------------------------------------------------ customers

    _CUSTOMER_FIELDS = ("address", "description", "email", "invoice_settings", "metadata", "name", "phone")

    def _live_customer(self, ident: str, *, param: str = "id") -> Obj:
        return self._get("customer", ident, label="customer", param=param)

    def _invoice_settings_update(self, customer: Obj | None, raw: Any, pending_pm: Obj | None) -> dict[str, Any]:
        settings = as_dict(raw, "invoice_settings")
        for key in settings:
            if key not in ("default_payment_method", "footer"):
                raise unknown_parameter(f"invoice_settings[{key}]")
        result: dict[str, Any] = {}
        if "footer" in settings:
            result["footer"] = as_str(settings["footer"], "invoice_settings[footer]") or None
        if "default_payment_method" in settings:
            pm_id = as_str(settings["default_payment_method"], "invoice_settings[default_payment_method]")
            if pm_id:
                attached = pending_pm is not None and pending_pm["id"] == pm_id
                pm = self._objects["payment_method"].get(pm_id)
                owner = customer["id"] if customer is not None else None
                if not attached and (pm is None or owner is None or pm["customer"] != owner):
                    raise invalid_request(
                        f"No such PaymentMethod: '{pm_id}'; It's possible this PaymentMethod exists on "
                        "one of your connected accounts, or it isn't attached to this customer.",
                        param="invoice_settings[default_payment_method]",
                        code="resource_missing",
                    )
            result["default_payment_method"] = pm_id or None
        return result

    @staticmethod
    def _address(raw: Any, name: str) -> dict[str, Any] | None:
        if raw == "":
            return None
        given = as_dict(raw, name)
        keys = ("city", "country", "line1", "line2", "postal_code", "state")
        for key in given:
            if key not in keys:
                raise unknown_parameter(f"{name}[{key}]")
        return {k: given.get(k) or None for k in keys}

    def create_customer(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/customers."""
        with self._lock:
            check_known(params, (*self._CUSTOMER_FIELDS, "payment_method"))
            pm_param = opt_str(params, "payment_method")
            pending = self._prepare_attach(pm_param, param="payment_method") if pm_param else None
            settings = {"custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None}
            if "invoice_settings" in params:
                update = self._invoice_settings_update(None, params["invoice_settings"], pending)
                settings.update(update)
            metadata = merge_metadata({}, params.get("metadata", {}))
            address = self._address(params["address"], "address") if "address" in params else None
            customer = self._put(
                "customer",
                {
                    "id": new_id("cus", 14),
                    "object": "customer",
                    "address": address,
                    "balance": 0,
                    "created": self._now(),
                    "currency": None,
                    "default_source": None,
                    "delinquent": False,
                    "description": opt_str(params, "description"),
                    "discount": None,
                    "email": opt_str(params, "email"),
                    "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
                    "invoice_settings": settings,
                    "livemode": False,
                    "metadata": metadata,
                    "name": opt_str(params, "name"),
                    "next_invoice_sequence": 1,
                    "phone": opt_str(params, "phone"),
                    "preferred_locales": [],
                    "shipping": None,
                    "tax_exempt": "none",
                    "test_clock": None,
                },
            )
            self._emit("customer.created", customer, ctx)
            if pending is not None:
                self._commit_attach(pending, customer, ctx)
            return self._expand(copy.deepcopy(customer), params)

    def retrieve_customer(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/customers/{id} (a deleted customer answers with its ``deleted`` stub)."""
        with self._lock:
            check_known(params, ())
            if id in self._deleted_customers:
                return copy.deepcopy(self._deleted_customers[id])
            return self._expand(copy.deepcopy(self._live_customer(id)), params)

    def update_customer(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/customers/{id}."""
        with self._lock:
            check_known(params, self._CUSTOMER_FIELDS)
            customer = self._live_customer(id)
            before = copy.deepcopy(customer)
            changes: dict[str, Any] = {}
            for name in ("description", "email", "name", "phone"):
                if name in params:
                    changes[name] = opt_str(params, name)
            if "metadata" in params:
                changes["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
            if "address" in params:
                changes["address"] = self._address(params["address"], "address")
            if "invoice_settings" in params:
                settings = dict(customer["invoice_settings"])
                settings.update(self._invoice_settings_update(customer, params["invoice_settings"], None))
                changes["invoice_settings"] = settings
            customer.update(changes)
            previous = diff_previous(before, customer)
            if previous:
                self._emit("customer.updated", customer, ctx, previous)
            return self._expand(copy.deepcopy(customer), params)

    def list_customers(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/customers."""
        with self._lock:
            check_known(params, ("email", "limit", "starting_after", "ending_before"))
            found = list(self._objects["customer"].values())
            if "email" in params:
                email = as_str(params["email"], "email")
                found = [c for c in found if c["email"] == email]
            return self._paginate(found, params, "/v1/customers")

    def delete_customer(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/customers/{id}; its live subscriptions are canceled, like Stripe does."""
        with self._lock:
            check_known(params, ())
            customer = self._live_customer(id)
            for sub in list(self._objects["subscription"].values()):
                if sub["customer"] == id and sub["status"] not in _ENDED_STATUSES:
                    self._cancel_now(sub, ctx, reason="cancellation_requested")
            del self._objects["customer"][id]
            stub = {"id": id, "object": "customer", "deleted": True}
            self._deleted_customers[id] = stub
            self._emit("customer.deleted", customer, ctx)
            return copy.deepcopy(stub)

    # ------------------------------------------------------------------ payment methods

    def _new_card_pm(self, card: cards.CardProfile, *, exp_month: int = 12, exp_year: int | None = None) -> Obj:
        return {
            "id": new_id("pm"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")},
                "email": None,
                "name": None,
                "phone": None,
                "tax_id": None,
            },
            "card": {
                "brand": card.brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": card.country,
                "display_brand": card.brand,
                "exp_month": exp_month,
                "exp_year": exp_year or dt.date.today().year + 3,
                "fingerprint": "fp" + card.last4 + card.brand[:4],
                "funding": card.funding,
                "generated_from": None,
                "last4": card.last4,
                "networks": {"available": [card.brand], "preferred": None},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": self._now(),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }

    @staticmethod
    def _profile_of(pm: Obj) -> cards.CardProfile:
        card = pm.get("card") or {}
        for profile in cards.NUMBERS.values():
            if profile.last4 == card.get("last4") and profile.brand == card.get("brand"):
                return profile
        return cards.VISA

    def _billing_details(self, raw: Any, current: Obj) -> Obj:
        given = as_dict(raw, "billing_details")
        merged = copy.deepcopy(current)
        for key, value in given.items():
            if key == "address":
                merged["address"] = self._address(value, "billing_details[address]") or {
                    k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")
                }
            elif key in ("email", "name", "phone"):
                merged[key] = as_str(value, f"billing_details[{key}]") or None
            else:
                raise unknown_parameter(f"billing_details[{key}]")
        return merged

    def create_payment_method(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/payment_methods (type=card, from a test token or a test card number)."""
        with self._lock:
            check_known(params, ("type", "card", "billing_details", "metadata", "allow_redisplay"))
            kind = as_str(require(params, "type"), "type")
            if kind != "card":
                raise invalid_request(
                    f"The sandbox only supports payment methods of type card, not {kind}.", param="type"
                )
            card_params = as_dict(require(params, "card"), "card")
            for key in card_params:
                if key not in ("token", "number", "exp_month", "exp_year", "cvc"):
                    raise unknown_parameter(f"card[{key}]")
            exp_month, exp_year = 12, None
            if "token" in card_params:
                token = as_str(card_params["token"], "card[token]")
                profile = cards.TOKENS.get(token)
                if profile is None:
                    raise resource_missing("token", token, param="card[token]")
            else:
                number = as_str(require(card_params, "number"), "card[number]").replace(" ", "")
                profile = cards.NUMBERS.get(number)
                if profile is None:
                    raise card_error("Your card number is incorrect.", code="incorrect_number", param="card[number]")
                exp_month = as_int(require(card_params, "exp_month"), "card[exp_month]")
                exp_year = as_int(require(card_params, "exp_year"), "card[exp_year]")
                if exp_year < 100:
                    exp_year += 2000
                if not 1 <= exp_month <= 12:
                    raise card_error("Your card's expiration month is invalid.", code="invalid_expiry_month", param="card[exp_month]")
                today = dt.date.today()
                if (exp_year, exp_month) < (today.year, today.month):
                    raise card_error("Your card's expiration year is invalid.", code="invalid_expiry_year", param="card[exp_year]")
            pm = self._new_card_pm(profile, exp_month=exp_month, exp_year=exp_year)
            if "billing_details" in params:
                pm["billing_details"] = self._billing_details(params["billing_details"], pm["billing_details"])
            pm["metadata"] = merge_metadata({}, params.get("metadata", {}))
            if "allow_redisplay" in params:
                pm["allow_redisplay"] = as_str(params["allow_redisplay"], "allow_redisplay")
            self._put("payment_method", pm)
            return self._expand(copy.deepcopy(pm), params)

    def retrieve_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/payment_methods/{id}; magic test ids such as ``pm_card_visa`` answer a template."""
        with self._lock:
            check_known(params, ())
            if id in cards.MAGIC_PAYMENT_METHODS:
                template = self._new_card_pm(cards.MAGIC_PAYMENT_METHODS[id])
                template["id"] = id
                return template
            pm = self._get("payment_method", id, label="PaymentMethod")
            return self._expand(copy.deepcopy(pm), params)

    def update_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_methods/{id} (metadata and billing details)."""
        with self._lock:
            check_known(params, ("metadata", "billing_details", "allow_redisplay"))
            pm = self._get("payment_method", id, label="PaymentMethod")
            before = copy.deepcopy(pm)
            if "billing_details" in params:
                pm["billing_details"] = self._billing_details(params["billing_details"], pm["billing_details"])
            if "metadata" in params:
                pm["metadata"] = merge_metadata(pm["metadata"], params["metadata"])
            if "allow_redisplay" in params:
                pm["allow_redisplay"] = as_str(params["allow_redisplay"], "allow_redisplay")
            previous = diff_previous(before, pm)
            if previous:
                self._emit("payment_method.updated", pm, ctx, previous)
            return self._expand(copy.deepcopy(pm), params)

    def _prepare_attach(self, pm_id: str, *, param: str) -> Obj:
        """Validate attaching ``pm_id``; returns the payment method to attach (new for magic ids)."""
        if pm_id in cards.MAGIC_PAYMENT_METHODS:
            profile = cards.MAGIC_PAYMENT_METHODS[pm_id]
            pm = self._new_card_pm(profile)
        else:
            pm = self._get("payment_method", pm_id, label="PaymentMethod", param=param)
            if pm["customer"] is not None:
                raise invalid_request(
                    "The payment method you provided has already been attached to a customer.",
                    param=param,
                )
            profile = self._profile_of(pm)
        if profile.decline_on_attach:
            raise card_error("Your card was declined.", code="card_declined", decline_code="generic_decline")
        return pm

    def _commit_attach(self, pm: Obj, customer: Obj, ctx: RequestContext | None) -> None:
        if pm["id"] not in self._objects["payment_method"]:
            self._put("payment_method", pm)
        pm["customer"] = customer["id"]
        self._emit("payment_method.attached", pm, ctx, {"customer": None})

    def attach_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_methods/{id}/attach."""
        with self._lock:
            check_known(params, ("customer",))
            customer = self._live_customer(as_str(require(params, "customer"), "customer"), param="customer")
            existing = self._objects["payment_method"].get(id)
            if existing is not None and existing["customer"] == customer["id"]:
                return self._expand(copy.deepcopy(existing), params)
            pm = self._prepare_attach(id, param="payment_method")
            self._commit_attach(pm, customer, ctx)
            return self._expand(copy.deepcopy(pm), params)

    def detach_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_methods/{id}/detach (clears it as the customer's default, too)."""
        with self._lock:
            check_known(params, ())
            pm = self._get("payment_method", id, label="PaymentMethod")
            owner = pm["customer"]
            if owner is None:
                raise invalid_request(
                    "The payment method you provided is not attached to a customer so detachment is impossible."
                )
            pm["customer"] = None
            self._emit("payment_method.detached", pm, ctx, {"customer": owner})
            customer = self._objects["customer"].get(owner)
            if customer is not None and customer["invoice_settings"]["default_payment_method"] == id:
                before = copy.deepcopy(customer)
                customer["invoice_settings"]["default_payment_method"] = None
                self._emit("customer.updated", customer, ctx, diff_previous(before, customer))
            return self._expand(copy.deepcopy(pm), params)

    def list_payment_methods(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/payment_methods (optionally for one customer)."""
        with self._lock:
            check_known(params, ("customer", "type", "limit", "starting_after", "ending_before"))
            found = list(self._objects["payment_method"].values())
            if "customer" in params:
                cus = as_str(params["customer"], "customer")
                self._live_customer(cus, param="customer")
                found = [p for p in found if p["customer"] == cus]
            if "type" in params:
                found = [p for p in found if p["type"] == as_str(params["type"], "type")]
            return self._paginate(found, params, "/v1/payment_methods")

    def list_customer_payment_methods(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/customers/{id}/payment_methods."""
        with self._lock:
            check_known(params, ("type", "limit", "starting_after", "ending_before", "allow_redisplay"))
            self._live_customer(id)
            found = [p for p in self._objects["payment_method"].values() if p["customer"] == id]
            if "type" in params:
                found = [p for p in found if p["type"] == as_str(params["type"], "type")]
            return self._paginate(found, params, f"/v1/customers/{id}/payment_methods")

    # ------------------------------------------------------------------ subscriptions

    _SUB_CREATE = (
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
    _SUB_UPDATE = (
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

    def _price_for(self, raw: Any, param: str) -> Obj:
        price_id = as_str(raw, param)
        price = self._get("price", price_id, label="price", param=param)
        if not price["active"]:
            raise invalid_request(
                "The price specified is inactive. This field only accepts active prices.", param=param
            )
        return price

    def _new_item(self, sub_id: str, price: Obj, quantity: int, metadata: dict[str, str], start: int, end: int) -> Obj:
        return {
            "id": new_id("si", 14),
            "object": "subscription_item",
            "created": self._now(),
            "current_period_end": end,
            "current_period_start": start,
            "discounts": [],
            "metadata": metadata,
            "price": copy.deepcopy(price),
            "quantity": quantity,
            "subscription": sub_id,
            "tax_rates": [],
        }

    def _item_spec(self, raw: Any, index: int) -> dict[str, Any]:
        spec = as_dict(raw, f"items[{index}]")
        for key in spec:
            if key not in ("id", "price", "quantity", "metadata", "deleted", "clear_usage"):
                raise unknown_parameter(f"items[{index}][{key}]")
        return spec

    def _check_pm_for(self, customer: Obj, pm_id: str, param: str) -> Obj:
        pm = self._objects["payment_method"].get(pm_id)
        if pm is None or pm["customer"] != customer["id"]:
            raise invalid_request(
                f"The customer does not have a payment method with the ID {pm_id}. "
                "The payment method must be attached to the customer.",
                param=param,
            )
        return pm

    def _charge_outcome(self, pm: Obj | None, behavior: str, trialing: bool) -> str:
        """The status a (re)billed subscription gets, or a card error when asked to fail loudly."""
        if trialing:
            return "trialing"
        if behavior == "default_incomplete":
            return "incomplete"
        if pm is None:
            if behavior == "error_if_incomplete" or behavior == "allow_incomplete":
                raise invalid_request(
                    "This customer has no attached payment source or default payment method. "
                    "Please consider adding a default payment method.",
                    code="resource_missing",
                )
            return "incomplete"
        if self._profile_of(pm).decline_on_charge:
            if behavior == "error_if_incomplete":
                raise card_error(
                    "Your card was declined.", code="card_declined", decline_code="generic_decline"
                )
            return "incomplete"
        return "active"

    def create_subscription(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/subscriptions."""
        with self._lock:
            check_known(params, self._SUB_CREATE)
            customer = self._live_customer(as_str(require(params, "customer"), "customer"), param="customer")
            specs = as_list(require(params, "items"), "items")
            if not specs:
                raise invalid_request("Missing required param: items.", param="items", code="parameter_missing")
            prices: list[tuple[Obj, int, dict[str, str]]] = []
            for index, raw in enumerate(specs):
                spec = self._item_spec(raw, index)
                if "id" in spec or "deleted" in spec:
                    raise unknown_parameter(f"items[{index}][{'id' if 'id' in spec else 'deleted'}]")
                price = self._price_for(require(spec, "price"), f"items[{index}][price]")
                quantity = as_int(spec.get("quantity", 1), f"items[{index}][quantity]")
                if quantity < 0:
                    raise invalid_request("Invalid quantity.", param=f"items[{index}][quantity]")
                prices.append((price, quantity, merge_metadata({}, spec.get("metadata", {}))))
            self._check_same_interval([p for p, _, _ in prices])
            behavior = as_str(params.get("payment_behavior", "allow_incomplete"), "payment_behavior")
            if behavior not in self._PAYMENT_BEHAVIORS:
                raise invalid_request(f"Invalid payment_behavior: {behavior}", param="payment_behavior")
            pm_id = opt_str(params, "default_payment_method")
            pm = self._check_pm_for(customer, pm_id, "default_payment_method") if pm_id else None
            charge_pm = pm
            if charge_pm is None:
                default = customer["invoice_settings"]["default_payment_method"]
                charge_pm = self._objects["payment_method"].get(default) if default else None
            trial_days = as_int(params["trial_period_days"], "trial_period_days") if "trial_period_days" in params else 0
            if trial_days < 0:
                raise invalid_request("Invalid trial_period_days.", param="trial_period_days")
            status = self._charge_outcome(charge_pm, behavior, trial_days > 0)
            metadata = merge_metadata({}, params.get("metadata", {}))
            cancel_at_period_end = as_bool(params.get("cancel_at_period_end", False), "cancel_at_period_end")

            now = self._now()
            first = prices[0][0]["recurring"]
            if trial_days:
                period_end = now + trial_days * 86400
            else:
                period_end = add_interval(now, first["interval"], first["interval_count"])
            sub_id = new_id("sub")
            items = [self._new_item(sub_id, price, qty, md, now, period_end) for price, qty, md in prices]
            sub = self._put(
                "subscription",
                {
                    "id": sub_id,
                    "object": "subscription",
                    "application": None,
                    "automatic_tax": {"enabled": False, "liability": None},
                    "billing_cycle_anchor": period_end if trial_days else now,
                    "cancel_at": period_end if cancel_at_period_end else None,
                    "cancel_at_period_end": cancel_at_period_end,
                    "canceled_at": now if cancel_at_period_end else None,
                    "cancellation_details": {
                        "comment": None,
                        "feedback": None,
                        "reason": "cancellation_requested" if cancel_at_period_end else None,
                    },
                    "collection_method": "charge_automatically",
                    "created": now,
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
                    "start_date": now,
                    "status": status,
                    "test_clock": None,
                    "trial_end": period_end if trial_days else None,
                    "trial_start": now if trial_days else None,
                },
            )
            self._emit("customer.subscription.created", sub, ctx)
            return self._expand(copy.deepcopy(sub), params)

    @staticmethod
    def _check_same_interval(prices: list[Obj]) -> None:
        shapes = {(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p in prices}
        if len(shapes) > 1:
            raise invalid_request(
                "The price specified has a different billing interval than the other prices. "
                "All prices on a subscription must have the same recurring.interval and "
                "recurring.interval_count.",
                param="items",
            )
        if len({p["currency"] for p in prices}) > 1:
            raise invalid_request("All prices on a subscription must have the same currency.", param="items")

    def retrieve_subscription(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/subscriptions/{id} (canceled ones stay retrievable)."""
        with self._lock:
            check_known(params, ())
            sub = self._get("subscription", id, label="subscription")
            return self._expand(copy.deepcopy(sub), params)

    def update_subscription(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/subscriptions/{id}: items and price changes, cancel_at_period_end, default card."""
        with self._lock:
            check_known(params, self._SUB_UPDATE)
            sub = self._get("subscription", id, label="subscription")
            if sub["status"] in _ENDED_STATUSES and set(params) - {"metadata", "cancellation_details", "expand"}:
                raise invalid_request(
                    "A canceled subscription can only update its cancellation_details and metadata."
                )
            customer = self._objects["customer"].get(sub["customer"])
            before = copy.deepcopy(sub)
            new_items = copy.deepcopy(sub["items"]["data"])
            anchor: int | None = None
            if "items" in params:
                by_id = {item["id"]: item for item in new_items}
                period_start = new_items[0]["current_period_start"] if new_items else self._now()
                period_end = new_items[0]["current_period_end"] if new_items else self._now()
                for index, raw in enumerate(as_list(params["items"], "items")):
                    spec = self._item_spec(raw, index)
                    if "id" in spec:
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
                            item["price"] = copy.deepcopy(self._price_for(spec["price"], f"items[{index}][price]"))
                        if "quantity" in spec:
                            item["quantity"] = as_int(spec["quantity"], f"items[{index}][quantity]")
                        if "metadata" in spec:
                            item["metadata"] = merge_metadata(item["metadata"], spec["metadata"])
                    else:
                        price = self._price_for(require(spec, "price"), f"items[{index}][price]")
                        quantity = as_int(spec.get("quantity", 1), f"items[{index}][quantity]")
                        metadata = merge_metadata({}, spec.get("metadata", {}))
                        new_items.append(self._new_item(id, price, quantity, metadata, period_start, period_end))
                if not new_items:
                    raise invalid_request("A subscription must have at least one active plan.", param="items")
                self._check_same_interval([i["price"] for i in new_items])
                interval_changed = {
                    (i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"]) for i in new_items
                } != {
                    (i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])
                    for i in sub["items"]["data"]
                }
                if interval_changed and sub["status"] != "trialing":
                    # Stripe resets the billing cycle when the interval changes.
                    now = self._now()
                    rec = new_items[0]["price"]["recurring"]
                    end = add_interval(now, rec["interval"], rec["interval_count"])
                    for item in new_items:
                        item["current_period_start"], item["current_period_end"] = now, end
                    anchor = now
            changes: dict[str, Any] = {}
            if anchor is not None:
                changes["billing_cycle_anchor"] = anchor
            if "default_payment_method" in params:
                pm_id = opt_str(params, "default_payment_method")
                if pm_id and customer is not None:
                    self._check_pm_for(customer, pm_id, "default_payment_method")
                changes["default_payment_method"] = pm_id
            if "metadata" in params:
                changes["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
            if "description" in params:
                changes["description"] = opt_str(params, "description")
            if "cancellation_details" in params:
                details = as_dict(params["cancellation_details"], "cancellation_details")
                merged = dict(sub["cancellation_details"])
                for key, value in details.items():
                    if key not in ("comment", "feedback"):
                        raise unknown_parameter(f"cancellation_details[{key}]")
                    merged[key] = as_str(value, f"cancellation_details[{key}]") or None
                changes["cancellation_details"] = merged
            if "cancel_at_period_end" in params:
                flag = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
                reasons: dict[str, Any] = dict(changes.get("cancellation_details") or sub["cancellation_details"])
                if flag:
                    changes["cancel_at"] = new_items[0]["current_period_end"]
                    changes["canceled_at"] = self._now()
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
            previous = diff_previous(before, sub)
            if previous:
                self._emit("customer.subscription.updated", sub, ctx, previous)
            return self._expand(copy.deepcopy(sub), params)

    def _cancel_now(self, sub: Obj, ctx: RequestContext | None, *, reason: str) -> None:
        now = self._now()
        sub["status"] = "canceled"
        sub["canceled_at"] = now
        sub["ended_at"] = now
        sub["cancel_at"] = None
        sub["cancel_at_period_end"] = False
        sub["cancellation_details"] = dict(sub["cancellation_details"], reason=reason)
        self._emit("customer.subscription.deleted", sub, ctx)

    def cancel_subscription(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/subscriptions/{id}: cancel at once (a second cancel is a 404, like Stripe)."""
        with self._lock:
            check_known(params, ("cancellation_details", "invoice_now", "prorate"))
            sub = self._get("subscription", id, label="subscription")
            if sub["status"] in _ENDED_STATUSES:
                raise resource_missing("subscription", id)
            for name in ("invoice_now", "prorate"):
                if name in params:
                    as_bool(params[name], name)
            details = dict(sub["cancellation_details"])
            for key, value in as_dict(params.get("cancellation_details", {}), "cancellation_details").items():
                if key not in ("comment", "feedback"):
                    raise unknown_parameter(f"cancellation_details[{key}]")
                details[key] = as_str(value, f"cancellation_details[{key}]") or None
            sub["cancellation_details"] = details
            self._cancel_now(sub, ctx, reason="cancellation_requested")
            return self._expand(copy.deepcopy(sub), params)

    def list_subscriptions(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/subscriptions (canceled ones only with ``status=canceled|ended|all``)."""
        with self._lock:
            check_known(params, ("customer", "price", "status", "limit", "starting_after", "ending_before"))
            found = list(self._objects["subscription"].values())
            if "customer" in params:
                cus = as_str(params["customer"], "customer")
                found = [s for s in found if s["customer"] == cus]
            if "price" in params:
                price = as_str(params["price"], "price")
                found = [s for s in found if any(i["price"]["id"] == price for i in s["items"]["data"])]
            status = as_str(params.get("status", ""), "status")
            if status and status not in _SUBSCRIPTION_STATUSES:
                raise invalid_request(f"Invalid status: {status}", param="status")
            if status == "ended":
                found = [s for s in found if s["status"] in _ENDED_STATUSES]
            elif status and status != "all":
                found = [s for s in found if s["status"] == status]
            elif not status:
                found = [s for s in found if s["status"] not in _ENDED_STATUSES]
            return self._paginate(found, params, "/v1/subscriptions")

    # ------------------------------------------------------------------ events

    def retrieve_event(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/events/{id}."""
        with self._lock:
            check_known(params, ())
            return copy.deepcopy(self._get("event", id, label="event"))

    def list_events(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/events, filtered by ``type`` (``*`` wildcards allowed) or ``types[]``."""
        with self._lock:
            check_known(params, ("type", "types", "limit", "starting_after", "ending_before"))
            found = list(self._objects["event"].values())
            if "type" in params and "types" in params:
                raise invalid_request("You may only specify one of these parameters: type, types.", param="types")
            if "type" in params:
                pattern = as_str(params["type"], "type")
                found = [e for e in found if fnmatch.fnmatchcase(e["type"], pattern)]
            if "types" in params:
                wanted = {as_str(t, "types") for t in as_list(params["types"], "types")}
                found = [e for e in found if e["type"] in wanted]
            return self._paginate(found, params, "/v1/events")

    # ------------------------------------------------------------------ webhook endpoints

    def add_webhook_endpoint(
        self,
        url: str,
        *,
        secret: str | None = None,
        enabled_events: Iterable[str] | None = None,
        description: str | None = None,
    ) -> tuple[Obj, str]:
        """Register a webhook endpoint; returns it with its signing secret."""
        with self._lock:
            secret = secret or "whsec_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))
            events = list(enabled_events or ["*"])
            endpoint = self._put(
                "webhook_endpoint",
                {
                    "id": new_id("we"),
                    "object": "webhook_endpoint",
                    "api_version": None,
                    "application": None,
                    "created": self._now(),
                    "description": description,
                    "enabled_events": events,
                    "livemode": False,
                    "metadata": {},
                    "status": "enabled",
                    "url": url,
                },
            )
            self._webhook_secrets[endpoint["id"]] = secret
            return copy.deepcopy(endpoint), secret

    def remove_webhook_endpoint(self, endpoint_id: str) -> bool:
        """Forget a webhook endpoint; ``False`` if there was none."""
        with self._lock:
            self._webhook_secrets.pop(endpoint_id, None)
            return self._objects["webhook_endpoint"].pop(endpoint_id, None) is not None

    def _check_url(self, raw: Any) -> str:
        url = as_str(raw, "url")
        if not url.startswith(("http://", "https://")):
            raise invalid_request("Invalid URL: must be an http or https URL.", param="url")
        return url

    def create_webhook_endpoint(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/webhook_endpoints; the answer carries the ``secret`` this once."""
        check_known(params, ("url", "enabled_events", "description", "metadata", "api_version"))
        url = self._check_url(require(params, "url"))
        events = [as_str(e, "enabled_events") for e in as_list(require(params, "enabled_events"), "enabled_events")]
        if not events:
            raise invalid_request("Missing required param: enabled_events.", param="enabled_events")
        with self._lock:
            endpoint, secret = self.add_webhook_endpoint(
                url, enabled_events=events, description=opt_str(params, "description")
            )
            stored = self._objects["webhook_endpoint"][endpoint["id"]]
            stored["metadata"] = merge_metadata({}, params.get("metadata", {}))
            stored["api_version"] = opt_str(params, "api_version")
            return dict(copy.deepcopy(stored), secret=secret)

    def retrieve_webhook_endpoint(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/webhook_endpoints/{id}."""
        with self._lock:
            check_known(params, ())
            return copy.deepcopy(self._get("webhook_endpoint", id, label="webhook endpoint"))

    def update_webhook_endpoint(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/webhook_endpoints/{id}."""
        with self._lock:
            check_known(params, ("url", "enabled_events", "description", "metadata", "disabled"))
            endpoint = self._get("webhook_endpoint", id, label="webhook endpoint")
            if "url" in params:
                endpoint["url"] = self._check_url(params["url"])
            if "enabled_events" in params:
                endpoint["enabled_events"] = [
                    as_str(e, "enabled_events") for e in as_list(params["enabled_events"], "enabled_events")
                ]
            if "description" in params:
                endpoint["description"] = opt_str(params, "description")
            if "metadata" in params:
                endpoint["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
            if "disabled" in params:
                endpoint["status"] = "disabled" if as_bool(params["disabled"], "disabled") else "enabled"
            return copy.deepcopy(endpoint)

    def list_webhook_endpoints(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/webhook_endpoints."""
        with self._lock:
            check_known(params, ("limit", "starting_after", "ending_before"))
            return self._paginate(self._objects["webhook_endpoint"].values(), params, "/v1/webhook_endpoints")

    def delete_webhook_endpoint(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/webhook_endpoints/{id}."""
        with self._lock:
            check_known(params, ())
            self._get("webhook_endpoint", id, label="webhook endpoint")
            self.remove_webhook_endpoint(id)
            return {"id": id, "object": "webhook_endpoint", "deleted": True}


__all__ = [
    "DEFAULT_API_VERSION",
    "RequestContext",
    "SandboxStore",
    "StripeApiError",
    "WebhookTarget",
    "add_interval",
    "diff_previous",
    "new_id",
]
