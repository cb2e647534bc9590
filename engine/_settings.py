"""Settings from the environment (``LYSMORE_*``) and an optional TOML file, via pydantic-settings."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ._errors import InvalidConfig

PREFIX_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a usable schema name, else raise ``InvalidConfig``."""
    if not isinstance(prefix, str) or not PREFIX_NAME.match(prefix):
        raise InvalidConfig(
            f"prefix {prefix!r} is not a valid schema name: use lowercase letters, digits and '_' "
            "(at most 48, not starting with a digit)"
        )
    return prefix


def config_file() -> Path | None:
    """The TOML file named by ``LYSMORE_CONFIG``, or ``./lysmore.toml`` when that exists."""
    named = os.environ.get("LYSMORE_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise InvalidConfig(f"LYSMORE_CONFIG names {named!r}, which is not a file")
        return path
    local = Path("lysmore.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    """Everything an Engine or the command line can be configured with."""

    model_config = SettingsConfigDict(env_prefix="LYSMORE_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset starts the embedded server."
    )
    prefix: str = Field(default="public", description="Schema holding this instance's tables.")
    node: str | None = Field(default=None, description="Readable node name; default host-pid.")
    data_dir: Path | None = Field(
        default=None, description="Where the embedded PostgreSQL keeps its data."
    )
    poll_interval: float = Field(default=1.0, gt=0, description="Seconds between fallback polls.")
    stage_interval: float = Field(default=1.0, gt=0, description="Seconds between stager runs.")
    heartbeat_interval: float = Field(default=1.0, gt=0, description="Seconds between heartbeats.")
    shutdown_grace: float = Field(default=15.0, ge=0, description="Default grace period on stop.")
    connect_timeout: float = Field(
        default=15.0, gt=0, description="Seconds to wait for PostgreSQL when first connecting."
    )
    listen_url: SecretStr | None = Field(
        default=None, description="A direct PostgreSQL URL for LISTEN when database_url goes through a pooler."
    )
    pooler: bool | None = Field(
        default=None, description="True behind a transaction pooler (PgBouncer); unset: detected at connect."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix_ok(cls, value: str) -> str:
        return check_prefix(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and file, with non-None ``overrides`` on top.

    A bad value raises ``InvalidConfig`` naming the setting, not pydantic's ``ValidationError``.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            + ("" if "database_url" in err["loc"] else f" (got {err.get('input')!r})")  # no secrets
            for err in exc.errors()
        )
        raise InvalidConfig(f"invalid settings: {problems}") from None


_URL_PASSWORD = re.compile(r"(://[^:/@?#\s]*:)[^@/?#\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)
# A keyword/value pair anywhere in a text (not a URL's query, masked above): password, sslpassword,
# PGPASSWORD, quoted ('p w', with \' inside) or not.
_KEYWORD_PASSWORD = re.compile(r"(?<![?&\w])((?:pg|ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s]*)",
                               re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` (or any text holding one) with every password replaced by ``***``, for logs, errors
    and the screen.

    Covers every form libpq takes, wherever it stands in the text: ``user:pw@`` and
    ``?password=`` in a URL, and ``password=...`` (quoted or not) in a keyword/value string.
    """
    text = _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
    return _KEYWORD_PASSWORD.sub(r"\1***", text)


def server_label(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL or keyword string, without user or password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # unparsable: a fragment of it could be a password with a space in it
        return "an unparsable connection string"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = parts.get("port")
    dbname = parts.get("dbname") or parts.get("user") or ""
    return redact_url(f"{host}{':' + str(port) if port else ''}/{dbname}")
