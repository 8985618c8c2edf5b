"""The language each account reads the pages in (``users.language``; empty: the browser decides).

Revision ID: 0015_account_language
Revises: 0014_pharmacovigilance
Create Date: 2026-12-01 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_account_language"
down_revision = "0014_pharmacovigilance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
