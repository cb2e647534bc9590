"""Invoices, payment intents and charges: what billing a subscription does, dunning, 3-D Secure, their API."""

# A subscription is billed through one invoice per period. Collecting an invoice makes (or reuses) its
# payment intent and tries the card: it succeeds (a charge, the invoice paid), is declined (a failed
# charge, ``invoice.payment_failed``, a retry scheduled by DUNNING_RETRY_DAYS), or needs 3-D Secure
# (``requires_action`` with a redirect the sandbox serves, ``invoice.payment_action_required``).

from __future__ import annotations

import copy
from typing import Literal

from ..errors import card_error, invalid_request
from ..params import Params, as_bool, as_dict, as_str, check_known, merge_metadata, opt_str
from .core import PAGING, Core, Obj, RequestContext, matching, new_id, random_string
from .events import EventLog
from .payment_methods import PaymentMethods, profile_of

#: Days after an invoice's first failed attempt at which it is retried; after the last, the
#: subscription becomes ``unpaid`` (the invoice stays open and can still be paid).
DUNNING_RETRY_DAYS: tuple[int, ...] = (3, 5, 7)
_DAY = 86400

Outcome = Literal["succeeded", "declined", "requires_action", "no_payment_method"]

_INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")

#: Stripe's test-mode evidence: submitting ``uncategorized_text`` with one of these closes the dispute
#: as won or lost at once (any other evidence leaves it ``under_review``).
DISPUTE_TEST_EVIDENCE = {"winning_evidence": "won", "losing_evidence": "lost"}
_DISPUTE_CLOSED = ("won", "lost", "warning_closed")
#: The evidence fields the sandbox takes (text ones; Stripe has more, files among them).
_EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy_disclosure", "cancellation_rebuttal",
    "customer_communication", "customer_email_address", "customer_name", "product_description",
    "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "uncategorized_text",
)


def subscription_amount(sub: Obj) -> int:
    """What one period of ``sub`` costs, in the currency's smallest unit."""
    return sum(int(i["price"]["unit_amount"] or 0) * int(i["quantity"]) for i in sub["items"]["data"])


