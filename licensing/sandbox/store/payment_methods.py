"""Card payment methods: test cards and tokens, attaching to and detaching from customers, ``/v1/payment_methods``."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from .. import cards
from ..errors import card_error, invalid_request, resource_missing, unknown_parameter
from ..params import (
    ADDRESS_FIELDS,
    Params,
    as_address,
    as_dict,
    as_int,
    as_str,
    check_known,
    merge_metadata,
    require,
)
from .core import PAGING, Core, Obj, RequestContext, matching, new_id, now
from .events import EventLog

_LABEL = "PaymentMethod"


def profile_of(pm: Obj) -> cards.CardProfile:
    """The test card behind a payment method (how it behaves on attach and charge)."""
    card = pm.get("card") or {}
    for profile in cards.NUMBERS.values():
        if profile.last4 == card.get("last4") and profile.brand == card.get("brand"):
            return profile
    return cards.VISA


def _new_card_pm(card: cards.CardProfile, *, exp_month: int = 12, exp_year: int | None = None) -> Obj:
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": dict.fromkeys(ADDRESS_FIELDS),
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
        "created": now(),
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def _of_type(found: list[Obj], params: Params) -> list[Obj]:
    """``found`` cut to the ``type`` asked for (checked per object, so an empty list never refuses it)."""
    if "type" not in params:
        return found
    return [p for p in found if p["type"] == as_str(params["type"], "type")]


def _billing_details(raw: Any, current: Obj) -> Obj:
    merged = copy.deepcopy(current)
    for key, value in as_dict(raw, "billing_details").items():
        if key == "address":
            merged["address"] = as_address(value, "billing_details[address]") or dict.fromkeys(ADDRESS_FIELDS)
        elif key in ("email", "name", "phone"):
            merged[key] = as_str(value, f"billing_details[{key}]") or None
        else:
            raise unknown_parameter(f"billing_details[{key}]")
    return merged


def _card_profile(card_params: dict[str, Any]) -> tuple[cards.CardProfile, int, int | None]:
    """The test card a ``card[...]`` hash names (by token or number) with its expiry month and year."""
    for key in card_params:
        if key not in ("token", "number", "exp_month", "exp_year", "cvc"):
            raise unknown_parameter(f"card[{key}]")
    if "token" in card_params:
        token = as_str(card_params["token"], "card[token]")
        by_token = cards.TOKENS.get(token)
        if by_token is None:
            raise resource_missing("token", token, param="card[token]")
        return by_token, 12, None
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
    return profile, exp_month, exp_year


class PaymentMethods:
    """Card payment methods and which customer each is attached to."""

    def __init__(self, core: Core, events: EventLog) -> None:
        self._core = core
        self._events = events

    def attached_to(self, customer: Obj, pm_id: str, param: str) -> Obj:
        """The payment method ``pm_id``, refused unless it is attached to ``customer``."""
        pm = self._core.tables["payment_method"].get(pm_id)
        if pm is None or pm["customer"] != customer["id"]:
            raise invalid_request(
                f"The customer does not have a payment method with the ID {pm_id}. "
                "The payment method must be attached to the customer.",
                param=param,
            )
        return pm

    def prepare_attach(self, pm_id: str, *, param: str) -> Obj:
        """Validate attaching ``pm_id``; returns the payment method to attach (new for magic ids)."""
        if pm_id in cards.MAGIC_PAYMENT_METHODS:
            profile = cards.MAGIC_PAYMENT_METHODS[pm_id]
            pm = _new_card_pm(profile)
        else:
            pm = self._core.get("payment_method", pm_id, label=_LABEL, param=param)
            if pm["customer"] is not None:
                raise invalid_request(
                    "The payment method you provided has already been attached to a customer.",
                    param=param,
                )
            profile = profile_of(pm)
        if profile.decline_on_attach:
            raise card_error("Your card was declined.", code="card_declined", decline_code="generic_decline")
        return pm

    def commit_attach(self, pm: Obj, customer: Obj, ctx: RequestContext | None) -> None:
        """Attach a payment method that :meth:`prepare_attach` accepted (storing it if it is new)."""
        if pm["id"] not in self._core.tables["payment_method"]:
            self._core.put("payment_method", pm)
        pm["customer"] = customer["id"]
        self._events.emit("payment_method.attached", pm, ctx, {"customer": None})

    def create_payment_method(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/payment_methods (type=card, from a test token or a test card number)."""
        with self._core.lock:
            check_known(params, ("type", "card", "billing_details", "metadata", "allow_redisplay"))
            kind = as_str(require(params, "type"), "type")
            if kind != "card":
                raise invalid_request(f"The sandbox only supports payment methods of type card, not {kind}.", param="type")
            profile, exp_month, exp_year = _card_profile(as_dict(require(params, "card"), "card"))
            pm = _new_card_pm(profile, exp_month=exp_month, exp_year=exp_year)
            if "billing_details" in params:
                pm["billing_details"] = _billing_details(params["billing_details"], pm["billing_details"])
            pm["metadata"] = merge_metadata({}, params.get("metadata", {}))
            if "allow_redisplay" in params:
                pm["allow_redisplay"] = as_str(params["allow_redisplay"], "allow_redisplay")
            self._core.put("payment_method", pm)
            return self._core.answer(pm, params)

    def retrieve_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/payment_methods/{id}; magic test ids such as ``pm_card_visa`` answer a template."""
        with self._core.lock:
            check_known(params, ())
            if id in cards.MAGIC_PAYMENT_METHODS:
                template = _new_card_pm(cards.MAGIC_PAYMENT_METHODS[id])
                template["id"] = id
                return template
            return self._core.retrieve("payment_method", id, params, label=_LABEL)

    def update_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_methods/{id} (metadata and billing details)."""
        with self._core.lock:
            check_known(params, ("metadata", "billing_details", "allow_redisplay"))
            pm = self._core.get("payment_method", id, label=_LABEL)
            before = copy.deepcopy(pm)
            if "billing_details" in params:
                pm["billing_details"] = _billing_details(params["billing_details"], pm["billing_details"])
            if "metadata" in params:
                pm["metadata"] = merge_metadata(pm["metadata"], params["metadata"])
            if "allow_redisplay" in params:
                pm["allow_redisplay"] = as_str(params["allow_redisplay"], "allow_redisplay")
            self._events.emit_changes("payment_method.updated", pm, before, ctx)
            return self._core.answer(pm, params)

    def attach_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_methods/{id}/attach."""
        with self._core.lock:
            check_known(params, ("customer",))
            customer = self._core.get("customer", as_str(require(params, "customer"), "customer"), param="customer")
            existing = self._core.tables["payment_method"].get(id)
            if existing is not None and existing["customer"] == customer["id"]:
                return self._core.answer(existing, params)
            pm = self.prepare_attach(id, param="payment_method")
            self.commit_attach(pm, customer, ctx)
            return self._core.answer(pm, params)

    def detach_payment_method(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_methods/{id}/detach (clears it as the customer's default, too)."""
        with self._core.lock:
            check_known(params, ())
            pm = self._core.get("payment_method", id, label=_LABEL)
            owner = pm["customer"]
            if owner is None:
                raise invalid_request(
                    "The payment method you provided is not attached to a customer so detachment is impossible."
                )
            pm["customer"] = None
            self._events.emit("payment_method.detached", pm, ctx, {"customer": owner})
            customer = self._core.tables["customer"].get(owner)
            if customer is not None and customer["invoice_settings"]["default_payment_method"] == id:
                before = copy.deepcopy(customer)
                customer["invoice_settings"]["default_payment_method"] = None
                self._events.emit_changes("customer.updated", customer, before, ctx)
            return self._core.answer(pm, params)

    def list_payment_methods(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/payment_methods (optionally for one customer)."""
        with self._core.lock:
            check_known(params, ("customer", "type", *PAGING))
            found = list(self._core.tables["payment_method"].values())
            if "customer" in params:
                self._core.get("customer", as_str(params["customer"], "customer"), param="customer")
                found = matching(found, params, "customer")
            return self._core.paginate(_of_type(found, params), params, "/v1/payment_methods")

    def list_customer_payment_methods(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/customers/{id}/payment_methods."""
        with self._core.lock:
            check_known(params, ("type", "allow_redisplay", *PAGING))
            self._core.get("customer", id)
            found = [p for p in self._core.tables["payment_method"].values() if p["customer"] == id]
            return self._core.paginate(_of_type(found, params), params, f"/v1/customers/{id}/payment_methods")
