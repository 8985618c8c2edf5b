"""The time of day the site became aware of an adverse event (site wall-clock time).

With it the SAE reporting clock starts at the moment of awareness instead of the end of the
awareness day.

Revision ID: 0008_sae_awareness_time
Revises: 0007_overall_response_width
Create Date: 2026-11-27 08:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_sae_awareness_time"
down_revision = "0007_overall_response_width"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("adverse_events") as batch:
        batch.add_column(sa.Column("awareness_time", sa.Time(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("adverse_events") as batch:
        batch.drop_column("awareness_time")
