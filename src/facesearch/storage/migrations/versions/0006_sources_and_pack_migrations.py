"""Face sources (keep_source), pack migrations and their shadow embeddings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "face_sources",
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name="fk_face_sources_face_id_faces", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", name="pk_face_sources"),
    )
    op.create_table(
        "pack_migrations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("from_pack", sa.String(50), nullable=False),
        sa.Column("to_pack", sa.String(50), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("drop_failed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name="fk_pack_migrations_collection_id_collections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pack_migrations"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_pack_migrations_uid", "pack_migrations", ["uid"], unique=True)
    op.create_index("ix_pack_migrations_collection_id", "pack_migrations", ["collection_id"])
    op.create_table(
        "face_vectors",
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("pack", sa.String(50), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"], ["faces.id"], name="fk_face_vectors_face_id_faces", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("face_id", "pack", name="pk_face_vectors"),
    )


def downgrade() -> None:
    op.drop_table("face_vectors")
    op.drop_table("pack_migrations")
    op.drop_table("face_sources")
