"""check requests: rechecks asked for by the web page or the API, carried out by the daemon

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('check_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('watch', sa.String(length=100), nullable=False),
    sa.Column('requested_by', sa.String(length=32), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_requests'))
    )
    op.create_index('ix_check_requests_state_id', 'check_requests', ['state', 'id'], unique=False)
    op.create_index('ix_check_requests_watch_id', 'check_requests', ['watch', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_check_requests_watch_id', table_name='check_requests')
    op.drop_index('ix_check_requests_state_id', table_name='check_requests')
    op.drop_table('check_requests')
