"""The RECIST 1.1 engine's evaluation of a patient's reads, stored with every central read and
correction: per time point the response as read and after re-dating, and per patient BOR with
its rule, first PD and the month-6 decision (append-only versions; the highest is current).

Revision ID: 0010_recist_evaluations
Revises: 0009_core_actors
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_recist_evaluations"
down_revision = "0009_core_actors"
branch_labels = None
depends_on = None


def _read_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["tumour_assessments.id"],
        name=op.f(f"fk_{table}_{column}_tumour_assessments"),
    )


def upgrade() -> None:
    op.create_table(
        "recist_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("reader", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trigger_assessment_id", sa.Integer(), nullable=False),
        sa.Column("baseline_assessment_id", sa.Integer(), nullable=False),
        sa.Column("baseline_sum_mm", sa.Numeric(8, 1), nullable=True),
        sa.Column("reference_date", sa.Date(), nullable=True),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("min_sd_duration_days", sa.Integer(), nullable=False),
        sa.Column("landmark_day", sa.Integer(), nullable=False),
        sa.Column("landmark_window_days", sa.Integer(), nullable=False),
        sa.Column("best_overall_response", sa.String(length=16), nullable=True),
        sa.Column("bor_date", sa.Date(), nullable=True),
        sa.Column("bor_rule", sa.Text(), nullable=True),
        sa.Column("first_pd_date", sa.Date(), nullable=True),
        sa.Column("landmark_start", sa.Date(), nullable=True),
        sa.Column("landmark_end", sa.Date(), nullable=True),
        sa.Column("landmark_date", sa.Date(), nullable=True),
        sa.Column("disease_control_month6", sa.Boolean(), nullable=True),
        sa.Column("dcr6_reason", sa.Text(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_recist_evaluations_patient_id_patients")
        ),
        _read_fk("recist_evaluations", "trigger_assessment_id"),
        _read_fk("recist_evaluations", "baseline_assessment_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recist_evaluations")),
        sa.UniqueConstraint(
            "patient_id", "reader", "version", name=op.f("uq_recist_evaluations_patient_id")
        ),
    )
    op.create_index(
        op.f("ix_recist_evaluations_patient_id"),
        "recist_evaluations",
        ["patient_id"],
        unique=False,
    )
    op.create_table(
        "recist_time_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("assessment_date", sa.Date(), nullable=False),
        sa.Column("sum_mm", sa.Numeric(8, 1), nullable=True),
        sa.Column("nadir_mm", sa.Numeric(8, 1), nullable=True),
        sa.Column("change_from_baseline_pct", sa.Numeric(9, 2), nullable=True),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("non_target", sa.String(length=16), nullable=False),
        sa.Column("new_lesions", sa.String(length=12), nullable=False),
        sa.Column("overall_as_read", sa.String(length=16), nullable=False),
        sa.Column("overall", sa.String(length=16), nullable=False),
        sa.Column("redated_by_assessment_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["recist_evaluations.id"],
            name=op.f("fk_recist_time_points_evaluation_id_recist_evaluations"),
        ),
        _read_fk("recist_time_points", "assessment_id"),
        _read_fk("recist_time_points", "redated_by_assessment_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recist_time_points")),
        sa.UniqueConstraint(
            "evaluation_id", "assessment_id", name=op.f("uq_recist_time_points_evaluation_id")
        ),
    )
    op.create_index(
        op.f("ix_recist_time_points_evaluation_id"),
        "recist_time_points",
        ["evaluation_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_recist_time_points_evaluation_id"), table_name="recist_time_points")
    op.drop_table("recist_time_points")
    op.drop_index(op.f("ix_recist_evaluations_patient_id"), table_name="recist_evaluations")
    op.drop_table("recist_evaluations")
