"""The RECIST evaluation's month-6 reason and time-point notes as message keys with their
values (JSON), beside the English text kept as before (issue 18 item 5: a reason is written in
the reader's language from its key, never by translating formatted English). Rows stored
before have NULL here and are read by mapping their English to the keys
(``reluth.response.recist.month6_message_of``, ``note_messages_of``).

Revision ID: 0019_i18ndocs_reason_keys
Revises: 0018_lab_lln
Create Date: 2026-12-01 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_i18ndocs_reason_keys"
down_revision = "0018_lab_lln"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recist_evaluations") as batch:
        batch.add_column(sa.Column("dcr6_message", sa.Text(), nullable=True))
    with op.batch_alter_table("recist_time_points") as batch:
        batch.add_column(sa.Column("note_messages", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recist_time_points") as batch:
        batch.drop_column("note_messages")
    with op.batch_alter_table("recist_evaluations") as batch:
        batch.drop_column("dcr6_message")
