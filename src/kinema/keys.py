"""API keys: created once, stored only as a hash, looked up by that hash.

A key's plaintext is shown at creation and never again. Verification hashes what the
client sent and looks the hash up through a unique index, so there is no comparison of
secrets whose timing could leak them; sha256 suffices because keys are 256 random bits,
not guessable passwords.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, or_, select, update

from kinema.db import begin_write
from kinema.errors import InvalidRequest, NotFound
from kinema.schema import api_keys

KEY_PREFIX = "kin_"
ANONYMOUS_OWNER = "anonymous"  # every request's owner while authentication is disabled
_SHOWN_CHARS = 12  # of the plaintext, kept to tell keys apart in lists
_MAX_KEY_CHARS = 256  # longer tokens are not ours; reject before hashing
# Recording every use would make each API request a database write; once a minute
# is precise enough to tell which keys are still in use.
_LAST_USED_RESOLUTION = timedelta(minutes=1)

SECRET_PREFIX = "whsec_"  # every key's webhook secret, in Standard Webhooks' format


def new_secret() -> str:
    """A webhook signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiKey:
    """An API key as lists show it. ``id`` is the owner of every job made with it."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    max_active_jobs: int | None = None  # jobs queued or running at once; None: unlimited
    max_video_s_per_day: int | None = None  # seconds of video per 24 hours; None: unlimited

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


class KeyStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def create(self, name: str) -> tuple[ApiKey, str]:
        """Make a key; returns it with its plaintext, which is not stored anywhere."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        values = {
            "id": uuid.uuid4().hex,
            "name": name,
            "prefix": plaintext[:_SHOWN_CHARS],
            "key_hash": hash_key(plaintext),
            "created_at": self._clock(),
            "webhook_secret": new_secret(),
        }
        with begin_write(self._engine) as connection:
            row = connection.execute(api_keys.insert().values(values).returning(*api_keys.c)).one()
        return _to_key(row), plaintext

    def webhook_secret(self, key_id: str) -> str:
        """The key's Standard Webhooks signing secret (``whsec_...``), made on first use
        for keys created before kinema signed webhooks."""
        query = select(api_keys.c.webhook_secret).where(api_keys.c.id == key_id)
        with begin_write(self._engine) as connection:
            if connection.scalar(select(api_keys.c.id).where(api_keys.c.id == key_id)) is None:
                raise NotFound(f"no API key {key_id!r}")
            connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.webhook_secret.is_(None))
                .values(webhook_secret=new_secret())
            )
            return str(connection.scalar(query))

    def list(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        with self._engine.connect() as connection:
            return [_to_key(row) for row in connection.execute(query)]

    def revoke(self, key_id_or_prefix: str) -> ApiKey:
        """Revoke the key with this id, shown prefix or plaintext; revoking twice is harmless."""
        match = or_(
            api_keys.c.id == key_id_or_prefix,
            api_keys.c.prefix == key_id_or_prefix,
            api_keys.c.key_hash == hash_key(key_id_or_prefix),
        )
        with begin_write(self._engine) as connection:
            rows = connection.execute(select(api_keys).where(match)).all()
            if not rows:
                raise NotFound(f"no API key {key_id_or_prefix!r}")
            if len(rows) > 1:
                raise InvalidRequest(f"{key_id_or_prefix!r} matches several keys; use the id")
            key = _to_key(rows[0])
            if key.revoked_at is not None:
                return key
            row = connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key.id)
                .values(revoked_at=self._clock())
                .returning(*api_keys.c)
            ).one()
        return _to_key(row)

    def set_quota(
        self,
        key_id_or_prefix: str,
        *,
        max_active_jobs: int | None,
        max_video_s_per_day: int | None,
    ) -> ApiKey:
        """Set both quotas of a key (None lifts one); returns the key as now stored."""
        for name, value in (
            ("max_active_jobs", max_active_jobs),
            ("max_video_s_per_day", max_video_s_per_day),
        ):
            if value is not None and value < 0:
                raise InvalidRequest.for_field(name, "must be 0 or more (or unset for no limit)")
        key = self.find(key_id_or_prefix)
        with begin_write(self._engine) as connection:
            row = connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key.id)
                .values(max_active_jobs=max_active_jobs, max_video_s_per_day=max_video_s_per_day)
                .returning(*api_keys.c)
            ).one()
        return _to_key(row)

    def find(self, key_id_or_prefix: str) -> ApiKey:
        """The one key with this id or shown prefix; NotFound or ambiguous otherwise."""
        match = or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix)
        with self._engine.connect() as connection:
            rows = connection.execute(select(api_keys).where(match)).all()
        if not rows:
            raise NotFound(f"no API key {key_id_or_prefix!r}")
        if len(rows) > 1:
            raise InvalidRequest(f"{key_id_or_prefix!r} matches several keys; use the id")
        return _to_key(rows[0])

    def verify(self, plaintext: str) -> ApiKey | None:
        """The live key whose plaintext this is, or None (unknown, malformed or revoked)."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > _MAX_KEY_CHARS:
            return None
        query = select(api_keys).where(api_keys.c.key_hash == hash_key(plaintext))
        with self._engine.connect() as connection:
            row = connection.execute(query).one_or_none()
        if row is None:
            return None
        key = _to_key(row)
        if key.revoked_at is not None:
            return None
        now = self._clock()
        if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_RESOLUTION:
            self._touch(key.id, now)
        return key

    def _touch(self, key_id: str, now: datetime) -> None:
        # Conditional, so many requests arriving together write once between them.
        stale = or_(
            api_keys.c.last_used_at.is_(None),
            api_keys.c.last_used_at <= now - _LAST_USED_RESOLUTION,
        )
        with begin_write(self._engine) as connection:
            connection.execute(
                update(api_keys).where(api_keys.c.id == key_id, stale).values(last_used_at=now)
            )


def _to_key(row: Row[Any]) -> ApiKey:
    data = row._mapping
    return ApiKey(
        id=data["id"],
        name=data["name"],
        prefix=data["prefix"],
        created_at=data["created_at"],
        revoked_at=data["revoked_at"],
        last_used_at=data["last_used_at"],
        max_active_jobs=data["max_active_jobs"],
        max_video_s_per_day=data["max_video_s_per_day"],
    )
