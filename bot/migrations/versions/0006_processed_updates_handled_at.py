"""index processed_updates.handled_at, so that pruning old rows reads only those rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

INDEX = 'ix_processed_updates_handled_at'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # A database that ran for a long time has a large table here. CREATE INDEX
        # CONCURRENTLY keeps accepting updates while it builds, but cannot run inside
        # a transaction, so this step commits on its own. IF NOT EXISTS lets an
        # upgrade that stopped after this step run again.
        # NOTE: a build that was interrupted leaves an INVALID index, which IF NOT
        # EXISTS keeps; drop it with DROP INDEX and upgrade again.
        with op.get_context().autocommit_block():
            op.create_index(INDEX, 'processed_updates', ['handled_at'], unique=False,
                            postgresql_concurrently=True, if_not_exists=True)
        return
    op.create_index(INDEX, 'processed_updates', ['handled_at'], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name='processed_updates')
