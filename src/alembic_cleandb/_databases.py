"""Creating, copying and dropping whole test databases (for the pytest plugin).

One :class:`Admin` per database family, picked by dialect name; PostgreSQL's and SQLite's live
in their dialect modules with the rest of their SQL. Used to create a missing test database
before migrating it (``cleandb_migrate``) and to give every pytest-xdist worker its own copy of
the migrated, tracked database:

- PostgreSQL: ``CREATE DATABASE copy TEMPLATE base``, then :func:`~alembic_cleandb.adopt`;
- MySQL/MariaDB: ``CREATE DATABASE``, each table from ``SHOW CREATE TABLE`` with its rows, the
  views, triggers and routines, then tracking installed afresh (the base was just reset, so the
  copy's baseline is the base's baseline);
- SQLite: the file, copied with SQLite's backup API, then :func:`~alembic_cleandb.adopt`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from ._base import Executor, backend_for
from ._connect import autocommit_connection, connect, create_engine, normalize_url, safe_url
from ._guard import check_database_name
from .errors import CleanDBError, ConfigurationError

__all__ = ["admin_for", "fingerprint"]


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


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
                errors.append(_reason(exc))
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


_DEFINER = re.compile(r"DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`\s*")


class MySQLAdmin(Admin):
    names = ("mysql", "mariadb")

    def _server(self, url: URL) -> AbstractContextManager[Connection]:
        return server_connection(url, (None,))

    def exists(self, url: URL) -> bool:
        with self._server(url) as c:
            found = c.exec_driver_sql(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %(name)s",
                {"name": self.database(url)},
            ).scalar()
        return found is not None

    def create_empty(self, url: URL) -> None:
        name = self.database(url)
        check_database_name(name, "create")
        with self._server(url) as c:
            try:
                c.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {quote(c, name)}")
            except sa.exc.DBAPIError as exc:
                raise create_failed(url, exc) from None

    def copy(self, base: URL, copy: URL) -> None:
        name = self.database(copy)
        with autocommit_connection(base) as src:
            q = src.dialect.identifier_preparer.quote
            charset, collation = src.exec_driver_sql(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"
            ).one()
            try:
                src.exec_driver_sql(
                    f"CREATE DATABASE {q(name)} CHARACTER SET {charset} COLLATE {collation}"
                )
            except sa.exc.DBAPIError as exc:
                raise create_failed(copy, exc) from None
            backend = backend_for(src.dialect.name)
            # Track in the copy exactly what the base tracks: its exclusions, and the tables
            # created outside migrations that no sync has attached yet.
            excluded = set(backend._excluded(src))  # type: ignore[attr-defined]
            tracked = set(backend.tracked_tables(src))
            excluded.update(
                str(t)
                for (t,) in src.exec_driver_sql(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                )
                if not backend.own_table(str(t)) and str(t) not in tracked
            )
            with autocommit_connection(copy) as dst:
                run = Executor.for_connection(dst)
                run("SET SESSION foreign_key_checks = 0")
                self._copy_objects(src, run, q, backend.own_table)
                run("SET SESSION foreign_key_checks = 1")
                _install_tracking(dst, sorted(excluded))

    @staticmethod
    def _copy_objects(
        src: Connection, run: Executor, q: Callable[[str], str], own: Callable[[str], bool]
    ) -> None:
        """Tables with their rows, then views, triggers and routines (not cleandb's own)."""
        base_db = str(src.exec_driver_sql("SELECT DATABASE()").scalar())
        tables = src.exec_driver_sql(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
        ).fetchall()
        views = []
        for table, kind in tables:
            if own(table):
                continue
            if kind == "VIEW":
                views.append(table)
                continue
            run(src.exec_driver_sql(f"SHOW CREATE TABLE {q(table)}").one()[1])
            cols = ", ".join(
                q(str(c))
                for c, extra in src.exec_driver_sql(
                    "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS WHERE "
                    "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %(t)s ORDER BY ORDINAL_POSITION",
                    {"t": table},
                )
                if not any(w in str(extra).upper() for w in ("GENERATED", "VIRTUAL", "PERSISTENT"))
            )
            run(f"INSERT INTO {q(table)} ({cols}) SELECT {cols} FROM {q(base_db)}.{q(table)}")
        # Views may use views: create them in rounds until none is left.
        while views:
            left = []
            for view in views:
                ddl = _DEFINER.sub("", src.exec_driver_sql(f"SHOW CREATE VIEW {q(view)}").one()[1])
                try:
                    run(ddl)
                except Exception:
                    left.append(view)
            if len(left) == len(views):
                raise ConfigurationError(
                    f"alembic-cleandb: cannot copy the views {', '.join(left)} of "
                    f"{base_db!r} for a pytest-xdist worker"
                )
            views = left
        triggers = src.exec_driver_sql(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY TRIGGER_NAME"
        ).fetchall()
        for (trigger,) in triggers:
            if own(trigger):
                continue
            row = src.exec_driver_sql(f"SHOW CREATE TRIGGER {q(trigger)}").one()
            run(_sql_mode(row[1]))
            run(_DEFINER.sub("", row[2]))
        routines = src.exec_driver_sql(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME"
        ).fetchall()
        for routine, kind in routines:
            if own(routine):
                continue
            row = src.exec_driver_sql(f"SHOW CREATE {kind} {q(routine)}").one()
            run(_sql_mode(row[1]))
            run(_DEFINER.sub("", row[2]))

    def drop(self, url: URL) -> None:
        with self._server(url) as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(c, self.database(url))}")


def _sql_mode(mode: object) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_,]*", str(mode)):
        raise ConfigurationError(f"alembic-cleandb: unexpected sql_mode {mode!r}")
    return f"SET SESSION sql_mode = '{mode}'"


def _install_tracking(connection: Connection, exclude: list[str]) -> None:
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from . import operations  # noqa: F401  (registers the operation)

    context = MigrationContext.configure(connection)
    Operations(context).install_clean_tracking(exclude=exclude)  # type: ignore[attr-defined]


def quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def create_failed(url: URL, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"alembic-cleandb: cannot create the test database {safe_url(url)!r}: {_reason(exc)}. "
        "The URL's user needs the right to create databases (PostgreSQL: CREATEDB; MySQL: "
        "CREATE), or create the database yourself."
    )


_ADMINS: dict[str, type[Admin]] = {}


def register_admin(cls: type[Admin]) -> None:
    """Called by each dialect module for its :class:`Admin` (its server-level SQL lives there)."""
    for name in cls.names:
        _ADMINS[name] = cls


register_admin(MySQLAdmin)


def admin_for(url: str | URL) -> Admin:
    from . import postgresql, sqlite  # noqa: F401  (modules register their admins)

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
                    rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                    heads = sorted(str(r[0]) for r in rows)
            except sa.exc.DBAPIError:
                return None
        return f"tracking={version};alembic={','.join(heads)}"
    finally:
        engine.dispose()
