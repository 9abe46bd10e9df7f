"""add credential_status: each assertion's bit in the revocation status list

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09

Assertions issued before this revision get their entry here, at a random
index, and revoked ones are marked revoked. Credentials signed before this
revision carry no credentialStatus, so only the copies fetched or baked after
it can be checked against the list.
"""

import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# The same sizing rule as bot.status_list, copied so that this revision keeps
# working when that module changes: at least 131,072 bits, doubled until the
# list is at most half full.
LIST_MIN_BITS = 131_072


def upgrade() -> None:
    table = op.create_table('credential_status',
    sa.Column('status_list_index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('assertion_uid', sa.String(length=36), nullable=False),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('status_list_index'),
    sa.UniqueConstraint('assertion_uid')
    )
    _allocate_existing(table)


def _allocate_existing(table: sa.Table) -> None:
    """Give every existing assertion a distinct random index, and copy its revocation."""
    assertions = sa.table(
        'badge_assertions',
        sa.column('id', sa.Integer()),
        sa.column('uid', sa.String()),
        sa.column('revoked_at', sa.DateTime(timezone=True)),
        sa.column('revocation_reason', sa.Text()),
    )
    rows = op.get_bind().execute(
        sa.select(assertions.c.uid, assertions.c.revoked_at, assertions.c.revocation_reason)
        .order_by(assertions.c.id)
    ).all()
    if not rows:
        return
    size = LIST_MIN_BITS
    while len(rows) > size // 2:
        size *= 2
    # sample() draws distinct indexes, so no clash can occur here.
    indexes = secrets.SystemRandom().sample(range(size), len(rows))
    now = datetime.now(timezone.utc)
    op.bulk_insert(table, [
        {'status_list_index': index, 'assertion_uid': row.uid, 'allocated_at': now,
         'revoked_at': row.revoked_at, 'revocation_reason': row.revocation_reason}
        for index, row in zip(indexes, rows)
    ])


def downgrade() -> None:
    # NOTE: this loses the revoked bits of assertions that /forget deleted, and an
    # upgrade after it gives the remaining assertions new indexes, which no longer
    # match the credentials served before.
    op.drop_table('credential_status')
