"""Corrections (never-match negatives, different-people pairs, merged-person redirects) and
remembered unknown faces.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, table: str, name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{table}.id"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "negatives",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("pack", sa.String(50), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("source_face", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("person_id", "persons", "fk_negatives_person_id_persons"),
        _fk("collection_id", "collections", "fk_negatives_collection_id_collections"),
        sa.PrimaryKeyConstraint("id", name="pk_negatives"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_negatives_uid", "negatives", ["uid"], unique=True)
    op.create_index("ix_negatives_person_id", "negatives", ["person_id"])
    op.create_index("ix_negatives_collection_id", "negatives", ["collection_id"])
    op.create_table(
        "distinct_persons",
        sa.Column("person_a", sa.Integer(), nullable=False),
        sa.Column("person_b", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("person_a", "persons", "fk_distinct_persons_person_a_persons"),
        _fk("person_b", "persons", "fk_distinct_persons_person_b_persons"),
        _fk("collection_id", "collections", "fk_distinct_persons_collection_id_collections"),
        sa.PrimaryKeyConstraint("person_a", "person_b", name="pk_distinct_persons"),
    )
    op.create_index("ix_distinct_persons_person_b", "distinct_persons", ["person_b"])
    op.create_index("ix_distinct_persons_collection_id", "distinct_persons", ["collection_id"])
    op.create_table(
        "person_redirects",
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("collection_id", "collections", "fk_person_redirects_collection_id_collections"),
        _fk("target_id", "persons", "fk_person_redirects_target_id_persons"),
        sa.PrimaryKeyConstraint("uid", name="pk_person_redirects"),
    )
    op.create_index("ix_person_redirects_collection_id", "person_redirects", ["collection_id"])
    op.create_index("ix_person_redirects_target_id", "person_redirects", ["target_id"])
    op.create_table(
        "unknown_faces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("pack", sa.String(50), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("box_left", sa.Integer(), nullable=False),
        sa.Column("box_top", sa.Integer(), nullable=False),
        sa.Column("box_width", sa.Integer(), nullable=False),
        sa.Column("box_height", sa.Integer(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        _fk("collection_id", "collections", "fk_unknown_faces_collection_id_collections"),
        sa.PrimaryKeyConstraint("id", name="pk_unknown_faces"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_unknown_faces_uid", "unknown_faces", ["uid"], unique=True)
    op.create_index("ix_unknown_faces_collection_id_seen_at", "unknown_faces", ["collection_id", "seen_at"])
    op.create_index("ix_unknown_faces_collection_id_id", "unknown_faces", ["collection_id", "id"])


def downgrade() -> None:
    op.drop_table("unknown_faces")
    op.drop_table("person_redirects")
    op.drop_table("distinct_persons")
    op.drop_table("negatives")
