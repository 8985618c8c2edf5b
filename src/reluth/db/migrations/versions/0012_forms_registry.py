"""Form instances in the data lifecycle: queries linked to (form, record, field) with re-opening,
and missing-data codes (not done, not applicable, unknown, asked but unknown) with a reason.

Revision ID: 0012_forms_registry
Revises: 0011_audit_integrity
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_forms_registry"
down_revision = "0011_audit_integrity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("data_queries") as batch:
        batch.add_column(sa.Column("form_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("record_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("item", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("visit_code", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("reopened_by", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reopen_reason", sa.Text(), nullable=True))
        batch.create_index("ix_data_queries_form_record", ["form_id", "record_id"])
    op.create_table(
        "missing_data",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("visit_code", sa.String(length=32), nullable=True),
        sa.Column("item", sa.String(length=60), nullable=True),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_missing_data_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missing_data")),
    )
    op.create_index(op.f("ix_missing_data_patient_id"), "missing_data", ["patient_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_missing_data_patient_id"), table_name="missing_data")
    op.drop_table("missing_data")
    with op.batch_alter_table("data_queries") as batch:
        batch.drop_index("ix_data_queries_form_record")
        for column in (
            "reopen_reason",
            "reopened_at",
            "reopened_by",
            "visit_code",
            "item",
            "record_id",
            "form_id",
        ):
            batch.drop_column(column)
