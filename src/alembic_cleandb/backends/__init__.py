"""One backend per database family, picked by SQLAlchemy's ``dialect.name``.

Each dialect module (``postgresql``, ``mysql`` — also MariaDB —, ``sqlite``) holds all of that
family's SQL: the tracking it installs, the reset, and the server-level statements that create,
copy and drop whole test databases.
"""

from __future__ import annotations

from .base import backend_for

__all__ = ["backend_for"]
