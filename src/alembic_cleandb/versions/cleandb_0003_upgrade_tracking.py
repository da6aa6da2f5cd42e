"""alembic-cleandb: upgrade tracking to schema version 5 (real-world PostgreSQL schemas).

Tracking of an older schema version is re-installed as version 5 with the same options, the
current rows becoming the baseline; already current tracking is left as it is. Version 5
changed the shape of PostgreSQL's tracking (SECURITY DEFINER marking, ENABLE ALWAYS
triggers, checked references to untracked tables, tracked free sequences).

Revision ID: cleandb_0003
Revises: cleandb_0002
"""

from alembic import op

import alembic_cleandb.operations  # noqa: F401  (registers op.upgrade_clean_tracking)

revision = "cleandb_0003"
down_revision = "cleandb_0002"
branch_labels = None
depends_on = None

#: The tracking schema version this revision brings (test_upgrade.py checks the head's).
schema_version = 5


def upgrade() -> None:
    op.upgrade_clean_tracking()  # type: ignore[attr-defined]


def downgrade() -> None:
    pass  # tracking keeps this version's shape; cleandb@base removes it
