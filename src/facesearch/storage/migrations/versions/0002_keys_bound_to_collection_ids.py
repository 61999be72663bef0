"""API keys limited to some collections are bound to collection ids, not names.

Before this revision ``api_keys.collections`` held collection names, so a key limited to
``tenant1`` reached whichever collection was called ``tenant1`` at the time: after a rename
and a new ``tenant1``, the new tenant's data. Each name is replaced by the id (``col_...``)
of the collection that has that name now; a name no collection has any more is dropped (the
key reached nothing there), so no key reaches more than it did.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_collections = sa.table("collections", sa.column("uid", sa.String), sa.column("name", sa.String))
_keys = sa.table(
    "api_keys",
    sa.column("id", sa.Integer),
    sa.column("collections", sa.JSON(none_as_null=True)),
)


def upgrade() -> None:
    """Names -> ids in every limited key (a data migration: nothing to do in offline SQL mode)."""
    if context.is_offline_mode():
        return
    conn = op.get_bind()
    by_name = {name: uid for uid, name in conn.execute(sa.select(_collections.c.uid, _collections.c.name))}
    uids = set(by_name.values())
    rows = conn.execute(sa.select(_keys.c.id, _keys.c.collections).where(_keys.c.collections.is_not(None)))
    for key_id, refs in list(rows):
        bound = [ref if ref in uids else by_name[ref] for ref in refs or () if ref in uids or ref in by_name]
        conn.execute(
            sa.update(_keys).where(_keys.c.id == key_id).values(collections=list(dict.fromkeys(bound)))
        )


def downgrade() -> None:
    """Ids -> the collections' current names (ids of deleted collections are dropped)."""
    if context.is_offline_mode():
        return
    conn = op.get_bind()
    by_uid = dict(conn.execute(sa.select(_collections.c.uid, _collections.c.name)).all())
    rows = conn.execute(sa.select(_keys.c.id, _keys.c.collections).where(_keys.c.collections.is_not(None)))
    for key_id, refs in list(rows):
        names = [by_uid[ref] for ref in refs or () if ref in by_uid]
        conn.execute(sa.update(_keys).where(_keys.c.id == key_id).values(collections=names))
