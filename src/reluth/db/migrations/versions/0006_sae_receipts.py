"""Pharmacovigilance receipts of serious adverse events (stop the 24-hour SAE clock).

Revision ID: 0006_sae_receipts
Revises: 0005_dosimetry_results
Create Date: 2026-11-27 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_sae_receipts"
down_revision = "0005_dosimetry_results"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sae_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adverse_event_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["adverse_event_id"],
            ["adverse_events.id"],
            name=op.f("fk_sae_receipts_adverse_event_id_adverse_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sae_receipts")),
    )
    op.create_index(
        op.f("ix_sae_receipts_adverse_event_id"),
        "sae_receipts",
        ["adverse_event_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sae_receipts_adverse_event_id"), table_name="sae_receipts")
    op.drop_table("sae_receipts")
