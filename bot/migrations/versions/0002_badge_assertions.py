"""add Open Badges assertions and the learner's sharing choices

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('badge_assertions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('award_id', sa.Integer(), nullable=False),
    sa.Column('learner_id', sa.Integer(), nullable=False),
    sa.Column('badge_key', sa.String(length=64), nullable=False),
    sa.Column('recipient_hash', sa.String(length=80), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('issued_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.Text(), nullable=True),
    sa.Column('revoked_by', sa.String(length=96), nullable=True),
    sa.ForeignKeyConstraint(['award_id'], ['badge_awards.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['learner_id'], ['learners.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('award_id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('badge_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_badge_assertions_learner_id'), ['learner_id'], unique=False)

    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('share_name_on_badges', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('share_files_on_badges', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('learners', schema=None) as batch_op:
        batch_op.drop_column('share_files_on_badges')
        batch_op.drop_column('share_name_on_badges')

    with op.batch_alter_table('badge_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_badge_assertions_learner_id'))

    op.drop_table('badge_assertions')
