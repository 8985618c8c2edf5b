"""The lower limit of normal typed with a laboratory value, stored with it in the value's unit
(``lab_results.lln``), so that a correction re-grades with it (CTCAE v5.0
grade 1 of the "decreased" terms is below the LLN).

Revision ID: 0018_lab_lln
Revises: 0017_lifecycle2_edit_checks
Create Date: 2026-12-01 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_lab_lln"
down_revision = "0017_lifecycle2_edit_checks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lab_results") as batch:
        batch.add_column(sa.Column("lln", sa.Numeric(14, 4), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lab_results") as batch:
        batch.drop_column("lln")
