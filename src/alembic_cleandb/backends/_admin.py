"""Creating, copying and dropping whole test databases (for the pytest plugin).

One :class:`Admin` per database family, picked by dialect name; each lives in its dialect module
(``postgresql.py``, ``mysql.py``, ``sqlite.py``) with the rest of that dialect's SQL, and this
module holds what they share. Used to create a missing test database
before migrating it (``cleandb_migrate``) and to give every pytest-xdist worker its own copy of
the migrated, tracked database:

- PostgreSQL: ``CREATE DATABASE copy TEMPLATE base``, then :func:`~alembic_cleandb.adopt`;
- MySQL/MariaDB: ``CREATE DATABASE``, each table from ``SHOW CREATE TABLE`` with its rows, the
  views, triggers and routines, then tracking installed afresh (the base was just reset, so the
  copy's baseline is the base's baseline);
- SQLite: the file, copied with SQLite's backup API, then :func:`~alembic_cleandb.adopt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .._connect import connect, create_engine, normalize_url, safe_url
from .._guard import check_database_name
from .._sql import SQL, Value, execute, message
from ..errors import CleanDBError, ConfigurationError
from .base import backend_for

__all__ = ["admin_for", "fingerprint"]


class Admin:
    """Server-level operations on one database family."""

    names: ClassVar[tuple[str, ...]] = ()

    def database(self, url: URL) -> str:
        if not url.database:
            raise ConfigurationError(
                f"alembic-cleandb: {safe_url(url)!r} names no database; put the test "
                "database's name in the URL"
            )
        return url.database

    def guard_name(self, url: URL) -> str:
        """The name the test-database guard checks (what ``current_database`` returns)."""
        return self.database(url)

    def exists(self, url: URL) -> bool:
        raise NotImplementedError

    def create_empty(self, url: URL) -> None:
        raise NotImplementedError

    def copy(self, base: URL, copy: URL) -> None:
        """Create ``copy`` (which does not exist) as a tracked copy of ``base``."""
        raise NotImplementedError

    def drop(self, url: URL) -> None:
        raise NotImplementedError

    def copy_url(self, base: URL, suffix: str) -> URL:
        return base.set(database=f"{self.database(base)}_{suffix}")


@contextmanager
def server_connection(url: URL, databases: tuple[str | None, ...]) -> Iterator[Connection]:
    """An AUTOCOMMIT connection to the first maintenance database that accepts us."""
    errors = []
    for name in databases:
        engine = create_engine(url._replace(database=name))
        try:
            try:
                connection = engine.connect()
            except sa.exc.DBAPIError as exc:
                errors.append(message(exc))
                continue
            with connection:
                yield connection
            return
        finally:
            engine.dispose()
    raise ConfigurationError(
        f"alembic-cleandb: cannot connect to the server of {safe_url(url)!r} to create or drop "
        f"test databases: {errors[-1] if errors else 'no maintenance database'}. Check that the "
        "server runs and the URL's user may connect."
    )


class ServerAdmin(Admin):
    """A family with a server: its dialect module gives the maintenance databases to connect
    to and the SQL that finds and creates a database (``{}``: its name, as a value in
    ``exists_sql``, as a name in ``create_sql``)."""

    maintenance: ClassVar[tuple[str | None, ...]] = (None,)
    exists_sql: ClassVar[SQL] = SQL("")
    create_sql: ClassVar[SQL] = SQL("")

    def _server(self, url: URL) -> AbstractContextManager[Connection]:
        return server_connection(url, self.maintenance)

    def exists(self, url: URL) -> bool:
        with self._server(url) as c:
            found = execute(c, self.exists_sql.format(Value(self.database(url)))).scalar()
        return found is not None

    def create_empty(self, url: URL) -> None:
        name = self.database(url)
        check_database_name(name, "create")
        with self._server(url) as c:
            try:
                execute(c, self.create_sql.format(name))
            except sa.exc.DBAPIError as exc:
                raise create_failed(url, exc) from None


def create_failed(url: URL, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"alembic-cleandb: cannot create the test database {safe_url(url)!r}: {message(exc)}. "
        "The URL's user needs the right to create databases (PostgreSQL: CREATEDB; MySQL: "
        "CREATE), or create the database yourself."
    )


_ADMINS: dict[str, type[Admin]] = {}


def register_admin(cls: type[Admin]) -> None:
    """Called by each dialect module for its :class:`Admin` (its server-level SQL lives there)."""
    for name in cls.names:
        _ADMINS[name] = cls


def admin_for(url: str | URL) -> Admin:
    from . import mysql, postgresql, sqlite  # noqa: F401  (modules register their admins)

    parsed = normalize_url(url)
    try:
        return _ADMINS[parsed.get_backend_name()]()
    except KeyError:
        raise ConfigurationError(
            f"alembic-cleandb cannot create or copy {parsed.get_backend_name()!r} databases; "
            f"supported: {', '.join(sorted(_ADMINS))}"
        ) from None


def fingerprint(url: str | URL) -> str | None:
    """What a reusable copy must share with its base: alembic heads and tracking version.

    ``None`` when the database does not exist or cannot be read.
    """
    engine = create_engine(url)
    try:
        try:
            connection = connect(engine)
        except CleanDBError:  # no such database (or server): nothing to reuse
            return None
        with connection:
            try:
                version = backend_for(connection.dialect.name).installed_version(connection)
                heads: list[str] = []
                if sa.inspect(connection).has_table("alembic_version"):
                    rows = execute(connection, "SELECT version_num FROM alembic_version")
                    heads = sorted(str(r[0]) for r in rows)
            except sa.exc.DBAPIError:
                return None
        return f"tracking={version};alembic={','.join(heads)}"
    finally:
        engine.dispose()
