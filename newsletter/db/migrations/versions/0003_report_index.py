"""reports: index of a campaign's people per event type (covering on PostgreSQL), replacing
ix_events_campaign_type, which is a prefix of it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_campaign_people', ['campaign_id', 'type', 'is_machine', 'subscriber_id'],
                              unique=False, postgresql_include=['link_id', 'occurred_at', 'machine_reason'])
        batch_op.drop_index('ix_events_campaign_type')


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_campaign_type', ['campaign_id', 'type', 'is_machine'], unique=False)
        batch_op.drop_index('ix_events_campaign_people')
