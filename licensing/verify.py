"""Offline check of a Lysmore license file: Ed25519 signature, format and expiry.

This module is meant to be copied into a customer's own code: it depends on the standard library and
``cryptography`` only, and imports nothing else from this project (a test proves it).

    from lysmore_verify import check_license
    result = check_license(open("lysmore.license").read(), PUBLIC_KEY)
    if result.status != "valid": ...

A license is ``-----BEGIN LYSMORE LICENSE-----``, the base64url of a canonical JSON payload, a dot,
the base64url of the Ed25519 signature of those JSON bytes, and ``-----END LYSMORE LICENSE-----``.
Version 2 payloads carry ``issued_at`` and ``expires_at`` (ISO 8601, UTC), ``plan`` and ``seats``;
version 1 payloads (issued before licenses expired) have no expiry and are reported as ``valid``
with ``expires_at`` None.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

BEGIN = "-----BEGIN LYSMORE LICENSE-----"
END = "-----END LYSMORE LICENSE-----"
VERSIONS = (1, 2)
#: Fields a version 2 payload must have.
REQUIRED_V2 = ("license", "plan", "seats", "issued_at", "expires_at")


class InvalidLicense(ValueError):
    """A license that is malformed, signed by another key, or changed after signing."""


@dataclass(frozen=True)
class LicenseCheck:
    """What an offline check found: ``status`` is ``valid`` or ``expired``; ``expires_at`` None means no expiry (v1)."""

    status: str
    payload: dict[str, Any]
    expires_at: datetime | None

    @property
    def valid(self) -> bool:
        """Whether the license may be used now."""
        return self.status == "valid"


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a public key given as PEM or as base64 of its 32 raw bytes; ``ValueError`` names the problem."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = _b64d(text)
    except (binascii.Error, ValueError):
        raise ValueError("the public key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise ValueError("the public key must be 32 raw bytes (base64) or PEM")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes, the form to publish for offline checks."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return _b64e(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """A short fingerprint of the public key, written into licenses to name the key that signed them."""
    return hashlib.sha256(public_key_text(key).encode("ascii")).hexdigest()[:16]


def parse_time(value: object, name: str) -> datetime:
    """An ISO 8601 timestamp with a zone, as an aware datetime; ``InvalidLicense`` otherwise."""
    if not isinstance(value, str):
        raise InvalidLicense(f"the license's {name} is not a timestamp")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidLicense(f"the license's {name} is not a timestamp") from None
    if when.tzinfo is None:
        raise InvalidLicense(f"the license's {name} has no time zone")
    return when.astimezone(UTC)


def verify_license(text: str, public_key: Ed25519PublicKey | str) -> dict[str, Any]:
    """Check a license's signature and format (not its expiry); returns its payload or raises ``InvalidLicense``."""
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    stripped = text.strip()
    if not stripped.startswith(BEGIN) or not stripped.endswith(END):
        raise InvalidLicense("not a Lysmore license file")
    token = "".join(stripped[len(BEGIN) : -len(END)].split())
    data_b64, dot, sig_b64 = token.partition(".")
    if not dot:
        raise InvalidLicense("the license has no signature")
    try:
        data, signature = _b64d(data_b64), _b64d(sig_b64)
    except (binascii.Error, ValueError):
        raise InvalidLicense("the license is not valid base64") from None
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise InvalidLicense("the license signature does not match (another key, or changed)") from None
    try:
        payload = json.loads(data)
    except ValueError:
        raise InvalidLicense("the license payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("v") not in VERSIONS:
        raise InvalidLicense("unknown license version")
    if payload.get("kid") != key_id(key):
        raise InvalidLicense("the license names another signing key")
    if payload["v"] >= 2:
        missing = [name for name in REQUIRED_V2 if name not in payload]
        if missing:
            raise InvalidLicense(f"the license lacks {', '.join(missing)}")
        parse_time(payload["issued_at"], "issued_at")
        parse_time(payload["expires_at"], "expires_at")
    return payload


def check_license(
    text: str, public_key: Ed25519PublicKey | str, *, now: datetime | None = None, leeway: timedelta = timedelta(0)
) -> LicenseCheck:
    """Verify a license and compare its expiry with ``now`` (default: the clock); raises ``InvalidLicense``."""
    payload = verify_license(text, public_key)
    if payload["v"] < 2:
        return LicenseCheck("valid", payload, None)
    expires = parse_time(payload["expires_at"], "expires_at")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    return LicenseCheck("valid" if current < expires + leeway else "expired", payload, expires)
