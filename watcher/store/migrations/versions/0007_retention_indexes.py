"""retention: indexes on the columns that point to a snapshot

Removing a snapshot (watcher/retention.py) unlinks the check that stored it and the events that point to it;
without an index each removal would scan the checks and change_events tables (on PostgreSQL the foreign
keys' ON DELETE SET NULL does the same scan). The pending-event lookups of `confirm` watches use them too.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_checks_snapshot_id", "checks", ["snapshot_id"], unique=False)
    op.create_index("ix_change_events_snapshot_id", "change_events", ["snapshot_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_change_events_snapshot_id", table_name="change_events")
    op.drop_index("ix_checks_snapshot_id", table_name="checks")
