"""The GCP data lifecycle: locks and freezes (study, centre, patient, form instance), principal
investigators per centre, e-signatures and their invalidations, SDV marks and their clearances.
New tables only; downgrade drops them.

Revision ID: 0013_lifecycle
Revises: 0012_forms_registry
Create Date: 2026-12-01 12:58:53.744950
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_lifecycle"
down_revision = "0012_forms_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principal_investigators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=False),
        sa.Column("printed_name", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name=op.f("fk_principal_investigators_centre_id_centres")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_principal_investigators_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal_investigators")),
        sa.UniqueConstraint(
            "user_id", "centre_id", name=op.f("uq_principal_investigators_user_id")
        ),
    )
    with op.batch_alter_table("principal_investigators", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_principal_investigators_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "record_locks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("table_name", sa.String(length=64), nullable=True),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("locked_by", sa.String(length=80), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlocked_by", sa.String(length=80), nullable=True),
        sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unlock_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["centres.id"], name=op.f("fk_record_locks_centre_id_centres")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_record_locks_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_locks")),
    )
    op.create_table(
        "sdv_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("verified_by", sa.String(length=80), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_sdv_marks_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sdv_marks")),
    )
    with op.batch_alter_table("sdv_marks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sdv_marks_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("printed_name", sa.String(length=120), nullable=False),
        sa.Column("meaning", sa.String(length=500), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("site_time", sa.String(length=40), nullable=False),
        sa.Column("values_sha256", sa.String(length=64), nullable=False),
        sa.Column("covered", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_signatures_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_signatures_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
    )
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signatures_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "sdv_clearances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sdv_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("change", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["sdv_id"], ["sdv_marks.id"], name=op.f("fk_sdv_clearances_sdv_id_sdv_marks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sdv_clearances")),
        sa.UniqueConstraint("sdv_id", name=op.f("uq_sdv_clearances_sdv_id")),
    )
    op.create_table(
        "signature_invalidations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signature_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("change", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["signature_id"],
            ["signatures.id"],
            name=op.f("fk_signature_invalidations_signature_id_signatures"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_invalidations")),
        sa.UniqueConstraint("signature_id", name=op.f("uq_signature_invalidations_signature_id")),
    )


def downgrade() -> None:
    op.drop_table("signature_invalidations")
    op.drop_table("sdv_clearances")
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signatures_patient_id"))

    op.drop_table("signatures")
    with op.batch_alter_table("sdv_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sdv_marks_patient_id"))

    op.drop_table("sdv_marks")
    op.drop_table("record_locks")
    with op.batch_alter_table("principal_investigators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_principal_investigators_user_id"))

    op.drop_table("principal_investigators")
