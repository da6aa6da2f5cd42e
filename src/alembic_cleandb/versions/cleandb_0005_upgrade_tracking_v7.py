"""alembic-cleandb: upgrade tracking to schema version 7.

Version 7 (issues 12 and 15): real-world MySQL/MariaDB and SQLite schemas (seeded append-only
tables, id 0 rows, MariaDB sequences, system-versioned tables, FTS5), the changes a failing
test made, scoped baselines and resets that keep counters counting. Tracking of an older
version is re-installed with the same options, the current rows becoming the baseline;
current tracking is left as it is.

Revision ID: cleandb_0005
Revises: cleandb_0004
"""

from alembic import op

import alembic_cleandb.operations  # noqa: F401  (registers op.upgrade_clean_tracking)

revision = "cleandb_0005"
down_revision = "cleandb_0004"
branch_labels = None
depends_on = None

#: The tracking schema version this revision brings (test_upgrade.py checks the head's).
schema_version = 7


def upgrade() -> None:
    op.upgrade_clean_tracking()  # type: ignore[attr-defined]


def downgrade() -> None:
    pass  # tracking keeps this version's shape; cleandb@base removes it