class Billing:
    """Invoices of subscriptions, their payment intents and charges, and what paying them does to the subscription."""

    def __init__(self, core: Core, events: EventLog, payment_methods: PaymentMethods) -> None:
        self._core = core
        self._events = events
        self._payment_methods = payment_methods
        self._authenticated: set[str] = set()
        self._first_failure: dict[str, int] = {}
        self._retries: dict[str, int] = {}

    def reset(self) -> None:
        """Forget which cards have been through 3-D Secure and when invoices first failed."""
        with self._core.lock:
            self._authenticated.clear()
            self._first_failure.clear()
            self._retries.clear()

    # ------------------------------------------------------------------ rules

    def outcome(self, pm: Obj | None) -> Outcome:
        """What charging ``pm`` off-session would do now (no side effects)."""
        if pm is None:
            return "no_payment_method"
        profile = profile_of(pm)
        if profile.decline_on_charge:
            return "declined"
        if profile.authentication == "always" or (
            profile.authentication == "once" and pm["id"] not in self._authenticated
        ):
            return "requires_action"
        return "succeeded"

    @staticmethod
    def refuse(outcome: Outcome) -> None:
        """Raise the 402 (or 400) Stripe answers when an ``error_if_incomplete`` payment would not succeed."""
        if outcome == "no_payment_method":
            raise invalid_request(
                "This customer has no attached payment source or default payment method. "
                "Please consider adding a default payment method.",
                code="resource_missing",
            )
        if outcome == "declined":
            raise card_error("Your card was declined.", code="card_declined", decline_code="generic_decline")
        if outcome == "requires_action":
            raise card_error(
                "Your card was declined. This transaction requires authentication.",
                code="authentication_required",
                decline_code="authentication_required",
            )

    def charge_method(self, sub: Obj) -> Obj | None:
        """The card a subscription's invoices are charged to: its own default, else its customer's."""
        pm_id = sub.get("default_payment_method")
        if not pm_id:
            customer = self._core.tables["customer"].get(sub["customer"])
            pm_id = customer["invoice_settings"]["default_payment_method"] if customer else None
        return self._core.tables["payment_method"].get(pm_id) if pm_id else None

    # ------------------------------------------------------------------ invoices

    def create_invoice(self, sub: Obj, ctx: RequestContext | None, *, reason: str, at: int) -> Obj:
        """Create and finalize the invoice for ``sub``'s current period (``invoice.created``, ``invoice.finalized``)."""
        customer = self._core.tables["customer"][sub["customer"]]
        amount = 0 if sub["status"] == "trialing" else subscription_amount(sub)
        number = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
        invoice_id = new_id("in")
        previous_start = sub.get("current_period_start") if reason == "subscription_cycle" else at
        lines = [
            {
                "id": new_id("il"),
                "object": "line_item",
                "amount": 0 if amount == 0 else int(i["price"]["unit_amount"] or 0) * int(i["quantity"]),
                "currency": sub["currency"],
                "description": f"{i['quantity']} × {i['price'].get('nickname') or i['price']['id']}",
                "invoice": invoice_id,
                "livemode": False,
                "metadata": {},
                "period": {"start": i["current_period_start"], "end": i["current_period_end"]},
                "pricing": {"price_details": {"price": i["price"]["id"], "product": i["price"]["product"]}},
                "price": copy.deepcopy(i["price"]),
                "quantity": i["quantity"],
                "subscription": sub["id"],
                "subscription_item": i["id"],
            }
            for i in sub["items"]["data"]
        ]
        invoice = self._core.put(
            "invoice",
            {
                "id": invoice_id,
                "object": "invoice",
                "amount_due": amount,
                "amount_paid": 0,
                "amount_remaining": amount,
                "attempt_count": 0,
                "attempted": False,
                "auto_advance": True,
                "billing_reason": reason,
                "charge": None,
                "collection_method": "charge_automatically",
                "created": at,
                "currency": sub["currency"],
                "customer": customer["id"],
                "customer_email": customer["email"],
                "customer_name": customer["name"],
                "description": None,
                "due_date": None,
                "hosted_invoice_url": f"{self._core.base_url}/_sandbox/hosted/invoices/{invoice_id}",
                "invoice_pdf": None,
                "lines": {
                    "object": "list",
                    "data": lines,
                    "has_more": False,
                    "total_count": len(lines),
                    "url": f"/v1/invoices/{invoice_id}/lines",
                },
                "livemode": False,
                "metadata": {},
                "next_payment_attempt": None,
                "number": number,
                "paid": False,
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"metadata": copy.deepcopy(sub["metadata"]), "subscription": sub["id"]},
                },
                "payment_intent": None,
                # Like Stripe: a renewal invoice's period is the one that just ended; the period it
                # bills for is on its lines.
                "period_end": at,
                "period_start": previous_start if previous_start is not None else at,
                "status": "draft",
                "status_transitions": {
                    "finalized_at": None,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
                "subscription": sub["id"],
                "subtotal": amount,
                "test_clock": sub.get("test_clock"),
                "total": amount,
            },
        )
        sub["latest_invoice"] = invoice_id
        self._events.emit("invoice.created", invoice, ctx, created=at)
        invoice["status"] = "open"
        invoice["status_transitions"]["finalized_at"] = at
        self._events.emit("invoice.finalized", invoice, ctx, created=at)
        return invoice

    def prepare_payment(self, invoice: Obj, pm: Obj | None, *, at: int) -> None:
        """Make the invoice's payment intent without trying it (``default_incomplete``: the customer confirms)."""
        if invoice["amount_due"] > 0:
            self._payment_intent(invoice, pm, at)

    def _payment_intent(self, invoice: Obj, pm: Obj | None, at: int) -> Obj:
        """The invoice's payment intent, made on first use."""
        if invoice["payment_intent"]:
            pi = self._core.tables["payment_intent"][invoice["payment_intent"]]
            if pm is not None:
                pi["payment_method"] = pm["id"]
            return pi
        pi_id = new_id("pi")
        pi = self._core.put(
            "payment_intent",
            {
                "id": pi_id,
                "object": "payment_intent",
                "amount": invoice["amount_due"],
                "amount_received": 0,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic",
                "client_secret": f"{pi_id}_secret_{random_string(24)}",
                "confirmation_method": "automatic",
                "created": at,
                "currency": invoice["currency"],
                "customer": invoice["customer"],
                "description": "Subscription creation" if invoice["billing_reason"] == "subscription_create" else "Subscription update",
                "invoice": invoice["id"],
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": {},
                "next_action": None,
                "payment_method": pm["id"] if pm is not None else None,
                "payment_method_types": ["card"],
                "setup_future_usage": "off_session",
                "status": "requires_payment_method" if pm is None else "requires_confirmation",
            },
        )
        invoice["payment_intent"] = pi_id
        return pi

    def _charge(self, pi: Obj, pm: Obj, at: int, *, failed: bool) -> Obj:
        return self._core.put(
            "charge",
            {
                "id": new_id("ch"),
                "object": "charge",
                "amount": pi["amount"],
                "amount_captured": 0 if failed else pi["amount"],
                "amount_refunded": 0,
                "captured": not failed,
                "created": at,
                "currency": pi["currency"],
                "customer": pi["customer"],
                "description": pi["description"],
                "disputed": False,
                "failure_code": "card_declined" if failed else None,
                "failure_message": "Your card was declined." if failed else None,
                "invoice": pi["invoice"],
                "livemode": False,
                "metadata": {},
                "outcome": {
                    "network_status": "declined_by_network" if failed else "approved_by_network",
                    "reason": "generic_decline" if failed else None,
                    "seller_message": "The bank did not return any further details with this decline."
                    if failed
                    else "Payment complete.",
                    "type": "issuer_declined" if failed else "authorized",
                },
                "paid": not failed,
                "payment_intent": pi["id"],
                "payment_method": pm["id"],
                "receipt_url": None,
                "refunded": False,
                "status": "failed" if failed else "succeeded",
            },
        )

    def collect(self, invoice: Obj, ctx: RequestContext | None, pm: Obj | None, *, at: int, authenticated: bool = False) -> Outcome:
        """Try to pay an open invoice with ``pm`` now; records the charge, intent and invoice events."""
        if invoice["amount_due"] == 0:
            self._mark_paid(invoice, None, ctx, at)
            return "succeeded"
        pi = self._payment_intent(invoice, pm, at)
        result = "succeeded" if authenticated and pm is not None else self.outcome(pm)
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if result == "succeeded":
            assert pm is not None
            charge = self._charge(pi, pm, at, failed=False)
            pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge["id"], next_action=None, last_payment_error=None)
            self._events.emit("charge.succeeded", charge, ctx, created=at)
            self._events.emit("payment_intent.succeeded", pi, ctx, created=at)
            self._mark_paid(invoice, charge, ctx, at)
            if profile_of(pm).disputes:
                self.open_dispute(charge["id"], ctx, reason="fraudulent")
            return "succeeded"
        if result == "requires_action":
            assert pm is not None
            pi.update(
                status="requires_action",
                next_action={
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": f"{self._core.base_url}/_sandbox/3ds/{pi['id']}",
                        "return_url": invoice["hosted_invoice_url"],
                    },
                },
            )
            self._events.emit("payment_intent.requires_action", pi, ctx, created=at)
            self._events.emit("invoice.payment_action_required", invoice, ctx, created=at)
        else:
            error: Obj = {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
            if pm is not None:
                charge = self._charge(pi, pm, at, failed=True)
                pi["latest_charge"] = charge["id"]
                self._events.emit("charge.failed", charge, ctx, created=at)
            else:
                error = {"type": "invalid_request_error", "code": "payment_method_missing", "message": "No payment method."}
            pi.update(status="requires_payment_method", last_payment_error=error, next_action=None)
            self._events.emit("payment_intent.payment_failed", pi, ctx, created=at)
        self._schedule_retry(invoice, at)
        self._events.emit("invoice.payment_failed", invoice, ctx, created=at)
        return result

    def _schedule_retry(self, invoice: Obj, at: int) -> None:
        if invoice["billing_reason"] == "subscription_create":
            return  # a first invoice is paid by the customer (3-D Secure, confirm), never retried
        # The schedule counts only the automatic retries: paying by hand in between does not move it.
        first_failure = self._first_failure.setdefault(invoice["id"], at)
        retries_done = self._retries.get(invoice["id"], 0)
        if retries_done < len(DUNNING_RETRY_DAYS):
            invoice["next_payment_attempt"] = first_failure + DUNNING_RETRY_DAYS[retries_done] * _DAY
        else:
            invoice["next_payment_attempt"] = None

    def _mark_paid(self, invoice: Obj, charge: Obj | None, ctx: RequestContext | None, at: int) -> None:
        invoice.update(
            status="paid",
            paid=True,
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            charge=charge["id"] if charge is not None else None,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = at
        self._events.emit("invoice.paid", invoice, ctx, created=at)
        self._events.emit("invoice.payment_succeeded", invoice, ctx, created=at)

    def void(self, invoice: Obj, at: int) -> None:
        """Void an open invoice (its payment intent is canceled): ``invoice.voided``."""
        invoice.update(status="void", next_payment_attempt=None, amount_remaining=0)
        invoice["status_transitions"]["voided_at"] = at
        pi = self._core.tables["payment_intent"].get(invoice["payment_intent"] or "")
        if pi is not None and pi["status"] != "succeeded":
            pi.update(status="canceled", canceled_at=at, cancellation_reason="void_invoice", next_action=None)
            self._events.emit("payment_intent.canceled", pi, None, created=at)
        self._events.emit("invoice.voided", invoice, None, created=at)

    def settle(self, sub: Obj, invoice: Obj, outcome: Outcome, at: int) -> None:
        """Set ``sub``'s status from how its invoice's payment went (the caller records the event)."""
        if sub["status"] in ("canceled", "incomplete_expired"):
            return
        if outcome == "succeeded":
            if sub["latest_invoice"] == invoice["id"] and sub["status"] in ("incomplete", "past_due", "unpaid"):
                sub["status"] = "active"
        elif invoice["billing_reason"] == "subscription_create":
            sub["status"] = "incomplete"
        elif sub["status"] in ("active", "trialing"):
            sub["status"] = "past_due"
        exhausted = self._retries.get(invoice["id"], 0) >= len(DUNNING_RETRY_DAYS)
        if sub["status"] == "past_due" and invoice["status"] == "open" and exhausted:
            sub["status"] = "unpaid"

    def pay_for_subscription(self, invoice: Obj, ctx: RequestContext | None, pm: Obj | None, at: int, *, authenticated: bool = False) -> Outcome:
        """Collect ``invoice`` and move its subscription's status accordingly, with ``customer.subscription.updated``."""
        sub = self._core.tables["subscription"].get(invoice["subscription"] or "")
        before = copy.deepcopy(sub) if sub is not None else None
        outcome = self.collect(invoice, ctx, pm, at=at, authenticated=authenticated)
        if sub is not None and before is not None:
            self.settle(sub, invoice, outcome, at)
            self._events.emit_changes("customer.subscription.updated", sub, before, ctx, created=at)
        return outcome

    def retry(self, invoice: Obj, ctx: RequestContext | None, at: int) -> Outcome:
        """A dunning retry of an open renewal invoice (run by a test clock when it is due)."""
        sub = self._core.tables["subscription"].get(invoice["subscription"] or "")
        pm = self.charge_method(sub) if sub is not None else None
        self._retries[invoice["id"]] = self._retries.get(invoice["id"], 0) + 1
        return self.pay_for_subscription(invoice, ctx, pm, at)

    def authenticate(self, pi_id: str, *, succeed: bool = True) -> Obj:
        """Finish (or fail) the 3-D Secure step of a payment intent that ``requires_action``, as the customer would."""
        with self._core.lock:
            pi = self._core.get("payment_intent", pi_id, label="payment_intent")
            if pi["status"] != "requires_action":
                raise invalid_request(
                    f"This PaymentIntent's status is {pi['status']}; only one that requires_action can be authenticated.",
                    code="payment_intent_unexpected_state",
                )
            invoice = self._core.tables["invoice"][pi["invoice"]]
            pm = self._core.tables["payment_method"].get(pi["payment_method"] or "")
            at = self._core.time_for(pi["customer"])
            if succeed and pm is not None:
                self._authenticated.add(pm["id"])
                self.pay_for_subscription(invoice, None, pm, at, authenticated=True)
            else:
                error = {
                    "type": "card_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication.",
                }
                pi.update(status="requires_payment_method", next_action=None, last_payment_error=error)
                self._events.emit("payment_intent.payment_failed", pi, None, created=at)
                self._events.emit("invoice.payment_failed", invoice, None, created=at)
            return copy.deepcopy(pi)

    # ------------------------------------------------------------------ disputes

    def open_dispute(self, charge_id: str, ctx: RequestContext | None = None, *, reason: str = "fraudulent") -> Obj:
        """Open a dispute on a succeeded charge, as a card holder's bank would (``charge.dispute.created``)."""
        with self._core.lock:
            charge = self._core.get("charge", charge_id, label="charge")
            if charge["status"] != "succeeded":
                raise invalid_request(f"Charge {charge_id} did not succeed, so it cannot be disputed.")
            if charge["disputed"]:
                raise invalid_request(f"Charge {charge_id} is already disputed.", code="charge_disputed")
            at = self._core.time_for(charge["customer"])
            dispute = self._core.put(
                "dispute",
                {
                    "id": new_id("dp"),
                    "object": "dispute",
                    "amount": charge["amount"] - charge["amount_refunded"],
                    "charge": charge_id,
                    "created": at,
                    "currency": charge["currency"],
                    "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
                    "evidence_details": {
                        "due_by": at + 7 * _DAY,
                        "has_evidence": False,
                        "past_due": False,
                        "submission_count": 0,
                    },
                    "is_charge_refundable": False,
                    "livemode": False,
                    "metadata": {},
                    "payment_intent": charge["payment_intent"],
                    "reason": reason,
                    "status": "needs_response",
                },
            )
            before = copy.deepcopy(charge)
            charge["disputed"] = True
            self._events.emit("charge.dispute.created", dispute, ctx, created=at)
            self._events.emit_changes("charge.updated", charge, before, ctx, created=at)
            return copy.deepcopy(dispute)

    # ------------------------------------------------------------------ API

    def retrieve_invoice(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/invoices/{id}."""
        return self._core.retrieve("invoice", id, params)

    def list_invoices(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/invoices (by ``customer``, ``subscription``, ``status``)."""
        with self._core.lock:
            check_known(params, ("customer", "subscription", "status", *PAGING))
            found = list(self._core.tables["invoice"].values())
            for name in ("customer", "subscription"):
                found = matching(found, params, name)
            if "status" in params:
                status = as_str(params["status"], "status")
                if status not in _INVOICE_STATUSES:
                    raise invalid_request(f"Invalid status: {status}", param="status")
                found = [i for i in found if i["status"] == status]
            return self._core.paginate(found, params, "/v1/invoices")

    def pay_invoice(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/invoices/{id}/pay: charge the given card (or the subscription's) now, a 402 if it fails."""
        with self._core.lock:
            check_known(params, ("payment_method", "off_session", "paid_out_of_band"))
            invoice = self._core.get("invoice", id)
            if invoice["status"] == "paid":
                raise invalid_request("Invoice is already paid.", code="invoice_already_paid")
            if invoice["status"] != "open":
                raise invalid_request(f"You can only pay an open invoice; this one is {invoice['status']}.")
            sub = self._core.tables["subscription"].get(invoice["subscription"] or "")
            pm_id = opt_str(params, "payment_method")
            if pm_id:
                customer = self._core.tables["customer"][invoice["customer"]]
                pm: Obj | None = self._payment_methods.attached_to(customer, pm_id, "payment_method")
            else:
                pm = self.charge_method(sub) if sub is not None else None
            at = self._core.time_for(invoice["customer"])
            if "paid_out_of_band" in params and as_bool(params["paid_out_of_band"], "paid_out_of_band"):
                before = copy.deepcopy(sub) if sub is not None else None
                self._mark_paid(invoice, None, ctx, at)
                if sub is not None and before is not None:
                    self.settle(sub, invoice, "succeeded", at)
                    self._events.emit_changes("customer.subscription.updated", sub, before, ctx, created=at)
                return self._core.answer(invoice, params)
            outcome = self.pay_for_subscription(invoice, ctx, pm, at)
            if outcome != "succeeded":
                self.refuse(outcome)
            return self._core.answer(invoice, params)

    def retrieve_payment_intent(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/payment_intents/{id}."""
        return self._core.retrieve("payment_intent", id, params, label="payment_intent")

    def list_payment_intents(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/payment_intents (by ``customer``)."""
        with self._core.lock:
            check_known(params, ("customer", *PAGING))
            found = matching(list(self._core.tables["payment_intent"].values()), params, "customer")
            return self._core.paginate(found, params, "/v1/payment_intents")

    def confirm_payment_intent(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/payment_intents/{id}/confirm: try the card again (a 3-D Secure card comes back ``requires_action``)."""
        with self._core.lock:
            check_known(params, ("payment_method", "return_url", "off_session", "use_stripe_sdk"))
            pi = self._core.get("payment_intent", id, label="payment_intent")
            if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
                raise invalid_request(
                    f"This PaymentIntent's status is {pi['status']}, so it cannot be confirmed.",
                    code="payment_intent_unexpected_state",
                )
            customer = self._core.tables["customer"][pi["customer"]]
            pm_id = opt_str(params, "payment_method") or pi["payment_method"]
            pm = self._payment_methods.attached_to(customer, pm_id, "payment_method") if pm_id else None
            invoice = self._core.tables["invoice"][pi["invoice"]]
            outcome = self.pay_for_subscription(invoice, ctx, pm, self._core.time_for(pi["customer"]))
            if outcome in ("declined", "no_payment_method"):
                self.refuse(outcome)
            return self._core.answer(pi, params)

    def retrieve_charge(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/charges/{id}."""
        return self._core.retrieve("charge", id, params)

    def list_charges(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/charges (by ``customer``, ``payment_intent``)."""
        with self._core.lock:
            check_known(params, ("customer", "payment_intent", *PAGING))
            found = list(self._core.tables["charge"].values())
            for name in ("customer", "payment_intent"):
                found = matching(found, params, name)
            return self._core.paginate(found, params, "/v1/charges")

    def retrieve_dispute(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/disputes/{id}."""
        return self._core.retrieve("dispute", id, params)

    def list_disputes(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/disputes (by ``charge``, ``payment_intent``)."""
        with self._core.lock:
            check_known(params, ("charge", "payment_intent", *PAGING))
            found = list(self._core.tables["dispute"].values())
            for name in ("charge", "payment_intent"):
                found = matching(found, params, name)
            return self._core.paginate(found, params, "/v1/disputes")

    def update_dispute(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/disputes/{id}: add evidence and metadata; ``submit`` (default true, as Stripe) sends it.
        Submitted ``uncategorized_text`` ``winning_evidence`` / ``losing_evidence`` closes the dispute as
        won / lost at once, as in Stripe's test mode (``charge.dispute.updated``, ``charge.dispute.closed``)."""
        with self._core.lock:
            check_known(params, ("evidence", "metadata", "submit"))
            dispute = self._core.get("dispute", id)
            if dispute["status"] in _DISPUTE_CLOSED:
                raise invalid_request(f"This dispute is already closed ({dispute['status']}); it cannot be updated.")
            evidence = as_dict(params.get("evidence", {}), "evidence")
            for key, value in evidence.items():
                if key not in _EVIDENCE_FIELDS:
                    raise invalid_request(f"Received unknown parameter: evidence[{key}]", param=f"evidence[{key}]")
                evidence[key] = as_str(value, f"evidence[{key}]") or None
            submit = as_bool(params["submit"], "submit") if "submit" in params else True
            charge = self._core.tables["charge"][dispute["charge"]]
            at = self._core.time_for(charge["customer"])
            before = copy.deepcopy(dispute)
            dispute["evidence"] = {**dispute["evidence"], **evidence}
            dispute["metadata"] = merge_metadata(dispute["metadata"], params.get("metadata", {}))
            details = dispute["evidence_details"]
            details["has_evidence"] = any(v for v in dispute["evidence"].values())
            outcome = None
            if submit:
                details["submission_count"] += 1
                dispute["status"] = "under_review"
                outcome = DISPUTE_TEST_EVIDENCE.get(str(dispute["evidence"].get("uncategorized_text")))
            self._events.emit_changes("charge.dispute.updated", dispute, before, ctx, created=at)
            if outcome is not None:
                self._close(dispute, outcome, ctx, at)
            return self._core.answer(dispute, params)

    def close_dispute(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/disputes/{id}/close: accept the dispute (it is lost; ``charge.dispute.closed``)."""
        with self._core.lock:
            check_known(params, ())
            dispute = self._core.get("dispute", id)
            if dispute["status"] in _DISPUTE_CLOSED:
                raise invalid_request(f"Dispute {id} is already closed.")
            charge = self._core.tables["charge"][dispute["charge"]]
            self._close(dispute, "lost", ctx, self._core.time_for(charge["customer"]))
            return self._core.answer(dispute, params)

    def _close(self, dispute: Obj, status: str, ctx: RequestContext | None, at: int) -> None:
        """End a dispute ``won`` or ``lost``: a won one gives the charge its money back (``charge.dispute.closed``)."""
        dispute["status"] = status
        if status == "won":
            dispute["is_charge_refundable"] = True
        self._events.emit("charge.dispute.closed", dispute, ctx, created=at)
