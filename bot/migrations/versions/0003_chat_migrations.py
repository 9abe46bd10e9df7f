"""add chat migrations: chats that a platform moved to a new id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_migrations',
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('old_chat_id', sa.String(length=64), nullable=False),
    sa.Column('new_chat_id', sa.String(length=64), nullable=False),
    sa.Column('migrated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'old_chat_id')
    )


def downgrade() -> None:
    op.drop_table('chat_migrations')
