"""topic keys: one per work, whatever its spelling

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Topic keys were the case-folded work name; they are now records.work_key (a leading article, punctuation,
dashes and '&' folded too), so 'The Society#2' and 'Society#2' are one topic. Stored keys are rewritten in
place; a key that is already in today's form is left alone.
"""
from alembic import op
import sqlalchemy as sa

from watcher.records import Topic

revision = '0005'
down_revision = '0004'
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
    # one agreed value per topic and fact: where two spellings both had one, the new spelling's row stays
    t = sa.table("topic_consensus", sa.column("id", sa.Integer), sa.column("topic_key", sa.String),
                 sa.column("fact", sa.String))
    rows = list(conn.execute(sa.select(t.c.id, t.c.topic_key, t.c.fact)))
    taken = {(k, f) for _i, k, f in rows if Topic.normalise_key(k) == k}
    for row_id, old, fact in rows:
        new = Topic.normalise_key(old)
        if new == old:
            continue
        if (new, fact) in taken:
            conn.execute(sa.delete(t).where(t.c.id == row_id))
        else:
            conn.execute(sa.update(t).where(t.c.id == row_id).values(topic_key=new))
            taken.add((new, fact))


def downgrade() -> None:
    pass  # the old keys cannot be recovered from the new ones; both forms resolve to the same topics
