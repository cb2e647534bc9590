"""Who is using the dashboard and what they may do, answered by a configurable resolver.

A resolver is any object (or class, or dotted path to one) with some of these methods::

    resolve_user() -> str
    resolve_access(user) -> "all" | "read_only" | set of action names
    resolve_refresh(user) -> float | None   # seconds, or None for the dashboard's default

Missing methods fall back to ``DefaultResolver``: the OS login plus the SSH client address, and
full access. ``read_only=True`` on the command line always wins.
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .actions import PERMISSIONS


class DefaultResolver:
    """The OS user (with the SSH client address when there is one) may do everything."""

    def resolve_user(self) -> str:
        """``alice`` locally, ``alice@10.0.0.7`` over SSH."""
        try:
            user = getpass.getuser()
        except Exception:
            user = "unknown"
        ssh = os.environ.get("SSH_CLIENT") or os.environ.get("SSH_CONNECTION") or ""
        address = ssh.split()[0] if ssh.split() else ""
        return f"{user}@{address}" if address else user

    def resolve_access(self, user: str) -> str | Iterable[str]:
        """Everything."""
        return "all"

    def resolve_refresh(self, user: str) -> float | None:
        """No opinion: the dashboard's own rate."""
        return None


class ReadOnlyResolver(DefaultResolver):
    """Everyone may look, nobody may change anything."""

    def resolve_access(self, user: str) -> str | Iterable[str]:
        """Nothing that changes state."""
        return "read_only"


@dataclass(frozen=True, slots=True)
class Access:
    """The answer for one session: the user, their rights, and their refresh rate."""

    user: str
    rights: frozenset[str]
    read_only: bool
    refresh: float | None = None

    def may(self, permission: str | None) -> bool:
        """Whether this user may take an action needing ``permission`` (None: a read)."""
        if permission is None:
            return True
        return not self.read_only and permission in self.rights

    def why_not(self, permission: str) -> str:
        """A short reason for a denial, for the toast and the audit row."""
        if self.read_only:
            return "read-only"
        return f"not allowed to {permission.replace('_', ' ')}"


def load_resolver(resolver: Any) -> Any:
    """An instance from ``resolver``: None, an object, a class, or ``pkg.mod:Name``/``pkg.mod.Name``."""
    if resolver is None:
        return DefaultResolver()
    if isinstance(resolver, str):
        module_name, sep, attr = resolver.partition(":")
        if not sep:
            module_name, _, attr = resolver.rpartition(".")
        if not module_name or not attr:
            raise ValueError(f"resolver {resolver!r} must be a dotted path such as 'mypkg.auth:Resolver'")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load resolver {resolver!r}: {exc}") from None
        resolver = obj
    if isinstance(resolver, type):
        resolver = resolver()
    return resolver


def _rights(answer: Any) -> tuple[frozenset[str], bool]:
    if answer in ("all", True):
        return frozenset(PERMISSIONS), False
    if answer in ("read_only", "read-only", None, False):
        return frozenset(), True
    if isinstance(answer, str):
        answer = [answer]
    rights = frozenset(str(a) for a in answer) & frozenset(PERMISSIONS)
    return rights, not rights


def application_name(user: str) -> str:
    """What the dashboard's connections are called in ``pg_stat_activity``."""
    return f"lysmore-dashboard ({user})"


def resolve_access(resolver: Any, read_only: bool = False) -> Access:
    """Ask ``resolver`` (see ``load_resolver``) once and freeze the answer; errors mean read-only.
    An ``Access`` already resolved is the answer (read-only still applies)."""
    if isinstance(resolver, Access):
        return dataclasses.replace(resolver, read_only=True) if read_only else resolver
    default = DefaultResolver()
    instance = load_resolver(resolver)
    try:
        user = str(getattr(instance, "resolve_user", default.resolve_user)())
    except Exception:
        user = default.resolve_user()
    try:
        rights, ro = _rights(getattr(instance, "resolve_access", default.resolve_access)(user))
    except Exception:
        rights, ro = frozenset(), True
    try:
        refresh = getattr(instance, "resolve_refresh", default.resolve_refresh)(user)
        refresh = float(refresh) if refresh is not None else None
    except Exception:
        refresh = None
    if read_only:
        rights, ro = frozenset(), True
    return Access(user=user, rights=rights, read_only=ro, refresh=refresh)
