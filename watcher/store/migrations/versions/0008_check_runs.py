"""check runs: consecutive quiet checks of a watch share one row (checks.repeats, checks.last_at); the
snapshot_id index only covers checks that stored a snapshot; fillfactor 90 on checks and watches (PostgreSQL)

Rows written before stand for one check each (repeats 1, last_at NULL). On PostgreSQL the fillfactor
applies to pages written from now on: it leaves room for the updated version of a run's row (and of a watch
row, which every check updates) on its own page, so the UPDATE is heap-only (no indexed column changes: no
new index entries, and the old version is reclaimed by page pruning without waiting for VACUUM).

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("repeats", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_checks_snapshot_id", table_name="checks")
    op.create_index("ix_checks_snapshot_id", "checks", ["snapshot_id"], unique=False,
                    postgresql_where=sa.text("snapshot_id IS NOT NULL"), sqlite_where=sa.text("snapshot_id IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE checks SET (fillfactor = 90)")
        op.execute("ALTER TABLE watches SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE checks RESET (fillfactor)")
        op.execute("ALTER TABLE watches RESET (fillfactor)")
    op.drop_index("ix_checks_snapshot_id", table_name="checks")
    op.create_index("ix_checks_snapshot_id", "checks", ["snapshot_id"], unique=False)
    # A run's row becomes the one check it started with: history loses the repeats, not a real event.
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("last_at")
        batch.drop_column("repeats")
