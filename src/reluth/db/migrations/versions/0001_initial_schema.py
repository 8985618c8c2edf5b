"""Initial schema; the audit table is append-only (triggers refuse UPDATE and DELETE).

Revision ID: 0001
Revises:
Create Date: 2026-11-27 04:15:13.374716
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("seed_sha256", sa.String(length=64), nullable=False),
        sa.Column("block_sizes", sa.String(length=32), nullable=False),
        sa.Column("per_stratum", sa.Integer(), nullable=False),
        sa.Column("stratify_by_centre", sa.Boolean(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_lists")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at_utc", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("row_hash", name=op.f("uq_audit_log_row_hash")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_record_id"), ["record_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_table_name"), ["table_name"], unique=False)

    op.create_table(
        "centres",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_centres")),
        sa.UniqueConstraint("code", name=op.f("uq_centres_code")),
    )
    op.create_table(
        "randomization_settings",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("stratify_by_centre", sa.Boolean(), nullable=False),
        sa.Column("block_sizes", sa.String(length=32), nullable=False),
        sa.Column("minimization_p", sa.Numeric(precision=4, scale=3), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_randomization_settings")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "allocation_strata",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("stratum_key", sa.String(length=96), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("next_position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["allocation_lists.id"],
            name=op.f("fk_allocation_strata_list_id_allocation_lists"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_strata")),
        sa.UniqueConstraint("list_id", "stratum_key", name=op.f("uq_allocation_strata_list_id")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_code", sa.String(length=16), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
            name=op.f("fk_patients_centre_id_centres"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("patient_code", name=op.f("uq_patients_patient_code")),
    )
    op.create_table(
        "user_centres",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
            name=op.f("fk_user_centres_centre_id_centres"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_centres_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "centre_id", name=op.f("pk_user_centres")),
    )
    op.create_table(
        "administrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("administered_on", sa.Date(), nullable=False),
        sa.Column("activity_gbq", sa.Numeric(precision=6, scale=3), nullable=False),
        sa.Column("lot", sa.String(length=40), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_administrations_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_administrations")),
        sa.UniqueConstraint("patient_id", "cycle", name=op.f("uq_administrations_patient_id")),
    )
    with op.batch_alter_table("administrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_administrations_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "adverse_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("term", sa.String(length=120), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("serious", sa.Boolean(), nullable=False),
        sa.Column("relatedness", sa.String(length=24), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("onset_date", sa.Date(), nullable=False),
        sa.Column("resolution_date", sa.Date(), nullable=True),
        sa.Column("awareness_date", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_adverse_events_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_events")),
    )
    with op.batch_alter_table("adverse_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_adverse_events_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "allocation_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("stratum_key", sa.String(length=96), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("block_no", sa.Integer(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["allocation_lists.id"],
            name=op.f("fk_allocation_slots_list_id_allocation_lists"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_allocation_slots_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_slots")),
        sa.UniqueConstraint(
            "list_id", "stratum_key", "position", name=op.f("uq_allocation_slots_list_id")
        ),
        sa.UniqueConstraint("patient_id", name=op.f("uq_allocation_slots_patient_id")),
    )
    op.create_table(
        "deaths",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("death_date", sa.Date(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_deaths_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deaths")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_deaths_patient_id")),
    )
    op.create_table(
        "end_of_study",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_end_of_study_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_end_of_study")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_end_of_study_patient_id")),
    )
    op.create_table(
        "lab_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("sample_date", sa.Date(), nullable=False),
        sa.Column("analyte", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("unit", sa.String(length=24), nullable=False),
        sa.Column("value_canonical", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("canonical_unit", sa.String(length=24), nullable=False),
        sa.Column("uln", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.Column("ctcae_grade", sa.Integer(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_lab_results_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_results")),
    )
    with op.batch_alter_table("lab_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lab_results_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "pre_randomization_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("assessment_date", sa.Date(), nullable=False),
        sa.Column("radiological_progression", sa.Boolean(), nullable=False),
        sa.Column("overall_response", sa.String(length=8), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_pre_randomization_assessments_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pre_randomization_assessments")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_pre_randomization_assessments_patient_id")),
    )
    op.create_table(
        "qol_questionnaires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("timepoint", sa.String(length=32), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("answers_json", sa.Text(), nullable=False),
        sa.Column("scores_json", sa.Text(), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_qol_questionnaires_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qol_questionnaires")),
        sa.UniqueConstraint(
            "patient_id", "instrument", "timepoint", name=op.f("uq_qol_questionnaires_patient_id")
        ),
    )
    with op.batch_alter_table("qol_questionnaires", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_qol_questionnaires_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "screenings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("assessment_date", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_json", sa.Text(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("strata_code", sa.String(length=64), nullable=True),
        sa.Column("strata_json", sa.Text(), nullable=True),
        sa.Column("screened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_screenings_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screenings")),
    )
    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_screenings_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "tumour_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("assessment_date", sa.Date(), nullable=False),
        sa.Column("timepoint", sa.String(length=32), nullable=False),
        sa.Column("reader", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=8), nullable=False),
        sa.Column("overall_response", sa.String(length=8), nullable=True),
        sa.Column("target_sum_mm", sa.Numeric(precision=8, scale=1), nullable=True),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_tumour_assessments_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tumour_assessments")),
    )
    with op.batch_alter_table("tumour_assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tumour_assessments_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("visit_code", sa.String(length=32), nullable=False),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_visits_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visits")),
        sa.UniqueConstraint("patient_id", "visit_code", name=op.f("uq_visits_patient_id")),
    )
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visits_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "inclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("screening_id", sa.Integer(), nullable=False),
        sa.Column("consent_signed", sa.Boolean(), nullable=False),
        sa.Column("consent_date", sa.Date(), nullable=True),
        sa.Column("inclusion_date", sa.Date(), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_inclusions_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["screening_id"], ["screenings.id"], name=op.f("fk_inclusions_screening_id_screenings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inclusions")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_inclusions_patient_id")),
    )
    op.create_table(
        "lesion_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("lesion_id", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("organ", sa.String(length=40), nullable=False),
        sa.Column("lymph_node", sa.Boolean(), nullable=False),
        sa.Column("diameter_mm", sa.Numeric(precision=6, scale=1), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["tumour_assessments.id"],
            name=op.f("fk_lesion_measurements_assessment_id_tumour_assessments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesion_measurements")),
        sa.UniqueConstraint(
            "assessment_id", "lesion_id", name=op.f("uq_lesion_measurements_assessment_id")
        ),
    )
    with op.batch_alter_table("lesion_measurements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesion_measurements_assessment_id"), ["assessment_id"], unique=False
        )

    op.create_table(
        "randomizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=80), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("stratum_key", sa.String(length=96), nullable=False),
        sa.Column("strata_json", sa.Text(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("details_json", sa.Text(), nullable=True),
        sa.Column("randomized_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("randomized_by", sa.String(length=80), nullable=False),
        sa.Column("protocol_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_randomizations_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["allocation_slots.id"],
            name=op.f("fk_randomizations_slot_id_allocation_slots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_randomizations")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_randomizations_patient_id")),
        sa.UniqueConstraint("request_id", name=op.f("uq_randomizations_request_id")),
        sa.UniqueConstraint("slot_id", name=op.f("uq_randomizations_slot_id")),
    )

    _append_only_audit()


def downgrade() -> None:
    _drop_append_only_audit()
    op.drop_table("randomizations")
    with op.batch_alter_table("lesion_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_measurements_assessment_id"))

    op.drop_table("lesion_measurements")
    op.drop_table("inclusions")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visits_patient_id"))

    op.drop_table("visits")
    with op.batch_alter_table("tumour_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tumour_assessments_patient_id"))

    op.drop_table("tumour_assessments")
    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screenings_patient_id"))

    op.drop_table("screenings")
    with op.batch_alter_table("qol_questionnaires", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_qol_questionnaires_patient_id"))

    op.drop_table("qol_questionnaires")
    op.drop_table("pre_randomization_assessments")
    with op.batch_alter_table("lab_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lab_results_patient_id"))

    op.drop_table("lab_results")
    op.drop_table("end_of_study")
    op.drop_table("deaths")
    op.drop_table("allocation_slots")
    with op.batch_alter_table("adverse_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adverse_events_patient_id"))

    op.drop_table("adverse_events")
    with op.batch_alter_table("administrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_administrations_patient_id"))

    op.drop_table("administrations")
    op.drop_table("user_centres")
    op.drop_table("patients")
    op.drop_table("api_tokens")
    op.drop_table("allocation_strata")
    op.drop_table("users")
    op.drop_table("randomization_settings")
    op.drop_table("centres")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_table_name"))
        batch_op.drop_index(batch_op.f("ix_audit_log_record_id"))

    op.drop_table("audit_log")
    op.drop_table("audit_head")
    op.drop_table("allocation_lists")


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION reluth_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def _append_only_audit() -> None:
    """Start the chain's head, and refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) of
    audit rows at the database."""
    op.execute(f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{'0' * 64}')")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION reluth_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION reluth_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {verb} refused'); END"
            )


def _drop_append_only_audit() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS reluth_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
