"""API keys: made here, shown once, stored only as Argon2id hashes (argon2-cffi).

A key reads ``tlk_<key_id>_<secret>``: ``key_id`` (12 hex digits) is public and finds the row;
``secret`` (32 random bytes, URL-safe base64) is checked against the stored Argon2id hash.
Argon2id is slow on purpose, so a key that verified once is remembered in this process by
the SHA-256 of the whole key text (never the text itself) next to the hash it verified
against; the row is still read on every request, so a revoked or rotated key is refused at
once.

Scopes: a tenant key has ``read`` and/or ``ingest`` for its one tenant; an administration key
has ``admin`` and no tenant (it reads every tenant, and sets and removes budgets).
"""

# Statements join only the constant _COLUMNS; values go as parameters:
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - a dataclass field
from typing import TYPE_CHECKING, Any, Literal

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tokenline.sink.errors import SinkError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import DictRow

__all__ = [
    "SCOPES",
    "ApiKey",
    "KeyError_",
    "KeyStore",
    "NewKey",
    "Scope",
    "parse_key",
]

Scope = Literal["read", "ingest", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "ingest", "admin")
_KEY = re.compile(r"^tlk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_HASHER = argon2.PasswordHasher()  # the library's defaults: Argon2id, RFC 9106 low-memory
_COLUMNS = "key_id, tenant_id, scopes, name, rate_limit_per_minute, created_at, revoked_at"
_LOOKUP = f"SELECT {_COLUMNS}, secret_hash FROM api_keys WHERE key_id = %s"


class KeyError_(SinkError):  # noqa: N801 - KeyError is a builtin
    """A key cannot be made, found or changed as asked."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    tenant_id: str | None
    scopes: tuple[Scope, ...]
    name: str | None
    rate_limit_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def admin(self) -> bool:
        """Whether this is an administration key (every tenant, no ingest)."""
        return "admin" in self.scopes

    def may(self, scope: Scope, tenant_id: str) -> bool:
        """Whether the key may ``scope`` (read or ingest) ``tenant_id``'s data."""
        if self.revoked_at is not None:
            return False
        if self.admin:
            return scope == "read"
        return self.tenant_id == tenant_id and scope in self.scopes

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        """Build from a row with :data:`_COLUMNS`."""
        return cls(
            key_id=row["key_id"],
            tenant_id=row["tenant_id"],
            scopes=tuple(row["scopes"]),
            name=row["name"],
            rate_limit_per_minute=row["rate_limit_per_minute"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


@dataclass(frozen=True)
class NewKey:
    """A key just made: its text is shown once and never stored."""

    key: ApiKey
    text: str


def parse_key(text: str) -> tuple[str, str] | None:
    """Return ``(key_id, secret)`` of a well-formed key text, else None."""
    match = _KEY.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


def _check_scopes(tenant_id: str | None, scopes: tuple[str, ...]) -> tuple[Scope, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        msg = f"scopes must be read, ingest or admin, got {', '.join(scopes) or 'none'}"
        raise KeyError_(msg)
    if ("admin" in scopes) != (tenant_id is None) or ("admin" in scopes and len(scopes) > 1):
        msg = "an admin key has no tenant and no other scope; a tenant key has read or ingest"
        raise KeyError_(msg)
    return tuple(dict.fromkeys(scopes))  # type: ignore[arg-type]


class KeyStore:
    """Keys in the ``api_keys`` table (revision 0007)."""

    def __init__(self) -> None:
        self._verified: dict[str, tuple[str, str]] = {}  # sha256(text) -> (key_id, hash)
        self._lock = threading.Lock()

    def create(
        self,
        conn: psycopg.Connection[DictRow],
        *,
        tenant_id: str | None,
        scopes: tuple[str, ...],
        name: str | None = None,
        rate_limit_per_minute: int | None = None,
        rotated_from: str | None = None,
    ) -> NewKey:
        """Make a key, store its hash, and return it with its text (shown once)."""
        checked = _check_scopes(tenant_id, scopes)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = conn.execute(
            "INSERT INTO api_keys (key_id, secret_hash, tenant_id, scopes, name, "
            "rate_limit_per_minute, rotated_from) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {_COLUMNS}",
            (
                key_id,
                _HASHER.hash(secret),
                tenant_id,
                list(checked),
                name,
                rate_limit_per_minute,
                rotated_from,
            ),
        ).fetchone()
        assert row is not None
        return NewKey(ApiKey.from_row(row), f"tlk_{key_id}_{secret}")

    def list(self, conn: psycopg.Connection[DictRow], tenant_id: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant_id`` when given), newest first; revoked ones included."""
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE %(t)s::text IS NULL OR tenant_id = %(t)s "
            "ORDER BY created_at DESC, key_id",
            {"t": tenant_id},
        ).fetchall()
        return [ApiKey.from_row(row) for row in rows]

    def revoke(self, conn: psycopg.Connection[DictRow], key_id: str) -> ApiKey:
        """Revoke ``key_id`` (its row stays, with the time); revoking twice keeps the first."""
        row = conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s "
            f"RETURNING {_COLUMNS}",
            (key_id,),
        ).fetchone()
        if row is None:
            msg = f"no key {key_id}"
            raise KeyError_(msg)
        return ApiKey.from_row(row)

    def rotate(self, conn: psycopg.Connection[DictRow], key_id: str) -> NewKey:
        """Make a key with the same tenant, scopes, name and limit, and revoke ``key_id``.

        Both happen in one transaction: the old key stops working when the new one exists.
        """
        with conn.transaction():
            old = conn.execute(
                "SELECT tenant_id, scopes, name, rate_limit_per_minute, revoked_at "
                "FROM api_keys WHERE key_id = %s FOR UPDATE",
                (key_id,),
            ).fetchone()
            if old is None or old["revoked_at"] is not None:
                msg = f"no active key {key_id}"
                raise KeyError_(msg)
            new = self.create(
                conn,
                tenant_id=old["tenant_id"],
                scopes=tuple(old["scopes"]),
                name=old["name"],
                rate_limit_per_minute=old["rate_limit_per_minute"],
                rotated_from=key_id,
            )
            self.revoke(conn, key_id)
        return new

    async def authenticate(
        self, conn: psycopg.AsyncConnection[DictRow], text: str
    ) -> ApiKey | None:
        """Return the active key ``text`` names and whose secret matches, else None.

        One read of the key's row, on the event loop; the Argon2id check (tens of ms, once per
        key and process) runs in a worker thread so that other requests go on meanwhile.
        """
        parsed = parse_key(text)
        if parsed is None:
            return None
        key_id, secret = parsed
        cursor = await conn.execute(_LOOKUP, (key_id,))
        row = await cursor.fetchone()
        if row is None or row["revoked_at"] is not None:
            return None
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            known = self._verified.get(digest)
        if known != (key_id, row["secret_hash"]):
            if not await asyncio.to_thread(_matches, row["secret_hash"], secret):
                return None
            with self._lock:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[digest] = (key_id, row["secret_hash"])
        return ApiKey.from_row(row)


def _matches(secret_hash: str, secret: str) -> bool:
    try:
        return _HASHER.verify(secret_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
