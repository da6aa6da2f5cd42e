"""One backend per database family, picked by SQLAlchemy's dialect name.

Each dialect module holds all of its family's SQL in one :class:`~.base.Backend` subclass: the
tracking it installs, the reset, and the server-level statements that create, copy and drop
whole test databases. ``_clientside`` holds what MySQL/MariaDB and SQLite share (tracking
attached from the client). The registry below is filled here, at import: dialect modules do
not register themselves.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from .._connect import normalize_url
from ..errors import ConfigurationError
from .base import Backend
from .mysql import MySQLBackend
from .postgresql import PostgreSQLBackend
from .sqlite import SQLiteBackend

__all__ = ["Backend", "backend_for", "backend_for_url"]

#: Dialect name -> backend class. MariaDB shares MySQL's backend, which asks the server which
#: of the two it is where that matters.
_BACKENDS: dict[str, type[Backend]] = {
    name: cls for cls in (PostgreSQLBackend, MySQLBackend, SQLiteBackend) for name in cls.names
}


def backend_for(dialect_name: str) -> Backend:
    """The backend for a SQLAlchemy dialect name (``postgresql``, ``mysql``, ``mariadb``, ...)."""
    try:
        return _BACKENDS[dialect_name]()
    except KeyError:
        raise ConfigurationError(
            f"alembic-cleandb does not support the {dialect_name!r} dialect; supported: "
            f"{', '.join(sorted(_BACKENDS))}"
        ) from None


def backend_for_url(url: str | URL) -> Backend:
    """The backend for a database URL, e.g. to create, copy or drop that database."""
    return backend_for(normalize_url(url).get_backend_name())
