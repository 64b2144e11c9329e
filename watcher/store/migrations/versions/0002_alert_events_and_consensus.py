"""alerts carry the events of one check; topic consensus remembered

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:00:00

An alert was one event for one subscriber; it is now one message per (check, subscriber) listing its
events in `alert_events`. Existing alerts keep their single event. `topic_consensus` remembers the last
value all current sources of a topic agreed on, per fact.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_events_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['change_events.id'], name=op.f('fk_alert_events_event_id_change_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_alert_events_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events')),
    sa.UniqueConstraint('event_id', 'subscriber_id', name='uq_alert_events_event_subscriber')
    )
    with op.batch_alter_table('alert_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_events_alert_id'), ['alert_id'], unique=False)
    op.execute("INSERT INTO alert_events (alert_id, event_id, subscriber_id, position) "
               "SELECT id, event_id, subscriber_id, 0 FROM alerts")

    op.create_table('topic_consensus',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topic_key', sa.String(length=320), nullable=False),
    sa.Column('fact', sa.String(length=340), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topic_consensus')),
    sa.UniqueConstraint('topic_key', 'fact', name='uq_topic_consensus_topic_fact')
    )


def downgrade() -> None:
    op.drop_table('topic_consensus')
    with op.batch_alter_table('alert_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_events_alert_id'))
    op.drop_table('alert_events')
