"""topic keys: one per work, whatever its spelling

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Topic keys were the case-folded work name; they are now records.work_key (a leading article, punctuation,
dashes and '&' folded too), so 'The Society#2' and 'Society#2' are one topic. Stored keys are rewritten in
place; a key that is already in today's form is left alone.
"""
from alembic import op
import sqlalchemy as sa

from watcher.records import Topic

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLES = ("snapshots", "facts", "change_events")


def upgrade() -> None:
    conn = op.get_bind()
    for table in TABLES:
        t = sa.table(table, sa.column("topic_key", sa.String))
        keys = [row[0] for row in conn.execute(sa.select(t.c.topic_key).distinct()) if row[0]]
        for old in keys:
            new = Topic.normalise_key(old)
            if new != old:
                conn.execute(sa.update(t).where(t.c.topic_key == old).values(topic_key=new))


def downgrade() -> None:
    pass  # the old keys cannot be recovered from the new ones; both forms resolve to the same topics
