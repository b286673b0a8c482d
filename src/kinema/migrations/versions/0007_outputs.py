"""several outputs per job, and the job an extension or remix came from

Existing finished jobs get their one video as a one-element ``outputs`` list.

Revision ID: outputs
Revises: upstream
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "outputs"
down_revision: str | Sequence[str] | None = "upstream"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONE_OUTPUT = {
    "sqlite": "UPDATE jobs SET outputs = json_array(json(result)) WHERE result IS NOT NULL",
    "postgresql": "UPDATE jobs SET outputs = json_build_array(result) WHERE result IS NOT NULL",
}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("outputs", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("source_job_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("source_kind", sa.String(16), nullable=True))
    op.create_index("ix_jobs_source_job_id", "jobs", ["source_job_id"])
    op.execute(_ONE_OUTPUT[op.get_bind().dialect.name])


def downgrade() -> None:
    op.drop_index("ix_jobs_source_job_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("source_kind")
        batch.drop_column("source_job_id")
        batch.drop_column("outputs")
