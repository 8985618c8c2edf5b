"""The missing case report forms: concomitant medications, medical history, withdrawals (from
treatment, from follow-up, objection to further use of data), protocol deviations, pregnancy
tests and the childbearing potential of a patient.

Revision ID: 0016_new_forms
Revises: 0015_account_language
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016_new_forms"
down_revision = "0015_account_language"
branch_labels = None
depends_on = None

#: The tables this revision creates, in creation order (dropped in reverse).
TABLES = (
    "concomitant_medications",
    "medical_history",
    "withdrawals",
    "protocol_deviations",
    "pregnancy_tests",
    "childbearing_status",
)


def _patient_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["patient_id"], ["patients.id"], name=op.f(f"fk_{table}_patient_id_patients")
    )


def _common(table: str) -> list[Any]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        _patient_fk(table),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _index(table: str) -> None:
    op.create_index(op.f(f"ix_{table}_patient_id"), table, ["patient_id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "concomitant_medications",
        *_common("concomitant_medications"),
        sa.Column("drug_name", sa.String(length=120), nullable=False),
        sa.Column("atc_code", sa.String(length=7), nullable=True),
        sa.Column("indication", sa.String(length=200), nullable=False),
        sa.Column("dose", sa.Numeric(12, 4), nullable=True),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("route", sa.String(length=20), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("stop_date", sa.Date(), nullable=True),
        sa.Column("ongoing", sa.Boolean(), nullable=False),
    )
    _index("concomitant_medications")
    op.create_table(
        "medical_history",
        *_common("medical_history"),
        sa.Column("condition", sa.String(length=200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("ongoing", sa.Boolean(), nullable=False),
    )
    _index("medical_history")
    op.create_table(
        "withdrawals",
        *_common("withdrawals"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("withdrawal_date", sa.Date(), nullable=False),
        sa.Column("decided_by", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.UniqueConstraint("patient_id", "kind", name=op.f("uq_withdrawals_patient_id")),
    )
    _index("withdrawals")
    op.create_table(
        "protocol_deviations",
        *_common("protocol_deviations"),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("deviation_date", sa.Date(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("corrective_action", sa.Text(), nullable=True),
    )
    _index("protocol_deviations")
    op.create_table(
        "pregnancy_tests",
        *_common("pregnancy_tests"),
        sa.Column("test_date", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
    )
    _index("pregnancy_tests")
    op.create_table(
        "childbearing_status",
        *_common("childbearing_status"),
        sa.Column("childbearing_potential", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=True),
        sa.Column("assessed_on", sa.Date(), nullable=False),
        sa.UniqueConstraint("patient_id", name=op.f("uq_childbearing_status_patient_id")),
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
