"""The sandbox HTTP server: a Starlette app served by uvicorn on a loopback port in a thread."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import StripeApiError, authentication_error
from .faults import Fault, FaultPlan
from .idempotency import IdempotencyStore, SavedResponse
from .params import Params, parse_form
from .store import DEFAULT_API_VERSION, RequestContext, SandboxStore, new_id
from .webhooks import DEFAULT_RETRY_DELAYS, DeliveryAttempt, WebhookDispatcher

if TYPE_CHECKING:
    import stripe

log = logging.getLogger(__name__)

#: The API key the sandbox's helpers use by default; any ``sk_test_`` key is accepted.
DEFAULT_API_KEY = "sk_test_sandbox"
_TRANSPORT_KEY = "lysmore.sandbox.transport"
_ALL_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]

Handler = Callable[..., dict[str, Any]]


class _TransportExposingH11(H11Protocol):
    """uvicorn's h11 protocol, putting each connection's transport in the request scope's state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Remember the connection's transport so a ``drop`` fault can close it unanswered."""
        super().connection_made(transport)
        self.app_state = {**self.app_state, _TRANSPORT_KEY: transport}


class _DropConnection(Response):
    """A response that is never sent: the connection is closed instead, like a crash mid-answer."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Close the client's connection without writing a byte of the response."""
        transport = (scope.get("state") or {}).get(_TRANSPORT_KEY)
        if transport is None:
            raise RuntimeError("drop fault needs the sandbox's own uvicorn protocol")
        transport.close()
        # Wait until uvicorn has seen the disconnect, so it does not answer in our place.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(receive(), timeout=2.0)


@dataclass(frozen=True)
class RequestRecord:
    """One API request the sandbox received and what it did with it."""

    method: str
    path: str
    status: int | None
    request_id: str
    #: The key the client sent; only POSTs honour it (in Stripe a GET's or DELETE's key has no effect).
    idempotency_key: str | None
    replayed: bool
    fault: str | None
    at: float


@dataclass(frozen=True)
class WebhookEndpoint:
    """A webhook endpoint registered with the sandbox (the secret is kept out of ``repr``)."""

    id: str
    url: str
    enabled_events: tuple[str, ...]
    secret: str

    def __repr__(self) -> str:
        return f"WebhookEndpoint(id={self.id!r}, url={self.url!r}, enabled_events={self.enabled_events!r})"


def _dumps(body: Any) -> bytes:
    return json.dumps(body, indent=2).encode("utf-8")


