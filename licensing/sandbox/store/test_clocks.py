"""Test clocks, like Stripe's: customers made on one live at its frozen time; advancing it runs what falls due."""

# Advancing runs, in time order, everything due up to the new time for the clock's customers'
# subscriptions (renewals with their invoices, cancellations at period end) and open invoices (dunning
# retries); each event is stamped with the moment it happened. Unlike Stripe, advancing is done when the
# request answers (status ``ready``), so no one has to poll.

from __future__ import annotations

import copy

from ..errors import invalid_request
from ..params import Params, as_int, check_known, opt_str, require
from .billing import Billing
from .core import PAGING, Core, Obj, RequestContext, new_id, now
from .events import EventLog
from .subscriptions import Subscriptions

_LABEL = "test_clock"
#: Stripe deletes a test clock 30 days after it was made.
_LIFETIME = 30 * 86400
#: A bound on the steps one advance may run, so a mistake cannot spin forever.
MAX_STEPS = 10_000


class TestClocks:
    """The test clocks and the advancing of time for their customers."""

    __test__ = False  # not a pytest class

    def __init__(self, core: Core, events: EventLog, subscriptions: Subscriptions, billing: Billing) -> None:
        self._core = core
        self._events = events
        self._subscriptions = subscriptions
        self._billing = billing

    def create_test_clock(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/test_helpers/test_clocks."""
        with self._core.lock:
            check_known(params, ("frozen_time", "name"))
            frozen = as_int(require(params, "frozen_time"), "frozen_time")
            created = now()
            clock = self._core.put(
                "test_clock",
                {
                    "id": new_id("clock"),
                    "object": "test_helpers.test_clock",
                    "created": created,
                    "deletes_after": created + _LIFETIME,
                    "frozen_time": frozen,
                    "livemode": False,
                    "name": opt_str(params, "name"),
                    "status": "ready",
                    "status_details": {},
                },
            )
            self._events.emit("test_helpers.test_clock.created", clock, ctx, created=created)
            return self._core.answer(clock, params)

    def retrieve_test_clock(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/test_helpers/test_clocks/{id}."""
        return self._core.retrieve("test_clock", id, params, label=_LABEL)

    def list_test_clocks(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/test_helpers/test_clocks."""
        with self._core.lock:
            check_known(params, PAGING)
            return self._core.paginate(self._core.tables["test_clock"].values(), params, "/v1/test_helpers/test_clocks")

    def delete_test_clock(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/test_helpers/test_clocks/{id}: the clock goes, and with it its customers and their objects."""
        with self._core.lock:
            check_known(params, ())
            self._core.get("test_clock", id, label=_LABEL)
            customers = {c for c, cus in self._core.tables["customer"].items() if cus.get("test_clock") == id}
            for kind in ("subscription", "invoice", "payment_intent", "charge", "payment_method"):
                table = self._core.tables[kind]
                for ident in [k for k, o in table.items() if o.get("customer") in customers]:
                    del table[ident]
            for ident in customers:
                del self._core.tables["customer"][ident]
                self._core.deleted[ident] = {"id": ident, "object": "customer", "deleted": True}
            clock = self._core.tables["test_clock"].pop(id)
            self._events.emit("test_helpers.test_clock.deleted", clock, ctx, created=now())
            return {"id": id, "object": "test_helpers.test_clock", "deleted": True}

    def advance_test_clock(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/test_helpers/test_clocks/{id}/advance: move to ``frozen_time``, running what falls due on the way."""
        with self._core.lock:
            check_known(params, ("frozen_time",))
            clock = self._core.get("test_clock", id, label=_LABEL)
            target = as_int(require(params, "frozen_time"), "frozen_time")
            if target <= clock["frozen_time"]:
                raise invalid_request(
                    "The frozen_time must be after the test clock's current frozen_time "
                    f"({clock['frozen_time']}).",
                    param="frozen_time",
                )
            self._events.emit("test_helpers.test_clock.advancing", dict(clock, status="advancing"), ctx, created=int(clock["frozen_time"]))
            for _ in range(MAX_STEPS):
                step = self._next_due(id, target)
                if step is None:
                    break
                at, kind, obj = step
                # Something overdue (a subscription brought back from unpaid after its period ended)
                # happens now, never in the clock's past.
                at = max(at, int(clock["frozen_time"]))
                clock["frozen_time"] = at
                if kind == "subscription":
                    self._subscriptions.act(obj, at)
                else:
                    self._billing.retry(obj, None, at)
            else:
                clock["status"] = "internal_failure"
                raise invalid_request(f"Advancing test clock {id} did not settle after {MAX_STEPS} steps.")
            clock["frozen_time"] = target
            self._events.emit("test_helpers.test_clock.ready", clock, ctx, created=target)
            return copy.deepcopy(clock)

    def _next_due(self, clock_id: str, until: int) -> tuple[int, str, Obj] | None:
        """The earliest thing due at or before ``until`` for the clock's customers (ties: subscriptions first)."""
        customers = {c for c, cus in self._core.tables["customer"].items() if cus.get("test_clock") == clock_id}
        found: list[tuple[int, int, str, Obj]] = []
        for sub in self._core.tables["subscription"].values():
            if sub["customer"] in customers:
                at = self._subscriptions.due(sub)
                if at is not None and at <= until:
                    found.append((at, 0, "subscription", sub))
        for invoice in self._core.tables["invoice"].values():
            attempt = invoice["next_payment_attempt"]
            owner = self._core.tables["subscription"].get(invoice["subscription"] or "")
            live = owner is not None and owner["status"] not in ("canceled", "incomplete_expired")
            if invoice["customer"] in customers and invoice["status"] == "open" and live and attempt is not None and attempt <= until:
                found.append((attempt, 1, "invoice", invoice))
        if not found:
            return None
        at, _, kind, obj = min(found, key=lambda f: (f[0], f[1]))
        return at, kind, obj
