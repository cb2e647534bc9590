"""The sandbox's in-memory Stripe objects: one module per Stripe resource over a small shared core.

``core`` holds what every resource shares (the lock, the objects by kind in creation order,
ids, paging, ``expand`` and each customer's time); ``catalog``, ``customers``, ``payment_methods``,
``subscriptions``, ``billing`` (invoices, payment intents, charges, disputes), ``refunds``,
``test_clocks``, ``events`` and ``webhook_endpoints`` each own one resource's rules and
its API handlers. The parts are composed, not mixed in: each is handed the core and the
few other parts it uses, so its dependencies are named in its constructor and run one way
(test clocks → customers → subscriptions → billing → catalog and payment methods → events →
webhook endpoints)
instead of being methods that a mixin assumes some sibling defines on ``self``. :class:`SandboxStore` only
wires the parts (the server routes each request to the part that owns it) and offers the
read-only views tests use.
"""

from __future__ import annotations

from ..errors import StripeApiError
from .billing import DISPUTE_TEST_EVIDENCE, DUNNING_RETRY_DAYS, Billing
from .catalog import Catalog
from .core import Core, Obj, RequestContext, diff_previous, new_id
from .customers import Customers
from .events import DEFAULT_API_VERSION, EventLog
from .payment_methods import PaymentMethods
from .refunds import Refunds
from .subscriptions import INCOMPLETE_EXPIRES_AFTER, Subscriptions, add_interval
from .test_clocks import TestClocks
from .webhook_endpoints import WebhookEndpoints, WebhookTarget


class SandboxStore:
    """Thread-safe in-memory state of the sandbox: customers, cards, prices, subscriptions, events."""

    def __init__(self, *, seed: bool = True) -> None:
        self._core = Core()
        self._seed = seed
        self.webhook_endpoints = WebhookEndpoints(self._core)
        self.event_log = EventLog(self._core, self.webhook_endpoints)
        self.catalog = Catalog(self._core)
        self.payment_methods = PaymentMethods(self._core, self.event_log)
        self.billing = Billing(self._core, self.event_log, self.payment_methods)
        self.refunds = Refunds(self._core, self.event_log)
        self.subscriptions = Subscriptions(
            self._core, self.event_log, self.catalog, self.payment_methods, self.billing
        )
        self.customers = Customers(self._core, self.event_log, self.payment_methods, self.subscriptions)
        self.test_clocks = TestClocks(self._core, self.event_log, self.subscriptions, self.billing)
        self.reset()

    @property
    def base_url(self) -> str:
        """Where the sandbox's pages (hosted invoices, 3-D Secure) are served."""
        return self._core.base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        self._core.base_url = url.rstrip("/")

    def reset(self) -> None:
        """Forget every object and event, then re-create the seed products and prices."""
        with self._core.lock:
            self._core.reset()
            self.webhook_endpoints.reset()
            self.billing.reset()
            if self._seed:
                self.catalog.seed()

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` (``customer``, ``subscription``, ``event``, ...) exist."""
        return self._core.count(kind)

    def objects(self, kind: str) -> list[Obj]:
        """Copies of every object of ``kind``, oldest first."""
        return self._core.objects(kind)

    def get(self, kind: str, ident: str) -> Obj | None:
        """A copy of one object, or ``None``."""
        return self._core.find(kind, ident)

    def events(self, type_: str | None = None) -> list[Obj]:
        """Copies of the recorded events (optionally of one type), oldest first."""
        return self.event_log.recorded(type_)


__all__ = [
    "DEFAULT_API_VERSION",
    "DISPUTE_TEST_EVIDENCE",
    "DUNNING_RETRY_DAYS",
    "INCOMPLETE_EXPIRES_AFTER",
    "RequestContext",
    "SandboxStore",
    "StripeApiError",
    "WebhookTarget",
    "add_interval",
    "diff_previous",
    "new_id",
]
