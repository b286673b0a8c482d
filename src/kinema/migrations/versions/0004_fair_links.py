"""the base URL a job's links start with, and its turn in the fair queue

Revision ID: fair_links
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fair_links"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("base_url", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("queue_turn", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
    op.create_index(
        "ix_jobs_fair_queue", "jobs", ["status", "model", "priority", "queue_turn", "created_at"]
    )
    op.create_index("ix_jobs_owner_waiting", "jobs", ["owner", "status", "model", "priority"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_waiting", table_name="jobs")
    op.drop_index("ix_jobs_fair_queue", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queue_turn")
        batch.drop_column("base_url")
