"""Auto-queries from the registry's edit checks: a data query names the edit check that raised
it (None for a query raised by a person), so a re-save does not raise it twice and a correction
that makes the check pass closes it.

Revision ID: 0017_lifecycle2_edit_checks
Revises: 0016_new_forms
Create Date: 2026-12-01 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_lifecycle2_edit_checks"
down_revision = "0016_new_forms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("data_queries") as batch:
        batch.add_column(sa.Column("edit_check", sa.String(length=60), nullable=True))
        batch.create_index(
            "ix_data_queries_edit_check", ["edit_check", "form_id", "record_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("data_queries") as batch:
        batch.drop_index("ix_data_queries_edit_check")
        batch.drop_column("edit_check")
