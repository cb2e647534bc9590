"""Licenses that expire: issue and re-issue in order, revoke and restore, the online status check and its rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from licensing import licenses
from licensing.app import LicensingApp
from licensing.keys import verify_license
from licensing.sandbox import StripeSandbox
from licensing.status import TokenBucket
from licensing.verify import check_license

from .stack import licensing_stack

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
P1 = T0 + timedelta(days=30)
P2 = P1 + timedelta(days=30)


def _issue(app: LicensingApp, account_id: int, *, plan: str = "monthly", seats: int = 1,
           period_end: datetime = P1, as_of: datetime = T0) -> licenses.Issued:
    with app.engine.connection() as c:
        return licenses.issue(
            c, app.q, app.signing_key(), instance=app.prefix, account_id=account_id, subscription_id="sub_t",
            license_key=app.license_key_of("sub_t"), plan=plan, seats=seats, period_end=period_end, as_of=as_of,
            grace_days=app.settings.license_grace_days, details={"customer": "lee@example.com"}, event="evt_t",
        )


def _revoke(app: LicensingApp, account_id: int, *, ends_at: datetime | None, as_of: datetime,
            final: bool = False) -> None:
    with app.engine.connection() as c:
        licenses.revoke(c, app.q, account_id=account_id, subscription_id="sub_t", plan="monthly", ends_at=ends_at,
                        as_of=as_of, final=final, event="evt_r")


def _restore(app: LicensingApp, as_of: datetime) -> None:
    with app.engine.connection() as c:
        licenses.restore(c, app.q, subscription_id="sub_t", as_of=as_of, event="evt_u")


def test_issue_is_idempotent_and_a_newer_state_is_never_replaced_by_an_older_one(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False, license_grace_days=3) as stack:
        app = stack.app
        account, _ = app.sign_up(email="lee@example.com", plan="monthly")
        first = _issue(app, account.id)
        assert first.outcome == "signed" and first.row["expires_at"] == P1 + timedelta(days=3)
        again = _issue(app, account.id)  # the same inputs: the same row and text
        assert again.outcome == "unchanged" and again.row["license"] == first.row["license"]

        payload = verify_license(first.row["license"], app.public_key())
        assert payload["key"] == app.license_key_of("sub_t") and payload["seats"] == 1
        assert (payload["issued_at"], payload["expires_at"]) == (T0.isoformat(), (P1 + timedelta(days=3)).isoformat())

        renewed = _issue(app, account.id, period_end=P2, as_of=P1)
        assert renewed.outcome == "signed" and renewed.row["expires_at"] == P2 + timedelta(days=3)
        late = _issue(app, account.id, period_end=P1, as_of=T0 + timedelta(days=1))  # an older period, delivered late
        assert late.outcome == "unchanged" and late.row["license"] == renewed.row["license"]

        upgraded = _issue(app, account.id, plan="yearly", seats=5, period_end=P2, as_of=P1 + timedelta(hours=1))
        assert upgraded.outcome == "signed"
        assert verify_license(upgraded.row["license"], app.public_key())["plan"] == "yearly"
        stale = _issue(app, account.id, plan="monthly", period_end=P2, as_of=P1 + timedelta(minutes=5))
        assert stale.outcome == "unchanged" and (stale.row["plan"], stale.row["seats"]) == ("yearly", 5)

        key = app.license_key_of("sub_t")
        assert app.license_status(key, now=P1) == {
            "status": "valid", "expires_at": (P2 + timedelta(days=3)).isoformat(), "ends_at": None}
        assert app.license_status(key, now=P2 + timedelta(days=3))["status"] == "expired"  # type: ignore[index]
        assert app.license_status("lic_" + "a" * 32) is None

        with pytest.raises(ValueError, match="seats"):
            _issue(app, account.id, seats=0)
        with pytest.raises(ValueError, match="already have expired"):
            _issue(app, account.id, period_end=T0, as_of=T0 + timedelta(days=10))


def test_a_plan_change_seen_later_is_signed_even_when_its_period_ends_sooner(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app = stack.app
        account, _ = app.sign_up(email="lee@example.com", plan="monthly")
        _issue(app, account.id, period_end=P1, as_of=T0)
        year_end = T0 + timedelta(days=365)
        moved = T0 + timedelta(days=10)
        assert _issue(app, account.id, plan="yearly", period_end=year_end, as_of=moved).outcome == "signed"
        # Back to monthly: the cycle restarts at the change, so the period ends long before the yearly one.
        back_end = moved + timedelta(days=30)
        back = _issue(app, account.id, plan="monthly", period_end=back_end, as_of=moved + timedelta(seconds=1))
        assert back.outcome == "signed" and back.row["expires_at"] == back_end + timedelta(days=7)
        assert verify_license(back.row["license"], app.public_key())["plan"] == "monthly"
        # The yearly state delivered again, older than the change back: left alone, though it ends later.
        late = _issue(app, account.id, plan="yearly", period_end=year_end, as_of=moved)
        assert late.outcome == "unchanged" and late.row["plan"] == "monthly"
        # The same plan with an earlier period end is an old renewal, never a change.
        old = _issue(app, account.id, plan="monthly", period_end=back_end - timedelta(days=1), as_of=moved + timedelta(days=1))
        assert old.outcome == "unchanged" and old.row["expires_at"] == back_end + timedelta(days=7)


def test_revoke_restore_and_final_revocation_in_any_order(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, start_node=False) as stack:
        app = stack.app
        account, _ = app.sign_up(email="lee@example.com", plan="monthly")
        key = app.license_key_of("sub_t")
        _issue(app, account.id, period_end=P2)

        # Cancel at the period end: valid until then, revoked after.
        _revoke(app, account.id, ends_at=P1, as_of=T0 + timedelta(days=1))
        assert app.license_status(key, now=T0 + timedelta(days=2)) == {
            "status": "valid", "expires_at": (P2 + timedelta(days=7)).isoformat(), "ends_at": P1.isoformat()}
        assert app.license_status(key, now=P1)["status"] == "revoked"  # type: ignore[index]
        assert _issue(app, account.id, period_end=P2 + timedelta(days=30), as_of=P2).outcome == "revoked"

        # Un-cancel seen later restores; the cancel delivered again (older) changes nothing.
        _restore(app, T0 + timedelta(days=3))
        _revoke(app, account.id, ends_at=P1, as_of=T0 + timedelta(days=1))
        assert app.license_status(key, now=P1)["status"] == "valid"  # type: ignore[index]
        _restore(app, T0 + timedelta(days=2))  # an older un-cancel: nothing to do, nothing breaks
        (row,) = stack.rows("licenses")
        assert row["revoked_at"] is None and row["restored_by_event"] == "evt_u"

        # The subscription ended: final, even when the un-cancel arrives after it.
        _revoke(app, account.id, ends_at=None, as_of=T0 + timedelta(days=4), final=True)
        _restore(app, T0 + timedelta(days=5))
        (row,) = stack.rows("licenses")
        assert row["revoked_at"] is not None and row["revoke_final"] is True
        assert app.license_status(key)["status"] == "revoked"  # type: ignore[index]


def test_signed_up_license_expires_after_period_end_plus_grace_and_answers_online(
    database_url: str, prefix: str, sandbox: StripeSandbox
) -> None:
    with licensing_stack(database_url, prefix, sandbox, status_burst=3, status_rate=0.01) as stack:
        app = stack.app
        _, job = app.sign_up(email="max@example.com", plan="yearly", payment_method=stack.payment_method())
        stack.wait_completed(job.id)
        stack.wait_workflows_done(1)
        mails = stack.sink.wait_for(lambda ms: any(m.subject.startswith("Welcome") for m in ms))
        welcome = next(m for m in mails if m.subject.startswith("Welcome"))
        text = welcome.attachments()["lysmore.license"]
        (sub,) = sandbox.store.objects("subscription")
        period_end = datetime.fromtimestamp(sub["items"]["data"][0]["current_period_end"], UTC)

        check = check_license(text, app.public_key())
        assert check.status == "valid" and check.expires_at == period_end + timedelta(days=7)
        assert (check.payload["plan"], check.payload["seats"]) == ("yearly", 1)
        assert check_license(text, app.public_key(), now=period_end + timedelta(days=7)).status == "expired"

        url = f"{stack.server.url}/licenses"
        with httpx.Client() as http:
            ok = http.get(f"{url}/{check.payload['key']}/status")
            assert ok.status_code == 200 and ok.json()["status"] == "valid"
            assert ok.json()["expires_at"] == check.expires_at.isoformat()  # type: ignore[union-attr]
            unknown = http.get(f"{url}/lic_{'b' * 32}/status")
            malformed = http.get(f"{url}/private-1/status")
            assert unknown.status_code == malformed.status_code == 404
            assert unknown.content == malformed.content  # nothing tells one from the other
            limited = http.get(f"{url}/{check.payload['key']}/status")  # the fourth within the burst of three
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_the_token_bucket_refills_per_client() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0], max_clients=2)
    assert bucket.take("a") == bucket.take("a") == 0.0
    assert bucket.take("a") == pytest.approx(0.5)
    assert bucket.take("b") == 0.0  # another client has its own bucket
    now[0] = 0.5
    assert bucket.take("a") == 0.0
    bucket.take("c")
    bucket.take("d")
    assert len(bucket._buckets) <= 2  # idle clients are forgotten, memory stays bounded
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
