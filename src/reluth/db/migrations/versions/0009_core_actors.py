"""The authenticated core: how each audit row's writer authenticated; kinds, expiry and parents of
tokens (a CLI login token, and the API tokens created from a login); per-centre patient counters
(race-free patient numbering); login throttling kept apart from the (audited) accounts, and the
"must change password" flag of a reset.

Revision ID: 0009_core_actors
Revises: 0008_sae_awareness_time
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_core_actors"
down_revision = "0008_sae_awareness_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): the audit table keeps its append-only triggers.
    op.add_column("audit_log", sa.Column("auth_method", sa.String(length=16), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="api")
        )
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("parent_token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("web_session_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_api_tokens_parent_token_id_api_tokens",
            "api_tokens",
            ["parent_token_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            "fk_api_tokens_web_session_id_web_sessions",
            "web_sessions",
            ["web_session_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("failed_logins")
        batch.drop_column("locked_until")
        batch.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_table(
        "patient_counters",
        sa.Column("centre_id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
            name=op.f("fk_patient_counters_centre_id_centres"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("centre_id", name=op.f("pk_patient_counters")),
    )
    # Start each centre's counter at the highest number already used there.
    op.execute(
        "INSERT INTO patient_counters (centre_id, last_number) "
        "SELECT c.id, COALESCE(MAX(CAST(SUBSTR(p.patient_code, 5) AS INTEGER)), 0) "
        "FROM centres c LEFT JOIN patients p ON p.centre_id = c.id GROUP BY c.id"
    )


def downgrade() -> None:
    op.drop_table("patient_counters")
    op.drop_table("login_throttle")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("fk_api_tokens_web_session_id_web_sessions", type_="foreignkey")
        batch.drop_constraint("fk_api_tokens_parent_token_id_api_tokens", type_="foreignkey")
        batch.drop_column("web_session_id")
        batch.drop_column("parent_token_id")
        batch.drop_column("expires_at")
        batch.drop_column("kind")
    op.drop_column("audit_log", "auth_method")
