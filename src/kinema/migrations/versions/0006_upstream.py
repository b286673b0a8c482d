"""upstream engines: the engine of each job, a forwarded job's operation, seconds delivered

Revision ID: upstream
Revises: quotas
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "upstream"
down_revision: str | Sequence[str] | None = "quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("engine", sa.String(64), nullable=True))
        batch.add_column(sa.Column("upstream", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("usage_s", sa.Float(), nullable=True))
    op.create_index("ix_jobs_engine", "jobs", ["status", "engine"])
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished", table_name="jobs")
    op.drop_index("ix_jobs_engine", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("usage_s")
        batch.drop_column("upstream")
        batch.drop_column("engine")
