"""Central image store catalogue (dosimetry study): series with QC status, and their
content-addressed instances. Patients are referred to by pseudonym only.

Revision ID: 0004_imaging_catalogue
Revises: 0003_data_queries
Create Date: 2026-11-27 05:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_imaging_catalogue"
down_revision = "0003_data_queries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_pseudonym", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=True),
        sa.Column("time_point", sa.String(length=16), nullable=False),
        sa.Column("interval_h", sa.String(length=16), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("qc_status", sa.String(length=8), nullable=False),
        sa.Column("qc_reasons", sa.Text(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imaging_series")),
        sa.UniqueConstraint("series_uid", name=op.f("uq_imaging_series_series_uid")),
    )
    op.create_index(
        op.f("ix_imaging_series_study_uid"), "imaging_series", ["study_uid"], unique=False
    )
    op.create_index(
        op.f("ix_imaging_series_patient_pseudonym"),
        "imaging_series",
        ["patient_pseudonym"],
        unique=False,
    )
    op.create_table(
        "imaging_instance",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["imaging_series.id"],
            name=op.f("fk_imaging_instance_series_id_imaging_series"),
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_imaging_instance")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_imaging_instance_sop_instance_uid")),
    )
    op.create_index(
        op.f("ix_imaging_instance_series_id"), "imaging_instance", ["series_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_imaging_instance_series_id"), table_name="imaging_instance")
    op.drop_table("imaging_instance")
    op.drop_index(op.f("ix_imaging_series_patient_pseudonym"), table_name="imaging_series")
    op.drop_index(op.f("ix_imaging_series_study_uid"), table_name="imaging_series")
    op.drop_table("imaging_series")
