"""Ed25519-signed self-hosting licenses (verifiable offline, expiring) and package-repository keys derived by HMAC."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Verification lives in ``verify`` (vendorable: stdlib + cryptography only); re-exported here.
from .verify import (
    BEGIN,
    END,
    REQUIRED_V2,
    InvalidLicense,
    LicenseCheck,
    check_license,
    key_id,
    load_public_key,
    parse_time,
    public_key_text,
    verify_license,
)

__all__ = [
    "BEGIN", "END", "LICENSE_VERSION", "InvalidLicense", "LicenseCheck", "check_license", "generate_signing_key",
    "hex_key_display", "hex_key_for", "hex_key_hash", "key_id", "license_key_for", "load_public_key",
    "load_signing_key", "public_key_text", "sign_license", "verify_license",
]

LICENSE_VERSION = 2
HEX_KEY_PREFIX = "lys_hex_"
LICENSE_KEY_PREFIX = "lic_"


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_signing_key() -> str:
    """A new Ed25519 private key as base64 of its 32 raw bytes (the form the setting takes)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _b64e(raw)


def load_signing_key(text: str) -> Ed25519PrivateKey:
    """Parse a private key given as PEM (PKCS#8) or as base64 of its 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the license signing key is not an Ed25519 key")
        return key
    try:
        raw = _b64d(text)
    except (binascii.Error, ValueError):
        raise ValueError("the license signing key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise ValueError("the license signing key must be 32 raw bytes (base64) or PEM")
    return Ed25519PrivateKey.from_private_bytes(raw)


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_license(payload: dict[str, Any], key: Ed25519PrivateKey, *, version: int = LICENSE_VERSION) -> str:
    """The license file for ``payload``: armoured ``base64(json).base64(signature)``; deterministic.

    Version 2 (the default) needs ``license``, ``plan``, ``seats``, ``issued_at`` and ``expires_at``
    (ISO 8601 with a zone); ``version=1`` writes the old, non-expiring format (for tests of old files)."""
    if version >= 2:
        missing = [name for name in REQUIRED_V2 if name not in payload]
        if missing:
            raise ValueError(f"a license needs {', '.join(missing)}")
        if parse_time(payload["expires_at"], "expires_at") <= parse_time(payload["issued_at"], "issued_at"):
            raise ValueError("a license must expire after it is issued")
    body = dict(payload, v=version, kid=key_id(key))
    data = _canonical(body)
    signature = key.sign(data)
    token = f"{_b64e(data)}.{_b64e(signature)}"
    lines = [token[i : i + 64] for i in range(0, len(token), 64)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def license_key_for(secret: str, subscription_id: str) -> str:
    """The key a license is checked online by: HMAC of its subscription, unguessable and the same on every re-issue."""
    mac = hmac.new(secret.encode("utf-8"), f"lysmore-license:{subscription_id}".encode(), hashlib.sha256).digest()
    return LICENSE_KEY_PREFIX + base64.b32encode(mac).decode("ascii").rstrip("=").lower()[:32]


def hex_key_for(secret: str, subscription_id: str) -> str:
    """The package-repository key of a subscription: HMAC of its id, so every retry derives the same key."""
    mac = hmac.new(secret.encode("utf-8"), f"lysmore-hex:{subscription_id}".encode(), hashlib.sha256).digest()
    return HEX_KEY_PREFIX + base64.b32encode(mac).decode("ascii").rstrip("=").lower()[:40]


def hex_key_hash(key: str) -> str:
    """What is stored of a key: its SHA-256, so the table never holds a usable key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def hex_key_display(key: str) -> str:
    """The first characters of a key, enough to recognise it in a list."""
    return key[: len(HEX_KEY_PREFIX) + 6]
