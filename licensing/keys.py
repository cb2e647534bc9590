"""Ed25519-signed self-hosting licenses (verifiable offline) and package-repository keys derived by HMAC."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

BEGIN = "-----BEGIN LYSMORE LICENSE-----"
END = "-----END LYSMORE LICENSE-----"
LICENSE_VERSION = 1
HEX_KEY_PREFIX = "lys_hex_"


class InvalidLicense(ValueError):
    """A license that is malformed, signed by another key, or changed after signing."""


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


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes, the form to publish for offline checks."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return _b64e(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a public key given as PEM or as base64 of its 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_b64d(text))


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """A short fingerprint of the public key, written into licenses to name the key that signed them."""
    return hashlib.sha256(public_key_text(key).encode("ascii")).hexdigest()[:16]


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_license(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """The license file for ``payload``: armoured ``base64(json).base64(signature)``; deterministic."""
    body = dict(payload, v=LICENSE_VERSION, kid=key_id(key))
    data = _canonical(body)
    signature = key.sign(data)
    token = f"{_b64e(data)}.{_b64e(signature)}"
    lines = [token[i : i + 64] for i in range(0, len(token), 64)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def verify_license(text: str, public_key: Ed25519PublicKey | str) -> dict[str, Any]:
    """Check a license file offline against the public key; returns its payload or raises ``InvalidLicense``."""
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
    if not isinstance(payload, dict) or payload.get("v") != LICENSE_VERSION:
        raise InvalidLicense("unknown license version")
    if payload.get("kid") != key_id(key):
        raise InvalidLicense("the license names another signing key")
    return payload


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