class StripeSandbox:
    """A local Stripe-compatible API server for the ``stripe`` SDK (``with StripeSandbox() as sb:``), with faults and webhooks."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] | None = None,
        webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        webhook_timeout: float = 5.0,
        seed_catalog: bool = True,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._api_keys = frozenset(api_keys) if api_keys is not None else None
        self.store = SandboxStore(seed=seed_catalog)
        self.faults = FaultPlan()
        self.idempotency = IdempotencyStore()
        self.webhooks = WebhookDispatcher(
            retry_delays=webhook_retry_delays,
            timeout=webhook_timeout,
            on_delivered=self.store.event_log.delivered,
        )
        self.store.event_log.add_listener(self.webhooks.enqueue)
        self._log_lock = threading.Lock()
        self._log_cond = threading.Condition(self._log_lock)
        self._requests: list[RequestRecord] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The TCP port the sandbox listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the sandbox is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give the SDK, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> StripeSandbox:
        """Bind the port, start the server and webhook threads, and wait until requests are served."""
        if self._thread is not None:
            return self
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
        # without it every answer waits ~40 ms on delayed ACKs.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._sock = sock
        self._port = sock.getsockname()[1]
        self.store.base_url = self.url
        config = uvicorn.Config(
            self.app,
            http=_TransportExposingH11,
            ws="none",
            lifespan="off",
            loop="asyncio",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"stripe-sandbox-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Stripe sandbox server did not start")
            time.sleep(0.005)
        self.webhooks.start()
        log.info("Stripe sandbox listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, stop webhook delivery, and release the port (safe to call twice)."""
        self.webhooks.stop()
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("Stripe sandbox server thread did not stop within %.1fs", timeout)
        if sock is not None:
            sock.close()
        if thread is not None:
            log.info("Stripe sandbox on port %s stopped", self._port)

    def __enter__(self) -> StripeSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget all objects, events, idempotency keys, faults, requests and webhook endpoints."""
        self.store.reset()
        self.idempotency.clear()
        self.faults.clear()
        self.webhooks.clear()
        with self._log_lock:
            self._requests.clear()

    # ------------------------------------------------------------------ SDK helpers

    def client(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        max_network_retries: int = 0,
        timeout: float = 10.0,
    ) -> stripe.StripeClient:
        """A ``stripe.StripeClient`` pointed at this sandbox."""
        import stripe

        return stripe.StripeClient(
            api_key,
            base_addresses={"api": self.url},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def configure_stripe_module(self, api_key: str = DEFAULT_API_KEY) -> None:
        """Point the ``stripe`` module's globals (``api_base``, ``api_key``) at this sandbox."""
        import stripe

        stripe.api_base = self.url
        stripe.api_key = api_key

    # ------------------------------------------------------------------ webhooks

    def add_webhook_endpoint(
        self,
        url: str,
        secret: str | None = None,
        *,
        enabled_events: Iterable[str] | None = None,
    ) -> WebhookEndpoint:
        """Deliver future events (matching ``enabled_events``, default all) to ``url``, signed with ``secret``."""
        obj, secret = self.store.webhook_endpoints.add(url, secret=secret, enabled_events=enabled_events)
        return WebhookEndpoint(obj["id"], obj["url"], tuple(obj["enabled_events"]), secret)

    def remove_webhook_endpoint(self, endpoint_id: str) -> bool:
        """Stop delivering to an endpoint; ``False`` if it did not exist."""
        return self.store.webhook_endpoints.remove(endpoint_id)

    def hold_webhooks(self) -> None:
        """Keep events back from now on until :meth:`release_webhooks` (to deliver them out of order or twice)."""
        self.webhooks.hold()

    def release_webhooks(self, *, order: str = "fifo", duplicate: bool = False, seed: int | None = None) -> int:
        """Deliver the held events in ``order`` (``fifo``, ``reverse``, ``shuffle``), each twice if ``duplicate``."""
        return self.webhooks.release(order=order, duplicate=duplicate, seed=seed)

    # ------------------------------------------------------------------ test helpers (the customer's and bank's side)

    def authenticate_payment(self, payment_intent_id: str, *, succeed: bool = True) -> dict[str, Any]:
        """Finish (or fail) a payment intent's 3-D Secure step, as the customer would on its redirect page."""
        return self.store.billing.authenticate(payment_intent_id, succeed=succeed)

    def open_dispute(self, charge_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        """Open a dispute on a charge, as the card holder's bank would (``charge.dispute.created``)."""
        return self.store.billing.open_dispute(charge_id, reason=reason)

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook delivery (retries included) has finished."""
        return self.webhooks.wait_idle(timeout)

    @property
    def webhook_attempts(self) -> list[DeliveryAttempt]:
        """Every webhook delivery attempt so far, oldest first."""
        return self.webhooks.attempts

    # ------------------------------------------------------------------ request log

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request received so far, oldest first."""
        with self._log_lock:
            return list(self._requests)

    def request_count(self, path: str | None = None, method: str | None = None, *, prefix: bool = False) -> int:
        """How many requests hit ``path`` (exactly, or as a prefix) with ``method`` (any if ``None``)."""
        with self._log_lock:
            return self._count_locked(path, method, prefix)

    def request_counts(self) -> dict[str, int]:
        """Requests counted per ``"METHOD /path"``."""
        counts: dict[str, int] = {}
        with self._log_lock:
            for r in self._requests:
                key = f"{r.method} {r.path}"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def wait_for_requests(
        self,
        count: int,
        path: str | None = None,
        method: str | None = None,
        *,
        prefix: bool = False,
        timeout: float = 10.0,
    ) -> bool:
        """Block until :meth:`request_count` reaches ``count`` (requests are counted once answered)."""
        with self._log_cond:
            return self._log_cond.wait_for(
                lambda: self._count_locked(path, method, prefix) >= count, timeout
            )

    def _count_locked(self, path: str | None, method: str | None, prefix: bool) -> int:
        method = method.upper() if method else None
        return sum(
            1
            for r in self._requests
            if (method is None or r.method == method)
            and (path is None or (r.path.startswith(path) if prefix else r.path == path))
        )

    def _record(self, record: RequestRecord) -> None:
        with self._log_cond:
            self._requests.append(record)
            self._log_cond.notify_all()

    # ------------------------------------------------------------------ HTTP app

    def _build_app(self) -> Starlette:
        s = self.store
        api: list[tuple[str, str, Handler]] = [
            ("/v1/customers", "POST", s.customers.create_customer),
            ("/v1/customers", "GET", s.customers.list_customers),
            ("/v1/customers/{id}", "GET", s.customers.retrieve_customer),
            ("/v1/customers/{id}", "POST", s.customers.update_customer),
            ("/v1/customers/{id}", "DELETE", s.customers.delete_customer),
            ("/v1/customers/{id}/payment_methods", "GET", s.payment_methods.list_customer_payment_methods),
            ("/v1/payment_methods", "POST", s.payment_methods.create_payment_method),
            ("/v1/payment_methods", "GET", s.payment_methods.list_payment_methods),
            ("/v1/payment_methods/{id}", "GET", s.payment_methods.retrieve_payment_method),
            ("/v1/payment_methods/{id}", "POST", s.payment_methods.update_payment_method),
            ("/v1/payment_methods/{id}/attach", "POST", s.payment_methods.attach_payment_method),
            ("/v1/payment_methods/{id}/detach", "POST", s.payment_methods.detach_payment_method),
            ("/v1/products", "GET", s.catalog.list_products),
            ("/v1/products/{id}", "GET", s.catalog.retrieve_product),
            ("/v1/prices", "GET", s.catalog.list_prices),
            ("/v1/prices/{id}", "GET", s.catalog.retrieve_price),
            ("/v1/subscriptions", "POST", s.subscriptions.create_subscription),
            ("/v1/subscriptions", "GET", s.subscriptions.list_subscriptions),
            ("/v1/subscriptions/{id}", "GET", s.subscriptions.retrieve_subscription),
            ("/v1/subscriptions/{id}", "POST", s.subscriptions.update_subscription),
            ("/v1/subscriptions/{id}", "DELETE", s.subscriptions.cancel_subscription),
            ("/v1/invoices", "GET", s.billing.list_invoices),
            ("/v1/invoices/{id}", "GET", s.billing.retrieve_invoice),
            ("/v1/invoices/{id}/pay", "POST", s.billing.pay_invoice),
            ("/v1/payment_intents", "GET", s.billing.list_payment_intents),
            ("/v1/payment_intents/{id}", "GET", s.billing.retrieve_payment_intent),
            ("/v1/payment_intents/{id}/confirm", "POST", s.billing.confirm_payment_intent),
            ("/v1/charges", "GET", s.billing.list_charges),
            ("/v1/charges/{id}", "GET", s.billing.retrieve_charge),
            ("/v1/disputes", "GET", s.billing.list_disputes),
            ("/v1/disputes/{id}", "GET", s.billing.retrieve_dispute),
            ("/v1/disputes/{id}", "POST", s.billing.update_dispute),
            ("/v1/disputes/{id}/close", "POST", s.billing.close_dispute),
            ("/v1/refunds", "POST", s.refunds.create_refund),
            ("/v1/refunds", "GET", s.refunds.list_refunds),
            ("/v1/refunds/{id}", "GET", s.refunds.retrieve_refund),
            ("/v1/test_helpers/test_clocks", "POST", s.test_clocks.create_test_clock),
            ("/v1/test_helpers/test_clocks", "GET", s.test_clocks.list_test_clocks),
            ("/v1/test_helpers/test_clocks/{id}", "GET", s.test_clocks.retrieve_test_clock),
            ("/v1/test_helpers/test_clocks/{id}", "DELETE", s.test_clocks.delete_test_clock),
            ("/v1/test_helpers/test_clocks/{id}/advance", "POST", s.test_clocks.advance_test_clock),
            ("/v1/events", "GET", s.event_log.list_events),
            ("/v1/events/{id}", "GET", s.event_log.retrieve_event),
            ("/v1/webhook_endpoints", "POST", s.webhook_endpoints.create_webhook_endpoint),
            ("/v1/webhook_endpoints", "GET", s.webhook_endpoints.list_webhook_endpoints),
            ("/v1/webhook_endpoints/{id}", "GET", s.webhook_endpoints.retrieve_webhook_endpoint),
            ("/v1/webhook_endpoints/{id}", "POST", s.webhook_endpoints.update_webhook_endpoint),
            ("/v1/webhook_endpoints/{id}", "DELETE", s.webhook_endpoints.delete_webhook_endpoint),
        ]
        routes = [Route(path, self._endpoint(handler), methods=[method]) for path, method, handler in api]
        routes += [
            Route("/_sandbox/health", self._control_health, methods=["GET"]),
            Route("/_sandbox/faults", self._control_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sandbox/requests", self._control_requests, methods=["GET", "DELETE"]),
            Route("/_sandbox/reset", self._control_reset, methods=["POST"]),
            Route("/_sandbox/hosted/invoices/{id}", self._page_invoice, methods=["GET"]),
            Route("/_sandbox/3ds/{id}", self._page_3ds, methods=["GET", "POST"]),
            Route("/_sandbox/charges/{id}/dispute", self._control_dispute, methods=["POST"]),
            Route("/_sandbox/webhooks/hold", self._control_hold, methods=["POST"]),
            Route("/_sandbox/webhooks/release", self._control_release, methods=["POST"]),
            Route("/{rest:path}", self._endpoint(None), methods=_ALL_METHODS),
        ]
        return Starlette(routes=routes)

    def _endpoint(self, handler: Handler | None) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._dispatch(request, handler)

        return endpoint

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                key = base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
        if not key:
            raise authentication_error(
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
        if self._api_keys is not None:
            if key not in self._api_keys:
                log.warning("sandbox refused a request with an unknown API key")
                raise authentication_error("Invalid API Key provided.")
        elif not key.startswith(("sk_test_", "rk_test_")):
            log.warning("sandbox refused a request with a non-test API key")
            raise authentication_error(
                "Invalid API Key provided. The sandbox only accepts test mode keys (sk_test_...)."
            )
        return key

    def _response(
        self,
        status: int,
        body: bytes,
        request_id: str,
        *,
        api_version: str | None,
        idempotency_key: str | None = None,
        original_request: str | None = None,
        replayed: bool = False,
        extra: dict[str, str] | None = None,
    ) -> Response:
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": api_version or DEFAULT_API_VERSION,
            "Cache-Control": "no-cache, no-store",
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
            headers["Original-Request"] = original_request or request_id
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        headers.update(extra or {})
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    @staticmethod
    def _fault_error(fault: Fault) -> StripeApiError:
        extra = {}
        if fault.should_retry is not None:
            extra["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        if fault.kind == "429":
            return StripeApiError(
                429,
                "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
                headers=extra,
            )
        return StripeApiError(
            500,
            "api_error",
            "An unknown error occurred (injected by the sandbox).",
            headers=extra,
        )

    async def _dispatch(self, request: Request, handler: Handler | None) -> Response:
        method = request.method.upper()
        path = request.url.path
        request_id = new_id("req", 14)
        api_version = request.headers.get("stripe-version")
        idem_key = request.headers.get("idempotency-key") if method == "POST" else None
        fault = self.faults.take(method, path)
        fault_kind = fault.kind if fault is not None else None
        replayed = False
        api_key: str | None = None
        claimed = False
        status: int | None = None
        try:
            if fault is not None and fault.kind in ("429", "500"):
                raise self._fault_error(fault)
            if handler is None:
                raise StripeApiError(
                    404,
                    "invalid_request_error",
                    f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                    "or we can help at https://support.stripe.com/.",
                )
            api_key = self._authenticate(request)
            raw = (await request.body()).decode("utf-8") if method == "POST" else request.url.query
            params: Params = parse_form(raw)
            ctx = RequestContext(request_id, idem_key, api_version)
            if idem_key is not None:
                saved = self.idempotency.begin(api_key, idem_key, f"{method} {path}", params)
                if saved is not None:
                    replayed = True
                    status = saved.status
                    response = self._response(
                        saved.status,
                        saved.body,
                        request_id,
                        api_version=api_version,
                        idempotency_key=idem_key,
                        original_request=saved.request_id,
                        replayed=True,
                    )
                    log.info("sandbox %s %s -> %d (idempotent replay)", method, path, saved.status)
                    return self._maybe_drop(response, fault)
                claimed = True
            if fault is not None and fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            try:
                body = handler(params, ctx, **request.path_params)
            except StripeApiError as exc:
                if claimed:
                    saved_error = (
                        SavedResponse(exc.status, _dumps(exc.body()), request_id)
                        if exc.saved_for_idempotency
                        else None
                    )
                    self.idempotency.finish(api_key, idem_key or "", saved_error)
                    claimed = False
                raise
            payload = _dumps(body)
            if claimed:
                self.idempotency.finish(api_key, idem_key or "", SavedResponse(200, payload, request_id))
                claimed = False
            status = 200
            response = self._response(200, payload, request_id, api_version=api_version, idempotency_key=idem_key)
        except StripeApiError as exc:
            status = exc.status
            response = self._response(
                exc.status,
                _dumps(exc.body()),
                request_id,
                api_version=api_version,
                idempotency_key=idem_key,
                extra=exc.headers,
            )
        except Exception:
            log.exception("sandbox %s %s failed", method, path)
            if claimed and api_key is not None:
                self.idempotency.finish(api_key, idem_key or "", None)
                claimed = False
            status = 500
            response = self._response(
                500,
                _dumps({"error": {"type": "api_error", "message": "The sandbox failed unexpectedly."}}),
                request_id,
                api_version=api_version,
                idempotency_key=idem_key,
            )
        finally:
            if claimed and api_key is not None:
                # Cancelled mid-request (server stopping): release the key.
                self.idempotency.finish(api_key, idem_key or "", None)
            self._record(
                RequestRecord(method, path, status, request_id, request.headers.get("idempotency-key"), replayed,
                              fault_kind, time.time())
            )
        if status is not None and status >= 400:
            log.info("sandbox %s %s -> %d", method, path, status)
        else:
            log.debug("sandbox %s %s -> %s", method, path, status)
        return self._maybe_drop(response, fault)

    @staticmethod
    def _maybe_drop(response: Response, fault: Fault | None) -> Response:
        if fault is not None and fault.kind == "drop":
            log.info("sandbox dropping the connection instead of answering (injected fault)")
            return _DropConnection()
        return response

    # ------------------------------------------------------------------ control API

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(_dumps(body), status_code=status, media_type="application/json")

    async def _control_health(self, request: Request) -> Response:
        return self._json({"ok": True, "url": self.url})

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return self._json({"faults": []})
        if request.method == "POST":
            try:
                spec = json.loads(await request.body() or b"{}")
                specs = spec["faults"] if isinstance(spec, dict) and "faults" in spec else [spec]
                if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
                    raise ValueError("expected a fault object or {\"faults\": [...]}")
                added = [self.faults.add_from_mapping(s) for s in specs]
            except (ValueError, TypeError, KeyError) as exc:
                return self._json({"error": {"type": "invalid_request_error", "message": str(exc)}}, 400)
            return self._json({"faults": [f.to_dict() for f in added]})
        return self._json({"faults": [f.to_dict() for f in self.faults.pending()]})

    async def _control_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            with self._log_lock:
                self._requests.clear()
        return self._json({"counts": self.request_counts(), "total": len(self.requests)})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return self._json({"ok": True})

    async def _control_hold(self, request: Request) -> Response:
        self.hold_webhooks()
        return self._json({"holding": True})

    async def _control_release(self, request: Request) -> Response:
        try:
            spec = json.loads(await request.body() or b"{}")
            if not isinstance(spec, dict) or set(spec) - {"order", "duplicate", "seed"}:
                raise ValueError('expected {"order": "fifo|reverse|shuffle", "duplicate": bool, "seed": int}')
            count = self.release_webhooks(
                order=str(spec.get("order", "fifo")), duplicate=bool(spec.get("duplicate", False)), seed=spec.get("seed")
            )
        except ValueError as exc:
            return self._json({"error": {"type": "invalid_request_error", "message": str(exc)}}, 400)
        return self._json({"released": count})

    async def _control_dispute(self, request: Request) -> Response:
        try:
            spec = json.loads(await request.body() or b"{}")
            reason = str(spec.get("reason", "fraudulent")) if isinstance(spec, dict) else "fraudulent"
            return self._json(self.open_dispute(request.path_params["id"], reason=reason))
        except StripeApiError as exc:
            return self._json(exc.body(), exc.status)
        except ValueError as exc:
            return self._json({"error": {"type": "invalid_request_error", "message": str(exc)}}, 400)

    async def _page_invoice(self, request: Request) -> Response:
        invoice = self.store.get("invoice", request.path_params["id"])
        if invoice is None:
            return HTMLResponse("<h1>No such invoice</h1>", status_code=404)
        pi = self.store.get("payment_intent", invoice["payment_intent"] or "")
        action = ""
        if pi is not None and pi["status"] == "requires_action":
            action = f'<p><a href="/_sandbox/3ds/{html.escape(pi["id"])}">Confirm this payment (3-D Secure)</a></p>'
        body = (
            f"<h1>Invoice {html.escape(str(invoice['number']))}</h1>"
            f"<p>Amount due: {invoice['amount_due'] / 100:.2f} {html.escape(invoice['currency'].upper())}</p>"
            f"<p>Status: <strong>{html.escape(invoice['status'])}</strong></p>{action}"
        )
        return HTMLResponse(f"<!doctype html><title>Invoice</title>{body}")

    async def _page_3ds(self, request: Request) -> Response:
        pi_id = request.path_params["id"]
        if request.method == "POST":
            form = parse_form((await request.body()).decode("utf-8"))
            try:
                pi = self.authenticate_payment(pi_id, succeed=form.get("outcome", "complete") != "fail")
            except StripeApiError as exc:
                return HTMLResponse(f"<h1>{html.escape(exc.message)}</h1>", status_code=exc.status)
            return HTMLResponse(f"<!doctype html><h1>Payment {html.escape(pi['status'])}</h1>")
        found = self.store.get("payment_intent", pi_id)
        if found is None:
            return HTMLResponse("<h1>No such payment</h1>", status_code=404)
        pi = found
        forms = "".join(
            f'<form method="post"><input type="hidden" name="outcome" value="{v}"><button>{label}</button></form>'
            for v, label in (("complete", "Complete authentication"), ("fail", "Fail authentication"))
        )
        return HTMLResponse(
            f"<!doctype html><title>3-D Secure</title><h1>Authenticate {pi['amount'] / 100:.2f} "
            f"{html.escape(pi['currency'].upper())}</h1><p>Status: {html.escape(pi['status'])}</p>{forms}"
        )
