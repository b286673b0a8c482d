"""The database schema: jobs, API keys, webhook events and workers, as SQLAlchemy Core tables.

This metadata is what the Alembic migrations must produce (a test compares them), and
what ``JobStore`` and ``KeyStore`` query. Nothing else touches these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

from kinema.types import JobStatus

# Named constraints let later migrations (and SQLite batch mode) refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is stored in UTC and always read back timezone-aware.

    SQLite has no timezone-aware type, and its driver hands back naive values; storing
    naive UTC there (and ``timestamptz`` on PostgreSQL) keeps comparisons such as
    ``lease_until < now`` correct on both, and nobody above the store sees a naive time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),  # ApiKey.id
    Column("model", String(128), nullable=False),
    Column("dialect", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # JobStatus values
    Column("attempt", Integer, nullable=False),  # claims so far; fences every worker write
    Column("priority", Integer, nullable=False),
    Column("progress", Float, nullable=False),
    Column("request", JSON(none_as_null=True), nullable=False),  # GenerationRequest.to_json()
    Column("request_hash", String(64), nullable=False),
    Column("idempotency_key", String(255)),
    Column("cancel_requested", Boolean, nullable=False),
    Column("lease_until", UTCDateTime()),
    Column("worker_id", String(255)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("result", JSON(none_as_null=True)),  # VideoResult fields of the first output
    Column("outputs", JSON(none_as_null=True)),  # every output's VideoResult fields, in order
    Column("expires_at", UTCDateTime()),
    # The procrastinate job allowed to claim this row (scale-out dispatch only): each
    # transition into "queued" defers a new one and records its id here, so a stale
    # or duplicate procrastinate job finds a mismatch and does nothing.
    Column("dispatch_id", BigInteger),
    # The job whose video this one extends, remixes or edits (no foreign key: the source
    # may be deleted; the accepted job holds copies of what it needs from it).
    Column("source_job_id", String(64)),
    Column("source_kind", String(16)),
    Column("base_url", Text),  # of the creating request; links in its responses start so
    # The owner's nth waiting job (same model and priority) when it was queued: jobs are
    # taken by priority, then turn, then age, so owners take turns instead of one owner's
    # burst holding everyone else back.
    Column("queue_turn", Integer, nullable=False, server_default=text("1")),
    # The catalog engine that runs (or ran) the job: a model may list several, and an
    # upstream engine's jobs in flight are counted by it.
    Column("engine", String(64)),
    # A forwarded job's operation at its provider ({engine, ref, submitted_at,
    # submissions}), committed before the first poll so a restarted worker resumes it.
    Column("upstream", JSON(none_as_null=True)),
    Column("usage_s", Float),  # seconds of video delivered, set when the job succeeds
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    # Lookups by (owner, id) use the primary key, then compare the owner.
    Index(
        "ix_jobs_owner_idempotency_key",
        "owner",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index("ix_jobs_claim", "status", "priority", "created_at"),  # claim_next, any model
    Index("ix_jobs_queue", "status", "model", "priority", "created_at"),  # per-model claims
    Index("ix_jobs_lease", "status", "lease_until"),  # requeue_expired
    Index("ix_jobs_fair_queue", "status", "model", "priority", "queue_turn", "created_at"),
    Index("ix_jobs_owner_waiting", "owner", "status", "model", "priority"),  # queue_turn
    Index("ix_jobs_owner_created", "owner", "created_at", "id"),  # list pagination
    Index("ix_jobs_engine", "status", "engine"),  # upstream jobs in flight per engine
    Index("ix_jobs_finished", "finished_at"),  # usage reports
    Index("ix_jobs_source_job_id", "source_job_id"),  # the chain below a video
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("prefix", String(16), nullable=False),  # shown in lists; accepted by revoke
    Column("key_hash", String(64), nullable=False),  # sha256 hex of the plaintext key
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
    # The key's Standard Webhooks secret (whsec_...). Stored as is, not hashed: kinema
    # must sign with it.
    Column("webhook_secret", String(128)),
    # Quotas (null: unlimited): jobs queued or running at once, and seconds of video
    # requested in any 24 hours (failed and cancelled jobs do not count).
    Column("max_active_jobs", Integer),
    Column("max_video_s_per_day", Integer),
    Index("ix_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_api_keys_prefix", "prefix"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(64), primary_key=True),  # the webhook-id header, same on every retry
    Column("job_id", String(64), nullable=False),  # no foreign key: deleting a job keeps its log
    Column("owner", String(64), nullable=False),
    Column("dialect", String(32), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("body", LargeBinary),  # rendered at the first attempt, then sent as is
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("last_error", Text),
    Index("ix_webhook_events_due", "status", "next_attempt_at"),
    Index("ix_webhook_events_job", "job_id"),
)

workers = Table(
    "workers",
    metadata,
    # One row per live ``kinema worker`` process (scale-out): what it serves, renewed
    # every heartbeat. Status polls read it to say when no worker serves a queued model.
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("models", JSON(none_as_null=True), nullable=False),  # model ids; null = all
    Column("concurrency", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    Index("ix_workers_last_seen", "last_seen"),
)
