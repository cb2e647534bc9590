"""Offline license verification, package key derivation, and settings that keep secrets secret."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from engine import InvalidConfig
from licensing.keys import (
    InvalidLicense,
    generate_signing_key,
    hex_key_for,
    load_signing_key,
    public_key_text,
    sign_license,
    verify_license,
)
from licensing.settings import LicensingSettings, load_licensing_settings

PAYLOAD = {"license": "private-1", "product": "lysmore-pro", "plan": "yearly", "seats": 1, "customer": "ada@example.com",
           "subscription": "sub_1", "issued_at": "2026-01-01T00:00:00+00:00",
           "expires_at": "2027-01-08T00:00:00+00:00"}


def test_a_license_verifies_offline_with_the_public_key_only() -> None:
    key = load_signing_key(generate_signing_key())
    text = sign_license(PAYLOAD, key)
    assert text == sign_license(PAYLOAD, key)  # deterministic: a retry signs the same file
    payload = verify_license(text, public_key_text(key))
    assert {k: payload[k] for k in PAYLOAD} == PAYLOAD


def test_changed_or_foreign_licenses_are_refused() -> None:
    key = load_signing_key(generate_signing_key())
    other = load_signing_key(generate_signing_key())
    text = sign_license(PAYLOAD, key)
    with pytest.raises(InvalidLicense, match="signature"):
        verify_license(text, public_key_text(other))
    forged = sign_license(dict(PAYLOAD, plan="enterprise"), other)
    with pytest.raises(InvalidLicense):
        verify_license(forged, public_key_text(key))
    lines = text.splitlines()
    body = lines[1]
    tampered = "\n".join([lines[0], body[:10] + ("A" if body[10] != "A" else "B") + body[11:], *lines[2:]])
    with pytest.raises(InvalidLicense):
        verify_license(tampered, public_key_text(key))
    for junk in ("", "hello", "-----BEGIN LYSMORE LICENSE-----\nabc\n-----END LYSMORE LICENSE-----"):
        with pytest.raises(InvalidLicense):
            verify_license(junk, public_key_text(key))


def test_signing_keys_load_from_pem_too() -> None:
    raw = generate_signing_key()
    key = load_signing_key(raw)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert public_key_text(load_signing_key(pem)) == public_key_text(key)
    with pytest.raises(ValueError):
        load_signing_key("not a key")


def test_package_keys_are_derived_per_subscription_and_secret() -> None:
    a = hex_key_for("secret-1", "sub_1")
    assert a == hex_key_for("secret-1", "sub_1") and a.startswith("lys_hex_")
    assert a != hex_key_for("secret-1", "sub_2") and a != hex_key_for("secret-2", "sub_1")


def test_settings_hide_secrets_and_bound_the_tolerance() -> None:
    secret = "sk_test_" + "x" * 24
    s = LicensingSettings(stripe_api_key=secret, webhook_secret="whsec_abc", smtp_password="pw-123")  # type: ignore[arg-type]
    for shown in (repr(s), str(s), s.model_dump_json()):
        assert secret not in shown and "whsec_abc" not in shown and "pw-123" not in shown
    assert set(s.secret_values()) == {secret, "whsec_abc", "pw-123"}
    with pytest.raises(ValidationError):
        LicensingSettings(webhook_tolerance=301)
    with pytest.raises(InvalidConfig) as err:
        load_licensing_settings(prefix="Bad-Prefix", stripe_api_key=secret)
    assert "prefix" in str(err.value) and secret not in str(err.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LYSMORE_LICENSING_PREFIX", "private_b")
    monkeypatch.setenv("LYSMORE_LICENSING_STRIPE_API_KEY", "sk_test_env")
    monkeypatch.setenv("LYSMORE_LICENSING_QUEUE_LIMIT", "5")
    s = load_licensing_settings()
    assert (s.prefix, s.app_schema, s.queue_limit) == ("private_b", "private_b_licensing", 5)
    assert s.stripe_api_key is not None and s.stripe_api_key.get_secret_value() == "sk_test_env"
