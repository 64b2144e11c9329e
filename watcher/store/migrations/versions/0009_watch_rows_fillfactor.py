"""watches: fillfactor 30 (PostgreSQL), so that every check's UPDATE of its watch row is heap-only

Every check rewrites its watch's row (last check time, state revision, validators), and the batch of quiet
checks rewrites every row of a page in one transaction. At fillfactor 90 a page of about 18 rows had room for
the new versions of two: the others went to other pages, with a new entry in each of the table's indexes,
and the old versions waited for VACUUM (benchmarks/README.md: 459 B per re-check). At 30 each page keeps
about 5 rows and room for all their new versions: the UPDATEs are heap-only (no index entries) and page
pruning reclaims the old versions. The table is about 3.5 times larger (1.6 kB per watch), which is small
beside one snapshot. Like any fillfactor, it applies to pages written from now on (`VACUUM FULL watches`
repacks existing ones). SQLite has no fillfactor.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WATCHES_FILLFACTOR = 30


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE watches SET (fillfactor = {WATCHES_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE watches SET (fillfactor = 90)")
