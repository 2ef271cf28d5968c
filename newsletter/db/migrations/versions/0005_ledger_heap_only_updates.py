"""the ledger's two updates touch no index: status, sent_at and message_id leave the ledger's
indexes; a send log answers "sent lately" and "which campaign sent this message id"

Each ledger row is updated twice on its way out (queued → in_flight at the claim, → sent at
the answer). While ``status`` was in an index, PostgreSQL had to write a new entry in every
index of the table for each of those updates (pkey, the unique key, the campaign/status index,
and at the answer the sent_at and message_id indexes too): 44 of the 53 s of database CPU of a
1,000,000-recipient send. With no indexed column changing and half-empty pages (fillfactor 50),
both updates are heap-only: the new version goes on the same page and no index is touched.

* ``ix_deliveries_campaign_status`` (campaign, status, id) becomes ``ix_deliveries_campaign``
  (campaign, id): the claim walks it from its cursor and skips rows no longer queued.
* ``ix_deliveries_sent_at`` and ``ix_deliveries_message_id`` go; ``send_log`` (one row per
  accepted request) answers the throttle's windows and the webhook's message-id fallback. It is
  filled here from the ledger's sent rows.
* PostgreSQL: ``fillfactor = 50`` for rows inserted from now on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_WHERE_MESSAGE_ID = "message_id IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        'send_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('message_id', sa.String(length=200), nullable=True),
        sa.Column('recipients', sa.Integer(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_send_log_campaign_id', 'send_log', ['campaign_id'], unique=False)
    op.create_index('ix_send_log_recorded_at', 'send_log', ['recorded_at'], unique=False)
    op.create_index('ix_send_log_message_id', 'send_log', ['message_id'], unique=False,
                    postgresql_where=sa.text(_WHERE_MESSAGE_ID), sqlite_where=sa.text(_WHERE_MESSAGE_ID))
    op.execute("""
        INSERT INTO send_log (campaign_id, message_id, recipients, recorded_at)
        SELECT campaign_id, message_id, COUNT(*), MAX(COALESCE(sent_at, updated_at, created_at))
        FROM deliveries WHERE status = 'sent'
        GROUP BY campaign_id, message_id""")

    op.create_index('ix_deliveries_campaign', 'deliveries', ['campaign_id', 'id'], unique=False)
    op.drop_index('ix_deliveries_campaign_status', table_name='deliveries')
    op.drop_index('ix_deliveries_sent_at', table_name='deliveries')
    op.drop_index('ix_deliveries_message_id', table_name='deliveries')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    op.create_index('ix_deliveries_message_id', 'deliveries', ['message_id'], unique=False,
                    postgresql_where=sa.text(_WHERE_MESSAGE_ID), sqlite_where=sa.text(_WHERE_MESSAGE_ID))
    op.create_index('ix_deliveries_sent_at', 'deliveries', ['sent_at'], unique=False,
                    postgresql_where=sa.text("status = 'sent'"), sqlite_where=sa.text("status = 'sent'"))
    op.create_index('ix_deliveries_campaign_status', 'deliveries', ['campaign_id', 'status', 'id'], unique=False)
    op.drop_index('ix_deliveries_campaign', table_name='deliveries')
    op.drop_table('send_log')
