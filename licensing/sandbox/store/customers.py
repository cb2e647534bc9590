"""Customers: their fields and invoice settings, deletion (which ends their subscriptions), ``/v1/customers``."""

from __future__ import annotations

import copy
import string
from typing import Any

from ..errors import invalid_request, unknown_parameter
from ..params import Params, as_address, as_dict, as_str, check_known, merge_metadata, opt_str
from .core import PAGING, Core, Obj, RequestContext, matching, new_id, now, random_string
from .events import EventLog
from .payment_methods import PaymentMethods
from .subscriptions import ENDED_STATUSES, Subscriptions

_FIELDS = ("address", "description", "email", "invoice_settings", "metadata", "name", "phone")


class Customers:
    """Customers, and what creating, updating and deleting one does to its cards and subscriptions."""

    def __init__(
        self, core: Core, events: EventLog, payment_methods: PaymentMethods, subscriptions: Subscriptions
    ) -> None:
        self._core = core
        self._events = events
        self._payment_methods = payment_methods
        self._subscriptions = subscriptions

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
                pm = self._core.tables["payment_method"].get(pm_id)
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

    def create_customer(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/customers."""
        with self._core.lock:
            check_known(params, (*_FIELDS, "payment_method", "test_clock"))
            clock_id = opt_str(params, "test_clock")
            clock = self._core.get("test_clock", clock_id, label="test_clock", param="test_clock") if clock_id else None
            pm_param = opt_str(params, "payment_method")
            pending = self._payment_methods.prepare_attach(pm_param, param="payment_method") if pm_param else None
            settings = {"custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None}
            if "invoice_settings" in params:
                settings.update(self._invoice_settings_update(None, params["invoice_settings"], pending))
            metadata = merge_metadata({}, params.get("metadata", {}))
            address = as_address(params["address"], "address") if "address" in params else None
            customer = self._core.put(
                "customer",
                {
                    "id": new_id("cus", 14),
                    "object": "customer",
                    "address": address,
                    "balance": 0,
                    "created": int(clock["frozen_time"]) if clock is not None else now(),
                    "currency": None,
                    "default_source": None,
                    "delinquent": False,
                    "description": opt_str(params, "description"),
                    "discount": None,
                    "email": opt_str(params, "email"),
                    "invoice_prefix": random_string(8, string.ascii_uppercase + string.digits),
                    "invoice_settings": settings,
                    "livemode": False,
                    "metadata": metadata,
                    "name": opt_str(params, "name"),
                    "next_invoice_sequence": 1,
                    "phone": opt_str(params, "phone"),
                    "preferred_locales": [],
                    "shipping": None,
                    "tax_exempt": "none",
                    "test_clock": clock_id,
                },
            )
            self._events.emit("customer.created", customer, ctx)
            if pending is not None:
                self._payment_methods.commit_attach(pending, customer, ctx)
            return self._core.answer(customer, params)

    def retrieve_customer(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/customers/{id} (a deleted customer answers with its ``deleted`` stub)."""
        with self._core.lock:
            check_known(params, ())
            if id in self._core.deleted:
                return copy.deepcopy(self._core.deleted[id])
            return self._core.retrieve("customer", id, params)

    def update_customer(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/customers/{id}."""
        with self._core.lock:
            check_known(params, _FIELDS)
            customer = self._core.get("customer", id)
            before = copy.deepcopy(customer)
            changes: dict[str, Any] = {}
            for name in ("description", "email", "name", "phone"):
                if name in params:
                    changes[name] = opt_str(params, name)
            if "metadata" in params:
                changes["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
            if "address" in params:
                changes["address"] = as_address(params["address"], "address")
            if "invoice_settings" in params:
                settings = dict(customer["invoice_settings"])
                settings.update(self._invoice_settings_update(customer, params["invoice_settings"], None))
                changes["invoice_settings"] = settings
            customer.update(changes)
            self._events.emit_changes("customer.updated", customer, before, ctx)
            return self._core.answer(customer, params)

    def list_customers(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/customers."""
        with self._core.lock:
            check_known(params, ("email", *PAGING))
            found = matching(list(self._core.tables["customer"].values()), params, "email")
            return self._core.paginate(found, params, "/v1/customers")

    def delete_customer(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/customers/{id}; its live subscriptions are canceled, like Stripe does."""
        with self._core.lock:
            check_known(params, ())
            customer = self._core.get("customer", id)
            for sub in list(self._core.tables["subscription"].values()):
                if sub["customer"] == id and sub["status"] not in ENDED_STATUSES:
                    self._subscriptions.cancel_now(sub, ctx, reason="cancellation_requested")
            del self._core.tables["customer"][id]
            stub = {"id": id, "object": "customer", "deleted": True}
            self._core.deleted[id] = stub
            self._events.emit("customer.deleted", customer, ctx)
            return copy.deepcopy(stub)
