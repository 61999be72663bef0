"""Initial schema: collections, persons, groups, memberships, faces, change_log, api_keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _uid() -> sa.Column[object]:
    return sa.Column("uid", sa.String(32), nullable=False)


def _fk(column: str, table: str, name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{table}.id"], name=name, ondelete="CASCADE")


def upgrade() -> None:
    """Create every table of the first release."""
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _uid(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("pack", sa.String(50), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_collections"),
        sa.UniqueConstraint("name", name="uq_collections_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_collections_uid", "collections", ["uid"], unique=True)

    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _uid(),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _fk("collection_id", "collections", "fk_persons_collection_id_collections"),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
        sa.UniqueConstraint("collection_id", "external_id", name="uq_persons_collection_id_external_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_persons_uid", "persons", ["uid"], unique=True)
    op.create_index("ix_persons_collection_id_name", "persons", ["collection_id", "name"])

    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _uid(),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        _ts("created_at"),
        _fk("collection_id", "collections", "fk_groups_collection_id_collections"),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.UniqueConstraint("collection_id", "name", name="uq_groups_collection_id_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_groups_uid", "groups", ["uid"], unique=True)

    op.create_table(
        "memberships",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        _fk("person_id", "persons", "fk_memberships_person_id_persons"),
        _fk("group_id", "groups", "fk_memberships_group_id_groups"),
        sa.PrimaryKeyConstraint("person_id", "group_id", name="pk_memberships"),
    )
    op.create_index("ix_memberships_group_id", "memberships", ["group_id"])

    op.create_table(
        "faces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _uid(),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("pack", sa.String(50), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("box_left", sa.Integer(), nullable=False),
        sa.Column("box_top", sa.Integer(), nullable=False),
        sa.Column("box_width", sa.Integer(), nullable=False),
        sa.Column("box_height", sa.Integer(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=True),
        _ts("created_at"),
        _fk("person_id", "persons", "fk_faces_person_id_persons"),
        _fk("collection_id", "collections", "fk_faces_collection_id_collections"),
        sa.PrimaryKeyConstraint("id", name="pk_faces"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_faces_uid", "faces", ["uid"], unique=True)
    op.create_index("ix_faces_person_id", "faces", ["person_id"])
    op.create_index("ix_faces_collection_id", "faces", ["collection_id"])
    op.create_index("ix_faces_content_hash", "faces", ["content_hash"])

    op.create_table(
        "change_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("face_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("seq", name="pk_change_log"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _uid(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("collections", sa.JSON(none_as_null=True), nullable=True),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_api_keys_uid", "api_keys", ["uid"], unique=True)


def downgrade() -> None:
    """Drop every table (data is lost)."""
    for table in ("api_keys", "change_log", "faces", "memberships", "groups", "persons", "collections"):
        op.drop_table(table)
