"""Dosimetry results per patient and administration cycle (region, quantity, value, SD, unit,
method), written through the audited dosimetry service.

Revision ID: 0005_dosimetry_results
Revises: 0004_imaging_catalogue
Create Date: 2026-11-27 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_dosimetry_results"
down_revision = "0004_imaging_catalogue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dose_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("administration_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("region_kind", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("sd", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_dose_results_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["administration_id"],
            ["administrations.id"],
            name=op.f("fk_dose_results_administration_id_administrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dose_results")),
        sa.UniqueConstraint(
            "patient_id",
            "cycle",
            "region",
            "quantity",
            "method",
            name=op.f("uq_dose_results_patient_id"),
        ),
    )
    op.create_index(
        op.f("ix_dose_results_patient_id"), "dose_results", ["patient_id"], unique=False
    )
    op.create_index(
        op.f("ix_dose_results_administration_id"),
        "dose_results",
        ["administration_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dose_results_administration_id"), table_name="dose_results")
    op.drop_index(op.f("ix_dose_results_patient_id"), table_name="dose_results")
    op.drop_table("dose_results")
