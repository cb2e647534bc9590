"""Refunds of charges, full or partial, and ``/v1/refunds``."""

from __future__ import annotations

import copy

from ..errors import invalid_request
from ..params import Params, as_int, check_known, merge_metadata, opt_str
from .core import PAGING, Core, Obj, RequestContext, matching, new_id
from .events import EventLog

_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _money(amount: int) -> str:
    return f"${amount / 100:.2f}"


class Refunds:
    """Refunds, and what they do to the charge they refund (``amount_refunded``, ``refunded``)."""

    def __init__(self, core: Core, events: EventLog) -> None:
        self._core = core
        self._events = events

    def _charge_of(self, params: Params) -> Obj:
        charge_id = opt_str(params, "charge")
        pi_id = opt_str(params, "payment_intent")
        if charge_id and pi_id:
            raise invalid_request("You may only specify one of these parameters: charge, payment_intent.", param="charge")
        if pi_id:
            pi = self._core.get("payment_intent", pi_id, label="payment_intent", param="payment_intent")
            if not pi["latest_charge"] or pi["status"] != "succeeded":
                raise invalid_request(
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            charge_id = pi["latest_charge"]
        if not charge_id:
            raise invalid_request("One of the following params should be provided for this request: payment_intent or charge.")
        return self._core.get("charge", charge_id, param="charge")

    def create_refund(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/refunds: refund all of a charge, or ``amount`` of it (``charge.refunded``, ``refund.created``)."""
        with self._core.lock:
            check_known(params, ("charge", "payment_intent", "amount", "reason", "metadata"))
            charge = self._charge_of(params)
            if charge["status"] != "succeeded":
                raise invalid_request(f"Charge {charge['id']} has not succeeded, so it cannot be refunded.", param="charge")
            remaining = charge["amount"] - charge["amount_refunded"]
            if remaining <= 0:
                raise invalid_request(
                    f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded", param="charge"
                )
            amount = as_int(params["amount"], "amount") if "amount" in params else remaining
            if amount <= 0:
                raise invalid_request("Invalid positive integer", param="amount")
            if amount > remaining:
                raise invalid_request(
                    f"Refund amount ({_money(amount)}) is greater than unrefunded amount on charge ({_money(remaining)})",
                    param="amount",
                    code="amount_too_large",
                )
            reason = opt_str(params, "reason")
            if reason is not None and reason not in _REASONS:
                raise invalid_request(f"Invalid reason: must be one of {', '.join(_REASONS)}", param="reason")
            at = self._core.time_for(charge["customer"])
            refund = self._core.put(
                "refund",
                {
                    "id": new_id("re"),
                    "object": "refund",
                    "amount": amount,
                    "charge": charge["id"],
                    "created": at,
                    "currency": charge["currency"],
                    "livemode": False,
                    "metadata": merge_metadata({}, params.get("metadata", {})),
                    "payment_intent": charge["payment_intent"],
                    "reason": reason,
                    "status": "succeeded",
                },
            )
            before = copy.deepcopy(charge)
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            self._events.emit("refund.created", refund, ctx, created=at)
            self._events.emit_changes("charge.refunded", charge, before, ctx, created=at)
            return self._core.answer(refund, params)

    def retrieve_refund(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/refunds/{id}."""
        return self._core.retrieve("refund", id, params)

    def list_refunds(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/refunds (by ``charge``, ``payment_intent``)."""
        with self._core.lock:
            check_known(params, ("charge", "payment_intent", *PAGING))
            found = list(self._core.tables["refund"].values())
            for name in ("charge", "payment_intent"):
                found = matching(found, params, name)
            return self._core.paginate(found, params, "/v1/refunds")
