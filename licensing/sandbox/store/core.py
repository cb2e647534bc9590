"""The state every sandbox resource shares: one lock, the objects by kind in creation order, paging and expansion."""

from __future__ import annotations

import copy
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import invalid_request, resource_missing
from ..params import Params, as_int, as_list, as_str, check_known, opt_str

Obj = dict[str, Any]

#: Every kind of object the sandbox keeps (also the order ``expand`` looks them up in).
KINDS = (
    "customer",
    "payment_method",
    "product",
    "price",
    "subscription",
    "invoice",
    "payment_intent",
    "charge",
    "refund",
    "dispute",
    "test_clock",
    "event",
    "webhook_endpoint",
)

#: The cursor parameters every list endpoint accepts.
PAGING = ("limit", "starting_after", "ending_before")

_ALPHABET = string.ascii_letters + string.digits


def random_string(length: int, alphabet: str = _ALPHABET) -> str:
    """``length`` random characters from ``alphabet`` (ids, secrets, invoice prefixes)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    """A random Stripe-looking id such as ``cus_X1y2...``."""
    return f"{prefix}_" + random_string(length)


def now() -> int:
    """The current Unix time in whole seconds, as Stripe stamps objects."""
    return int(time.time())


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


def matching(objs: list[Obj], params: Params, name: str, parse: Callable[[Any, str], Any] = as_str) -> list[Obj]:
    """``objs`` whose field ``name`` equals the parameter of that name, or all of them when it was not sent."""
    if name not in params:
        return objs
    wanted = parse(params[name], name)
    return [o for o in objs if o[name] == wanted]


@dataclass(frozen=True)
class RequestContext:
    """What an operation knows about the API request that caused it (for events' ``request``)."""

    request_id: str | None = None
    idempotency_key: str | None = None
    api_version: str | None = None


class Core:
    """The sandbox's objects by kind under one re-entrant lock, with Stripe's paging and ``expand``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: Where the sandbox serves its pages (hosted invoices, 3-D Secure), set once it listens.
        self.base_url = "http://127.0.0.1"
        self.reset()

    def time_for(self, customer_id: str | None) -> int:
        """Now for ``customer_id``: its test clock's frozen time, or the wall clock."""
        customer = self.tables["customer"].get(customer_id or "")
        clock_id = customer.get("test_clock") if customer is not None else None
        clock = self.tables["test_clock"].get(clock_id or "")
        return int(clock["frozen_time"]) if clock is not None else now()

    def reset(self) -> None:
        """Forget every object (and every deleted object's stub)."""
        with self.lock:
            self._seq = 0
            self._order: dict[str, int] = {}
            self.tables: dict[str, dict[str, Obj]] = {kind: {} for kind in KINDS}
            self.deleted: dict[str, Obj] = {}

    def put(self, kind: str, obj: Obj) -> Obj:
        """Store ``obj`` as the newest object of ``kind``."""
        self._seq += 1
        self._order[obj["id"]] = self._seq
        self.tables[kind][obj["id"]] = obj
        return obj

    def get(self, kind: str, ident: str, *, label: str | None = None, param: str = "id") -> Obj:
        """The stored object (not a copy), or Stripe's ``No such <label>`` 404 (``label`` defaults to ``kind``)."""
        obj = self.tables[kind].get(ident)
        if obj is None:
            raise resource_missing(label or kind, ident, param=param)
        return obj

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` exist."""
        with self.lock:
            return len(self.tables[kind])

    def objects(self, kind: str) -> list[Obj]:
        """Copies of every object of ``kind``, oldest first."""
        with self.lock:
            found = sorted(self.tables[kind].values(), key=lambda o: self._order[o["id"]])
            return copy.deepcopy(found)

    def find(self, kind: str, ident: str) -> Obj | None:
        """A copy of one object, or ``None``."""
        with self.lock:
            obj = self.tables[kind].get(ident)
            return copy.deepcopy(obj) if obj is not None else None

    def answer(self, obj: Obj, params: Params) -> Obj:
        """What an API call returns for ``obj``: a copy, with what ``expand[]`` names expanded."""
        return self._expand(copy.deepcopy(obj), params)

    def retrieve(self, kind: str, ident: str, params: Params, *, label: str | None = None) -> Obj:
        """What ``GET /v1/<kind>s/{id}`` answers: the object, expanded as asked (the only parameter)."""
        with self.lock:
            check_known(params, ())
            return self.answer(self.get(kind, ident, label=label), params)

    def paginate(self, objs: Iterable[Obj], params: Params, url: str) -> Obj:
        """A Stripe list page of ``objs``, newest first, cut by ``limit``/``starting_after``/``ending_before``."""
        limit = as_int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise invalid_request("Invalid limit: must be between 1 and 100", param="limit")
        ordered = sorted(objs, key=lambda o: (o.get("created", 0), self._order[o["id"]]), reverse=True)
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
        return self._expand(result, params)

    def _expand(self, obj: Obj, params: Params) -> Obj:
        """Replace expandable ids named by ``expand[]`` with the objects they point to."""
        for path in as_list(params.get("expand", []), "expand"):
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
            raise invalid_request(f"This property cannot be expanded ({whole}).", param="expand")
        value = node[key]
        if isinstance(value, str):
            found = self._lookup_any(value)
            if found is None:
                if rest:
                    return
                raise invalid_request(f"This property cannot be expanded ({whole}).", param="expand")
            node[key] = value = copy.deepcopy(found)
        if rest:
            self._expand_path(value, rest, whole)

    def _lookup_any(self, ident: str) -> Obj | None:
        for objs in self.tables.values():
            if ident in objs:
                return objs[ident]
        return self.deleted.get(ident)
