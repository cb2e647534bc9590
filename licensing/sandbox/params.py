"""Decoding of Stripe's form-encoded parameters (``metadata[plan]=x``, ``items[0][price]=y``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid_request, missing_parameter, unknown_parameter

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

Params = dict[str, Any]


def parse_form(raw: str) -> Params:
    """Decode a form-encoded body or query string into nested dicts and lists."""
    pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
    return build_nested(pairs)


def build_nested(pairs: Iterable[tuple[str, str]]) -> Params:
    """Turn ``(key, value)`` pairs with bracketed keys into a nested structure."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise invalid_request(f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node: dict[str, Any] = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":
                # Old-style arrays: expand[]=a&expand[]=b.
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                if isinstance(node.get(part), dict):
                    raise invalid_request(f"Invalid value for {key}.", param=key)
                node[part] = value
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    if child == "":
                        child = node[part] = {}
                    else:
                        raise invalid_request(f"Invalid value for {key}.", param=key)
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all indexes into lists, ordered by index."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def check_known(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse any top-level parameter outside ``allowed`` (``expand`` is always allowed)."""
    known = set(allowed) | {"expand"}
    for name in params:
        if name not in known:
            raise unknown_parameter(name)


def require(params: Mapping[str, Any], name: str) -> Any:
    """The value of a required parameter, or a 400."""
    value = params.get(name)
    if value is None or value == "":
        raise missing_parameter(name)
    return value


def as_str(value: Any, name: str) -> str:
    """A scalar string parameter."""
    if not isinstance(value, str):
        raise invalid_request(f"Invalid string: {name}", param=name)
    return value


def opt_str(params: Mapping[str, Any], name: str) -> str | None:
    """An optional string parameter (``None`` when absent, ``None`` when sent empty)."""
    if name not in params:
        return None
    value = as_str(params[name], name)
    return value or None


def as_int(value: Any, name: str) -> int:
    """An integer parameter."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise invalid_request(f"Invalid integer: {value!s}", param=name)


def as_bool(value: Any, name: str) -> bool:
    """A boolean parameter sent as ``true``/``false``."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise invalid_request(f"Invalid boolean: {value!s}", param=name)


def as_dict(value: Any, name: str) -> dict[str, Any]:
    """A hash parameter (an empty string counts as an empty hash)."""
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_request(f"Invalid hash: {name}", param=name)
    return value


def as_list(value: Any, name: str) -> list[Any]:
    """An array parameter (an empty string counts as an empty array)."""
    if value == "":
        return []
    if isinstance(value, dict) and not value:
        return []
    if not isinstance(value, list):
        raise invalid_request(f"Invalid array: {name}", param=name)
    return value


#: The fields of a Stripe address hash, in the order Stripe lists them.
ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def as_address(value: Any, name: str) -> dict[str, Any] | None:
    """An address hash with every field present (``None`` when unset), or ``None`` when sent empty."""
    if value == "":
        return None
    given = as_dict(value, name)
    for key in given:
        if key not in ADDRESS_FIELDS:
            raise unknown_parameter(f"{name}[{key}]")
    return {k: given.get(k) or None for k in ADDRESS_FIELDS}


def merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Apply a metadata update like Stripe: empty string clears all, empty value deletes a key."""
    if update == "":
        return {}
    changes = as_dict(update, "metadata")
    merged = dict(current)
    for key, value in changes.items():
        if not isinstance(value, str):
            raise invalid_request("Invalid metadata value.", param=f"metadata[{key}]")
        if len(key) > 40:
            raise invalid_request(
                "Metadata keys can have a maximum length of 40 characters.",
                param=f"metadata[{key}]",
            )
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 50:
        raise invalid_request("Metadata can have at most 50 keys.", param="metadata")
    return merged
