"""Pharmacovigilance: ICH E2A seriousness and MedDRA coding of adverse events, SAE reports
(initial and numbered follow-ups) and the sponsor's assessments (SUSAR and its submission);
randomizations recorded from the backup procedure; the e-mail outbox and the accounts'
addresses.

Revision ID: 0014_pharmacovigilance
Revises: 0013_lifecycle
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_pharmacovigilance"
down_revision = "0013_lifecycle"
branch_labels = None
depends_on = None

_AE_COLUMNS = (
    ("seriousness", 120),
    ("meddra_term", 120),
    ("meddra_llt_code", 10),
    ("meddra_pt_code", 10),
    ("meddra_soc", 120),
    ("coding_dictionary", 60),
)


def upgrade() -> None:
    with op.batch_alter_table("adverse_events") as batch:
        for name, length in _AE_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    op.create_table(
        "sae_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adverse_event_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_by", sa.String(length=80), nullable=False),
        sa.Column("seriousness", sa.String(length=120), nullable=False),
        sa.Column("narrative", sa.Text(), nullable=False),
        sa.Column("action_taken", sa.String(length=24), nullable=False),
        sa.Column("treatment", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["adverse_event_id"],
            ["adverse_events.id"],
            name=op.f("fk_sae_reports_adverse_event_id_adverse_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sae_reports")),
        sa.UniqueConstraint(
            "adverse_event_id", "sequence", name=op.f("uq_sae_reports_adverse_event_id")
        ),
    )
    op.create_index(
        op.f("ix_sae_reports_adverse_event_id"), "sae_reports", ["adverse_event_id"], unique=False
    )
    op.create_table(
        "sae_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("causality", sa.String(length=16), nullable=False),
        sa.Column("expectedness", sa.String(length=16), nullable=False),
        sa.Column("rsi_document", sa.String(length=200), nullable=False),
        sa.Column("rsi_version", sa.String(length=60), nullable=False),
        sa.Column("susar", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assessed_by", sa.String(length=80), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submission_reference", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"], ["sae_reports.id"], name=op.f("fk_sae_assessments_report_id_sae_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sae_assessments")),
    )
    op.create_index(
        op.f("ix_sae_assessments_report_id"), "sae_assessments", ["report_id"], unique=True
    )

    op.create_table(
        "backup_randomizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("randomization_id", sa.Integer(), nullable=False),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["randomization_id"],
            ["randomizations.id"],
            name=op.f("fk_backup_randomizations_randomization_id_randomizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_randomizations")),
        sa.UniqueConstraint(
            "randomization_id", name=op.f("uq_backup_randomizations_randomization_id")
        ),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("recipient_username", sa.String(length=80), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(op.f("ix_notifications_status"), "notifications", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_status"), table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email")
    op.drop_table("backup_randomizations")
    op.drop_index(op.f("ix_sae_assessments_report_id"), table_name="sae_assessments")
    op.drop_table("sae_assessments")
    op.drop_index(op.f("ix_sae_reports_adverse_event_id"), table_name="sae_reports")
    op.drop_table("sae_reports")
    with op.batch_alter_table("adverse_events") as batch:
        for name, _length in reversed(_AE_COLUMNS):
            batch.drop_column(name)
