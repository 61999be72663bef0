"""The change-log cursor of a shared vector index (Milvus), kept in the database.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "index_cursors",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("generation", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_index_cursors"),
    )


def downgrade() -> None:
    op.drop_table("index_cursors")
