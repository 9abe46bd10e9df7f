"""add nudges: the audit trail of reminders, segment messages and rule states

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nudge_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_by_name', sa.String(length=200), nullable=False),
    sa.Column('segment', sa.String(length=500), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('preview_count', sa.Integer(), nullable=False),
    sa.Column('queued_count', sa.Integer(), nullable=False),
    sa.Column('skipped_paused', sa.Integer(), nullable=False),
    sa.Column('skipped_unreachable', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('nudge_rule_states',
    sa.Column('rule_id', sa.String(length=40), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('changed_by', sa.String(length=96), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_queued', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('rule_id')
    )
    op.create_table('nudges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('rule_id', sa.String(length=40), nullable=True),
    sa.Column('sent_by', sa.String(length=96), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('learner_id', sa.Integer(), nullable=True),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['nudge_batches.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['learner_id'], ['learners.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('nudges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nudges_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nudges_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_nudges_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index('ix_nudges_learner_replied', ['learner_id', 'replied_at'], unique=False)
        batch_op.create_index('ix_nudges_rule_chat', ['rule_id', 'chat_id', 'available_at'], unique=False)
        batch_op.create_index('ix_nudges_rule_learner', ['rule_id', 'learner_id', 'available_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('nudges', schema=None) as batch_op:
        batch_op.drop_index('ix_nudges_rule_learner')
        batch_op.drop_index('ix_nudges_rule_chat')
        batch_op.drop_index('ix_nudges_learner_replied')
        batch_op.drop_index(batch_op.f('ix_nudges_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_nudges_created_at'))
        batch_op.drop_index(batch_op.f('ix_nudges_batch_id'))

    op.drop_table('nudges')
    op.drop_table('nudge_rule_states')
    op.drop_table('nudge_batches')
