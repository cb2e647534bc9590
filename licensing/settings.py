"""Settings of the licensing app, from ``LYSMORE_LICENSING_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine import InvalidConfig

PREFIX_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

#: The settings that hold secrets: never logged, never put in job args, errors or the dashboard.
SECRET_FIELDS = (
    "database_url",
    "stripe_api_key",
    "webhook_secret",
    "license_signing_key",
    "hex_key_secret",
    "smtp_password",
    "monitor_webhook_url",
    "monitor_webhook_secret",
    "monitor_sentry_dsn",
)


class LicensingSettings(BaseSettings):
    """Everything the licensing app is configured with; secrets are ``SecretStr`` and print as stars."""

    model_config = SettingsConfigDict(env_prefix="LYSMORE_LICENSING_", extra="ignore")

    # -- the private instance ------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset falls back to LYSMORE_DATABASE_URL, then embedded."
    )
    prefix: str = Field(default="private", description="Engine schema; app tables live in '<prefix>_licensing'.")
    node: str | None = Field(default=None, description="Readable node name; default host-pid.")
    queue_limit: int = Field(default=3, ge=1, description="Local limit of the 'default' queue.")
    pool_size: int = Field(default=12, ge=4, description="Database connections of this process.")
    poll_interval: float | None = Field(default=None, gt=0, description="Engine fallback poll seconds.")
    stage_interval: float | None = Field(default=None, gt=0, description="Engine stager seconds.")
    heartbeat_interval: float | None = Field(default=None, gt=0, description="Engine heartbeat seconds.")
    node_ttl: float = Field(default=5.0, gt=0, description="Seconds without heartbeat before the lifeline rescues.")
    leader_lease: float = Field(default=5.0, gt=0, description="Seconds of the leadership lease.")
    job_backoff: float | None = Field(
        default=None, ge=0, description="Fixed retry backoff in seconds (tests); unset uses the engine's curve."
    )
    lock_snooze: float = Field(default=1.0, gt=0, description="Snooze when another job holds the account.")

    # -- Stripe --------------------------------------------------------------------------------
    stripe_api_key: SecretStr | None = Field(
        default=None, description="Stripe secret key; unset makes `serve` start the local sandbox."
    )
    stripe_api_base: str | None = Field(default=None, description="Another Stripe API base URL (a sandbox).")
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10, description="SDK retries (same key).")
    stripe_timeout: float = Field(default=20.0, gt=0, description="Seconds per Stripe request.")
    price_monthly: str = Field(default="price_monthly", description="Stripe price of the monthly plan.")
    price_yearly: str = Field(default="price_yearly", description="Stripe price of the yearly plan.")

    # -- webhooks ------------------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(default=None, description="Signing secret (whsec_...).")
    webhook_tolerance: int = Field(default=300, ge=1, le=300, description="Max age of a signature, seconds.")
    webhook_max_bytes: int = Field(default=1_048_576, ge=1024, description="Largest body accepted.")
    public_url: str | None = Field(
        default=None, description="Base URL Stripe reaches this app at (registered with the sandbox)."
    )

    # -- keys and licenses ---------------------------------------------------------------------
    license_signing_key: SecretStr | None = Field(
        default=None, description="Ed25519 private key: PEM, or base64 of the 32 raw bytes."
    )
    hex_key_secret: SecretStr | None = Field(
        default=None, description="HMAC secret package-repository keys are derived with."
    )
    product: str = Field(default="lysmore-pro", description="Product named in licenses and keys.")
    license_grace_days: float = Field(
        default=7.0, ge=0, le=365, description="Days a license stays valid past the subscription's period end."
    )
    status_rate: float = Field(
        default=1.0, gt=0, description="License status checks refilled per second, per client address."
    )
    status_burst: int = Field(default=20, ge=1, description="License status checks a client may make at once.")

    # -- mail ----------------------------------------------------------------------------------
    smtp_host: str | None = Field(default=None, description="SMTP server; unset makes `serve` start a sink.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_from: str = Field(default="Lysmore <licenses@lysmore.dev>")
    team_email: str = Field(default="team@lysmore.dev", description="Where new-subscriber notes go.")

    # -- error monitoring (the engine's reporter, on this private instance) ---------------------
    monitor_mail: bool = Field(
        default=True, description="Mail failures, discards, stale acks and lost nodes through the app's mailer."
    )
    monitor_mail_to: str | None = Field(default=None, description="Where monitoring mail goes; unset: team_email.")
    monitor_webhook_url: SecretStr | None = Field(
        default=None, description="Also POST each notification as JSON here (the URL may hold a token)."
    )
    monitor_webhook_secret: SecretStr | None = Field(
        default=None, description="Sign webhook notifications with this (X-Lysmore-Signature, HMAC-SHA256)."
    )
    monitor_sentry_dsn: SecretStr | None = Field(
        default=None, description="Also send each notification to Sentry (needs the monitoring extra)."
    )
    monitor_window: float = Field(
        default=60.0, gt=0, description="Seconds a group's repeats are held back and the rate limit's window."
    )
    monitor_limit: int = Field(default=10, ge=1, description="Notifications per window per channel.")
    monitor_failures: bool = Field(
        default=False, description="Also notify of failed attempts that will be retried (not only discards)."
    )

    # -- serve ---------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `serve` listens on (0: any).")

    @model_validator(mode="after")
    def _ttl_covers_heartbeats(self) -> LicensingSettings:
        beat = self.heartbeat_interval if self.heartbeat_interval is not None else 1.0
        if self.node_ttl < 3 * beat:
            raise ValueError("node_ttl must be at least three heartbeat intervals, or live nodes get rescued")
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix_ok(cls, value: str) -> str:
        if not PREFIX_NAME.match(value):
            raise ValueError("use lowercase letters, digits and '_' (at most 48, not starting with a digit)")
        return value

    @property
    def app_schema(self) -> str:
        """The schema holding the app's own tables (accounts, plans, events, keys, licenses, mails)."""
        return f"{self.prefix}_licensing"

    @property
    def plans(self) -> dict[str, str]:
        """Plan name to Stripe price id."""
        return {"monthly": self.price_monthly, "yearly": self.price_yearly}

    def secret_values(self) -> list[str]:
        """The plain values of every secret that is set (for tests that prove none leaks)."""
        values = []
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


def load_licensing_settings(**overrides: object) -> LicensingSettings:
    """Settings from the environment with non-None ``overrides``; errors name the setting, never a secret."""
    try:
        return LicensingSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            + ("" if set(map(str, err["loc"])) & set(SECRET_FIELDS) else f" (got {err.get('input')!r})")
            for err in exc.errors()
        )
        raise InvalidConfig(f"invalid licensing settings: {problems}") from None
