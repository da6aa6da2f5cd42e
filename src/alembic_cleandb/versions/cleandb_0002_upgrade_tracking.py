"""alembic-cleandb: upgrade tracking installed by an older version of the library.

Tracking of schema version 3 or older is re-installed as version 4 with the same options, the
current rows becoming the baseline; already current tracking is left as it is. A later change
of shape adds a revision like this one.

Revision ID: cleandb_0002
Revises: cleandb_0001
"""

from alembic import op

import alembic_cleandb.operations  # noqa: F401  (registers op.upgrade_clean_tracking)

revision = "cleandb_0002"
down_revision = "cleandb_0001"
branch_labels = None
depends_on = None

#: The tracking schema version this revision brings (test_upgrade.py checks the head's).
schema_version = 4


def upgrade() -> None:
    op.upgrade_clean_tracking()  # type: ignore[attr-defined]


def downgrade() -> None:
    pass  # tracking keeps this version's shape; cleandb@base removes it
