"""scale-out due times: watches.due_done, checks.due

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('watches') as batch:
        batch.add_column(sa.Column('due_done', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('checks') as batch:
        batch.add_column(sa.Column('due', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('checks') as batch:
        batch.drop_column('due')
    with op.batch_alter_table('watches') as batch:
        batch.drop_column('due_done')
