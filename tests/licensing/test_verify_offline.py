"""Offline checks: ``lysmore licensing verify FILE`` (exit 0/1/2), old licenses, and a vendorable verify module."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import licensing.verify
from licensing.keys import generate_signing_key, load_signing_key, public_key_text, sign_license
from licensing.verify import BEGIN, END, InvalidLicense, check_license, key_id

ISSUED = datetime(2027, 1, 1, tzinfo=UTC)
EXPIRES = datetime(2027, 2, 8, tzinfo=UTC)
PAYLOAD = {"license": "private-7", "key": "lic_" + "c" * 32, "plan": "yearly", "seats": 3,
           "customer": "ivy@example.com", "subscription": "sub_7", "issued_at": ISSUED.isoformat(),
           "expires_at": EXPIRES.isoformat()}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LYSMORE_LICENSING_")}
    return subprocess.run([sys.executable, "-m", "lysmore", "licensing", "verify", *args], capture_output=True,
                          text=True, timeout=60, env={**clean, **(env or {})})


def test_verify_command_says_valid_expired_or_invalid_with_exit_codes(tmp_path: Path) -> None:
    secret = generate_signing_key()
    key = load_signing_key(secret)
    public = public_key_text(key)
    path = tmp_path / "lysmore.license"
    path.write_text(sign_license(PAYLOAD, key))

    ok = _cli(str(path), f"--public-key={public}", "--at", "2027-01-15T00:00:00+00:00")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("valid: license private-7 (yearly, 3 seat(s)) for ivy@example.com")
    assert EXPIRES.isoformat() in ok.stdout

    late = _cli(str(path), f"--public-key={public}", "--at", EXPIRES.isoformat())
    assert late.returncode == 1 and late.stdout.startswith("expired:") and EXPIRES.isoformat() in late.stdout
    # Without --public-key the app's signing key setting gives it; never printed.
    from_env = _cli(str(path), "--at", "2027-01-15T00:00:00+00:00",
                    env={"LYSMORE_LICENSING_LICENSE_SIGNING_KEY": secret})
    assert from_env.returncode == 0 and secret not in from_env.stdout + from_env.stderr

    other = public_key_text(load_signing_key(generate_signing_key()))
    bad = _cli(str(path), f"--public-key={other}")
    assert bad.returncode == 2 and bad.stdout.startswith("invalid:") and "signature" in bad.stdout
    tampered = tmp_path / "tampered.license"
    tampered.write_text(path.read_text().replace(path.read_text().splitlines()[1][:8], "AAAAAAAA", 1))
    assert _cli(str(tampered), f"--public-key={public}").returncode == 2

    missing = _cli(str(tmp_path / "nope.license"), f"--public-key={public}")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    no_key = _cli(str(path))
    assert no_key.returncode == 2 and "--public-key" in no_key.stderr
    naive = _cli(str(path), f"--public-key={public}", "--at", "2027-01-15")
    assert naive.returncode == 2 and "time zone" in naive.stderr


def test_old_licenses_without_expiry_still_verify_and_v2_needs_its_fields() -> None:
    key = load_signing_key(generate_signing_key())
    old = {k: v for k, v in PAYLOAD.items() if k not in ("expires_at", "seats", "key")}
    result = check_license(sign_license(old, key, version=1), public_key_text(key))
    assert result.status == "valid" and result.expires_at is None and result.payload["v"] == 1
    with pytest.raises(ValueError, match="expires_at"):
        sign_license(old, key)
    with pytest.raises(ValueError, match="expire after"):
        sign_license(dict(PAYLOAD, expires_at=ISSUED.isoformat()), key)
    # A v2 payload that lacks its expiry (signed by hand with the right key) is still refused.
    body = json.dumps(dict(old, v=2, kid=key_id(key)), sort_keys=True, separators=(",", ":")).encode()
    token = f"{_b64(body)}.{_b64(key.sign(body))}"
    with pytest.raises(InvalidLicense, match="lacks seats, expires_at"):
        check_license(f"{BEGIN}\n{token}\n{END}\n", public_key_text(key))
    assert check_license(sign_license(PAYLOAD, key), public_key_text(key), now=EXPIRES - timedelta(seconds=1)).valid


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_the_verify_module_runs_with_only_the_stdlib_and_cryptography(tmp_path: Path) -> None:
    vendored = tmp_path / "vendor"
    vendored.mkdir()
    shutil.copy(licensing.verify.__file__, vendored / "lysmore_verify.py")
    # cryptography and what it needs itself (cffi, pycparser), and nothing else from site-packages.
    site = Path(importlib.util.find_spec("cryptography").origin).parent.parent  # type: ignore[union-attr,arg-type]
    for entry in site.iterdir():
        if entry.name in ("cryptography", "cffi", "pycparser") or entry.name.startswith("_cffi_backend"):
            (vendored / entry.name).symlink_to(entry)
    key = load_signing_key(generate_signing_key())
    (tmp_path / "lysmore.license").write_text(sign_license(PAYLOAD, key))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(vendored)!r})
        from datetime import datetime, timezone
        import lysmore_verify
        text = open({str(tmp_path / "lysmore.license")!r}).read()
        result = lysmore_verify.check_license(text, {public_key_text(key)!r},
                                              now=datetime(2027, 1, 2, tzinfo=timezone.utc))
        ours = {{"licensing", "engine", "lysmore", "stripe", "pydantic"}} & {{m.split(".")[0] for m in sys.modules}}
        print(result.status, result.payload["plan"], sorted(ours))
    """)
    # -I: no environment, no user site, no current directory; -S: not even site-packages.
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["valid", "yearly", "[]"]
