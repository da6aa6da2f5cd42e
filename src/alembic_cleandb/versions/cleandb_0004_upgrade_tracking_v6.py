"""alembic-cleandb: upgrade tracking to schema version 6.

Version 6 (issue 12, real-world schemas): foreign-key checks for untracked tables, the cascade
closure, in-place restore statements, binary-collated bookkeeping tables and application
triggers per table (MySQL family; SQLite: the checks' and triggers' columns). Tracking of an
older version is re-installed with the same options, the current rows becoming the baseline;
current tracking is left as it is.

Revision ID: cleandb_0004
Revises: cleandb_0003
"""

from alembic import op

import alembic_cleandb.operations  # noqa: F401  (registers op.upgrade_clean_tracking)

revision = "cleandb_0004"
down_revision = "cleandb_0003"
branch_labels = None
depends_on = None

#: The tracking schema version this revision brings (test_upgrade.py checks the head's).
schema_version = 6


def upgrade() -> None:
    op.upgrade_clean_tracking()  # type: ignore[attr-defined]


def downgrade() -> None:
    pass  # tracking keeps this version's shape; cleandb@base removes it
