"""batched bookkeeping: watches.body_hash and watches.state_rev

The body hash moves out of the watch's JSON config (`_raw_hash`) into a column of its own, so batched
"unchanged" writes can set it with one bulk UPDATE; `state_rev` lets those writes check that the state
they were decided against is still current.

Revision ID: 0006
Revises: 0005
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("state_rev", sa.Integer(), server_default="0", nullable=False))
    conn = op.get_bind()
    watches = sa.table("watches", sa.column("id", sa.Integer), sa.column("config", sa.JSON),
                       sa.column("body_hash", sa.String))
    for wid, config in conn.execute(sa.select(watches.c.id, watches.c.config)).all():
        config = json.loads(config) if isinstance(config, str) else (config or {})
        if "_raw_hash" in config:
            raw = config.pop("_raw_hash")
            conn.execute(watches.update().where(watches.c.id == wid).values(body_hash=raw, config=config))


def downgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.drop_column("state_rev")
        batch_op.drop_column("body_hash")
