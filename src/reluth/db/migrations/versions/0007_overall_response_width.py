"""Widen tumour_assessments.overall_response to hold NON-CR/NON-PD (13 characters).

A central read of non-target disease only is scored NON-CR/NON-PD by the RECIST 1.1 engine;
VARCHAR(8) made PostgreSQL refuse the row (SQLite does not enforce the length).

Revision ID: 0007_overall_response_width
Revises: 0006_sae_receipts
Create Date: 2026-11-27 08:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_overall_response_width"
down_revision = "0006_sae_receipts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tumour_assessments") as batch:
        batch.alter_column(
            "overall_response",
            existing_type=sa.String(length=8),
            type_=sa.String(length=16),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("tumour_assessments") as batch:
        batch.alter_column(
            "overall_response",
            existing_type=sa.String(length=16),
            type_=sa.String(length=8),
            existing_nullable=True,
        )
