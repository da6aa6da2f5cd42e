"""alembic-cleandb: install dirty tracking (test databases only).

This revision is the whole ``cleandb`` branch. It is only visible to Alembic configs that
enable it (``alembic -n cleandb ...`` or ``alembic_cleandb.enable(config)``), so production
never sees it.

Revision ID: cleandb_0001
Revises:
"""

from alembic import op

import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)

revision = "cleandb_0001"
down_revision = None
branch_labels = ("cleandb",)
depends_on = None


def upgrade() -> None:
    op.install_clean_tracking()  # type: ignore[attr-defined]


def downgrade() -> None:
    op.drop_clean_tracking()  # type: ignore[attr-defined]
