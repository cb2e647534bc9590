"""Webhook endpoints: where events are delivered, with what secret, and ``/v1/webhook_endpoints``."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import invalid_request
from ..params import Params, as_bool, as_list, as_str, check_known, merge_metadata, opt_str, require
from .core import PAGING, Core, Obj, RequestContext, new_id, now, random_string

_LABEL = "webhook endpoint"


@dataclass(frozen=True)
class WebhookTarget:
    """Where one event is to be delivered: an endpoint's id, URL and signing secret."""

    endpoint_id: str
    url: str
    secret: str = field(repr=False)


def _url(raw: Any) -> str:
    url = as_str(raw, "url")
    if not url.startswith(("http://", "https://")):
        raise invalid_request("Invalid URL: must be an http or https URL.", param="url")
    return url


def _event_types(raw: Any) -> list[str]:
    return [as_str(e, "enabled_events") for e in as_list(raw, "enabled_events")]


class WebhookEndpoints:
    """The registered endpoints and their signing secrets (which are never stored on the endpoint object)."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._secrets: dict[str, str] = {}

    def reset(self) -> None:
        """Forget every signing secret (the endpoints themselves go with the core's reset)."""
        with self._core.lock:
            self._secrets.clear()

    def targets_for(self, event_type: str) -> list[WebhookTarget]:
        """The enabled endpoints whose ``enabled_events`` patterns match ``event_type``."""
        return [
            WebhookTarget(ep["id"], ep["url"], self._secrets[ep["id"]])
            for ep in self._core.tables["webhook_endpoint"].values()
            if ep["status"] == "enabled" and any(fnmatch.fnmatchcase(event_type, pat) for pat in ep["enabled_events"])
        ]

    def add(
        self,
        url: str,
        *,
        secret: str | None = None,
        enabled_events: Iterable[str] | None = None,
        description: str | None = None,
    ) -> tuple[Obj, str]:
        """Register a webhook endpoint; returns it with its signing secret."""
        with self._core.lock:
            secret = secret or "whsec_" + random_string(32)
            endpoint = self._core.put(
                "webhook_endpoint",
                {
                    "id": new_id("we"),
                    "object": "webhook_endpoint",
                    "api_version": None,
                    "application": None,
                    "created": now(),
                    "description": description,
                    "enabled_events": list(enabled_events or ["*"]),
                    "livemode": False,
                    "metadata": {},
                    "status": "enabled",
                    "url": url,
                },
            )
            self._secrets[endpoint["id"]] = secret
            return copy.deepcopy(endpoint), secret

    def remove(self, endpoint_id: str) -> bool:
        """Forget a webhook endpoint; ``False`` if there was none."""
        with self._core.lock:
            self._secrets.pop(endpoint_id, None)
            return self._core.tables["webhook_endpoint"].pop(endpoint_id, None) is not None

    def create_webhook_endpoint(self, params: Params, ctx: RequestContext) -> Obj:
        """POST /v1/webhook_endpoints; the answer carries the ``secret`` this once."""
        check_known(params, ("url", "enabled_events", "description", "metadata", "api_version"))
        url = _url(require(params, "url"))
        events = _event_types(require(params, "enabled_events"))
        if not events:
            raise invalid_request("Missing required param: enabled_events.", param="enabled_events")
        with self._core.lock:
            endpoint, secret = self.add(url, enabled_events=events, description=opt_str(params, "description"))
            stored = self._core.tables["webhook_endpoint"][endpoint["id"]]
            stored["metadata"] = merge_metadata({}, params.get("metadata", {}))
            stored["api_version"] = opt_str(params, "api_version")
            return dict(copy.deepcopy(stored), secret=secret)

    def retrieve_webhook_endpoint(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """GET /v1/webhook_endpoints/{id}."""
        with self._core.lock:
            check_known(params, ())
            return copy.deepcopy(self._core.get("webhook_endpoint", id, label=_LABEL))

    def update_webhook_endpoint(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """POST /v1/webhook_endpoints/{id}."""
        with self._core.lock:
            check_known(params, ("url", "enabled_events", "description", "metadata", "disabled"))
            endpoint = self._core.get("webhook_endpoint", id, label=_LABEL)
            if "url" in params:
                endpoint["url"] = _url(params["url"])
            if "enabled_events" in params:
                endpoint["enabled_events"] = _event_types(params["enabled_events"])
            if "description" in params:
                endpoint["description"] = opt_str(params, "description")
            if "metadata" in params:
                endpoint["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
            if "disabled" in params:
                endpoint["status"] = "disabled" if as_bool(params["disabled"], "disabled") else "enabled"
            return copy.deepcopy(endpoint)

    def list_webhook_endpoints(self, params: Params, ctx: RequestContext) -> Obj:
        """GET /v1/webhook_endpoints."""
        with self._core.lock:
            check_known(params, PAGING)
            return self._core.paginate(self._core.tables["webhook_endpoint"].values(), params, "/v1/webhook_endpoints")

    def delete_webhook_endpoint(self, params: Params, ctx: RequestContext, id: str) -> Obj:
        """DELETE /v1/webhook_endpoints/{id}."""
        with self._core.lock:
            check_known(params, ())
            self._core.get("webhook_endpoint", id, label=_LABEL)
            self.remove(id)
            return {"id": id, "object": "webhook_endpoint", "deleted": True}
