"""watches.run_*: a watch's run of quiet checks still going on is kept on its row, not in `checks`

A quiet check (unchanged, not_modified) extends the watch's open run in the UPDATE of the watch row that every
check makes anyway; the run is written to `checks` when a check of another kind follows it. On PostgreSQL
that UPDATE is heap-only (fillfactor 30, migration 0009), so a quiet re-check adds no row and no index entry:
0 B, where starting a run's row in `checks` cost about 190 B and extending it (a non-heap-only UPDATE of a
packed page) up to 120 B until VACUUM (benchmarks/README.md). Each watch's newest row, when it is a quiet
run, becomes its open run. Rows of `checks` are no longer updated on the check path, so their pages need no
room for new versions: fillfactor back to PostgreSQL's default (100) for pages written from now on.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

QUIET = ("unchanged", "not_modified")


def upgrade() -> None:
    with op.batch_alter_table("watches") as batch:
        batch.add_column(sa.Column("run_outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("run_http_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("run_last_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("run_repeats", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("run_duration_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("run_due", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    newest = conn.execute(sa.text(
        "SELECT c.id, c.watch_id, c.outcome, c.http_status, c.at, c.last_at, c.repeats, c.duration_ms, c.due "
        "FROM checks c WHERE c.id IN (SELECT max(id) FROM checks GROUP BY watch_id)")).all()
    runs = [r for r in newest if r.outcome in QUIET]
    if runs:
        conn.execute(sa.text(
            "UPDATE watches SET run_outcome = :outcome, run_http_status = :http_status, run_at = :at, "
            "run_last_at = :last_at, run_repeats = :repeats, run_duration_ms = :duration_ms, run_due = :due "
            "WHERE id = :watch_id"),
            [{"watch_id": r.watch_id, "outcome": r.outcome, "http_status": r.http_status, "at": r.at,
              "last_at": r.last_at or r.at, "repeats": r.repeats, "duration_ms": r.duration_ms, "due": r.due}
             for r in runs])
        conn.execute(sa.text("DELETE FROM checks WHERE id = :id"), [{"id": r.id} for r in runs])
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE checks RESET (fillfactor)")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE checks SET (fillfactor = 90)")
    runs = conn.execute(sa.text(
        "SELECT id, run_outcome, run_http_status, run_at, run_last_at, run_repeats, run_duration_ms, run_due "
        "FROM watches WHERE run_repeats > 0")).all()
    if runs:
        conn.execute(sa.text(
            "INSERT INTO checks (watch_id, at, outcome, http_status, duration_ms, due, repeats, last_at) "
            "VALUES (:watch_id, :at, :outcome, :http_status, :duration_ms, :due, :repeats, :last_at)"),
            [{"watch_id": r.id, "at": r.run_at, "outcome": r.run_outcome, "http_status": r.run_http_status,
              "duration_ms": r.run_duration_ms, "due": r.run_due, "repeats": r.run_repeats,
              "last_at": r.run_last_at if r.run_repeats > 1 else None} for r in runs])
    with op.batch_alter_table("watches") as batch:
        for column in ("run_due", "run_duration_ms", "run_repeats", "run_last_at", "run_at", "run_http_status",
                       "run_outcome"):
            batch.drop_column(column)
