"""leads with status history, nurture enrollments, staff notifications; campaign kinds;
indexes for webhook lookups by message id and per-message event rules;
the throttle's sent_at index made partial (sent rows only) so claims write fewer index entries,
and the ledger's unique key put subscriber first so it also serves subscriber lookups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 07:01:33.273038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('lead_status_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('changed_by', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead_status_changes', schema=None) as batch_op:
        batch_op.create_index('ix_lead_status_changes_lead_time', ['lead_id', 'changed_at'], unique=False)

    op.create_table('nurture_enrollments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sequence', sa.String(length=100), nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('exit_reason', sa.String(length=100), nullable=True),
    sa.Column('next_step', sa.Integer(), nullable=False),
    sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'completed', 'exited')", name='ck_nurture_enrollments_status'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sequence', 'subscriber_id', name='uq_nurture_enrollments_sequence_subscriber')
    )
    with op.batch_alter_table('nurture_enrollments', schema=None) as batch_op:
        batch_op.create_index('ix_nurture_enrollments_due', ['status', 'next_due_at'], unique=False)

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='newsletter', nullable=False))
        batch_op.create_check_constraint('ck_campaigns_kind', "kind IN ('newsletter', 'nurture')")
        batch_op.alter_column('article_id',
               existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
               nullable=True)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_deliveries_campaign_subscriber', type_='unique')
        batch_op.create_unique_constraint('uq_deliveries_subscriber_campaign', ['subscriber_id', 'campaign_id'])
        batch_op.drop_index('ix_deliveries_subscriber')
        batch_op.drop_index('ix_deliveries_status_sent_at')
        batch_op.create_index('ix_deliveries_sent_at', ['sent_at'], unique=False,
                              postgresql_where=sa.text("status = 'sent'"), sqlite_where=sa.text("status = 'sent'"))
        batch_op.create_index('ix_deliveries_message_id', ['message_id'], unique=False,
                              postgresql_where=sa.text('message_id IS NOT NULL'),
                              sqlite_where=sa.text('message_id IS NOT NULL'))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_delivery_id'))
        batch_op.create_index('ix_events_delivery_type_time', ['delivery_id', 'type', 'occurred_at'], unique=False)

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), server_default='cta_click', nullable=False))
        batch_op.create_check_constraint('ck_leads_source', "source IN ('cta_click', 'signup', 'staff')")
        batch_op.add_column(sa.Column('last_engaged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_leads_status_created', ['status', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_status_created')
        batch_op.drop_column('status_changed_at')
        batch_op.drop_column('last_engaged_at')
        batch_op.drop_constraint('ck_leads_source', type_='check')
        batch_op.drop_column('source')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_delivery_type_time')
        batch_op.create_index(batch_op.f('ix_events_delivery_id'), ['delivery_id'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_message_id')
        batch_op.drop_index('ix_deliveries_sent_at')
        batch_op.create_index('ix_deliveries_status_sent_at', ['status', 'sent_at'], unique=False)
        batch_op.create_index('ix_deliveries_subscriber', ['subscriber_id'], unique=False)
        batch_op.drop_constraint('uq_deliveries_subscriber_campaign', type_='unique')
        batch_op.create_unique_constraint('uq_deliveries_campaign_subscriber', ['campaign_id', 'subscriber_id'])

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.alter_column('article_id',
               existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
               nullable=False)
        batch_op.drop_constraint('ck_campaigns_kind', type_='check')
        batch_op.drop_column('kind')

    with op.batch_alter_table('nurture_enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_nurture_enrollments_due')

    op.drop_table('nurture_enrollments')
    with op.batch_alter_table('lead_status_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_status_changes_lead_time')

    op.drop_table('lead_status_changes')
    op.drop_table('notifications')
