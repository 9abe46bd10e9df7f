"""add evaluation requests: one-time web links for work supervisor evaluations

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evaluation_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('learner_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('supervisor_name', sa.String(length=200), nullable=False),
    sa.Column('supervisor_organization', sa.String(length=200), nullable=False),
    sa.Column('supervisor_email', sa.String(length=254), nullable=False),
    sa.Column('placement_start', sa.Date(), nullable=False),
    sa.Column('placement_end', sa.Date(), nullable=False),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('emailed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=96), nullable=True),
    sa.Column('revoked_reason', sa.String(length=16), nullable=True),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['pathway_items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['learner_id'], ['learners.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    with op.batch_alter_table('evaluation_requests', schema=None) as batch_op:
        batch_op.create_index('ix_evaluation_requests_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_requests_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_requests_learner_id'), ['learner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evaluation_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_requests_learner_id'))
        batch_op.drop_index(batch_op.f('ix_evaluation_requests_item_id'))
        batch_op.drop_index('ix_evaluation_requests_status_created')

    op.drop_table('evaluation_requests')
