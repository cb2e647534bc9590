"""Events: recording what changed, telling the listeners (webhook delivery), and ``/v1/events``."""

from __future__ import annotations

import copy
import fnmatch
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import invalid_request
from ..params import Params, as_list, as_str, check_known
from .core import PAGING, Core, Obj, RequestContext, diff_previous, new_id, now
from .webhook_endpoints import WebhookEndpoints, WebhookTarget

log = logging.getLogger(__name__)

#: The API version stamped on events when the request named none.
DEFAULT_API_VERSION = "2026-10-28.endive"

EventListener = Callable[[Obj, list[WebhookTarget]], None]


class EventLog:
    """Every event the sandbox recorded, and the listeners each new one is handed to with its webhook targets."""

    def __init__(self, core: Core, endpoints: WebhookEndpoints) -> None:
        self._core = core
        self._endpoints = endpoints
        self._listeners: list[EventListener] = []

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event, targets)`` for every event recorded from now on."""
        with self._core.lock:
            self._listeners.append(listener)

    def emit(
        self,
        type_: str,
        obj: Obj,
        ctx: RequestContext | None,
        previous: Mapping[str, Any] | None = None,
        *,
        created: int | None = None,
    ) -> Obj:
        """Record an event of ``type_`` about ``obj`` (as it is now) and hand it to the listeners.

        ``created`` defaults to the time of the object's customer (its test clock's, if any).
        """
        ctx = ctx or RequestContext()
        targets = self._endpoints.targets_for(type_)
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(dict(previous))
        event = self._core.put(
            "event",
            {
                "id": new_id("evt"),
                "object": "event",
                "api_version": ctx.api_version or DEFAULT_API_VERSION,
                "created": created if created is not None else self._created_for(obj),
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

    def _created_for(self, obj: Obj) -> int:
        owner = obj.get("customer") if obj.get("object") != "customer" else obj.get("id")
        return self._core.time_for(owner) if isinstance(owner, str) else now()

    def emit_changes(
        self, type_: str, obj: Obj, before: Obj, ctx: RequestContext | None, *, created: int | None = None
    ) -> None:
        """Record an ``*.updated`` event with ``previous_attributes``, unless nothing changed since ``before``."""
        previous = diff_previous(before, obj)
        if previous:
            self.emit(type_, obj, ctx, previous, created=created)

    def delivered(self, event_id: str) -> None:
        """Count one successful delivery of ``event_id`` off its ``pending_webhooks``."""
        with self._core.lock:
            event = self._core.tables["event"].get(event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    def recorded(self, type_: str | None = None) -> list[Obj]:
        """Copies of the recorded events (optionally of one type), oldest first."""
        return [e for e in self._core.objects("event") if type_ is None or e["type"] == type_]

    def retrieve_event(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/events/{id}."""
        with self._core.lock:
            check_known(params, ())
            return copy.deepcopy(self._core.get("event", id, label="event"))

    def list_events(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/events, filtered by ``type`` (``*`` wildcards allowed) or ``types[]``."""
        with self._core.lock:
            check_known(params, ("type", "types", *PAGING))
            found = list(self._core.tables["event"].values())
            if "type" in params and "types" in params:
                raise invalid_request("You may only specify one of these parameters: type, types.", param="types")
            if "type" in params:
                pattern = as_str(params["type"], "type")
                found = [e for e in found if fnmatch.fnmatchcase(e["type"], pattern)]
            if "types" in params:
                wanted = {as_str(t, "types") for t in as_list(params["types"], "types")}
                found = [e for e in found if e["type"] in wanted]
            return self._core.paginate(found, params, "/v1/events")
