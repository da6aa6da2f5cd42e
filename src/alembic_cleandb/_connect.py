"""URLs in, live connections out: accepts plain and SQLAlchemy URL forms.

The library's own connections use one sync driver per family (psycopg or psycopg2, PyMySQL or
mysqlclient, the sqlite3 module). A URL naming another driver of the family (asyncpg,
psycopg_async, pg8000, asyncmy, aiomysql, aiosqlite) reaches the same database through the
family's sync driver; an application keeps the URL as written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Union

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from .errors import ConfigurationError, NotInstalledError


class MissingDatabaseError(ConfigurationError, NotInstalledError):
    """The database file does not exist (so neither does tracking)."""


if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: What the public functions accept as "a database".
Target = Union[str, URL, Engine, Connection, "AsyncEngine", "AsyncConnection"]

# Plain URLs get the driver the extras install.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_EXTRA = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
#: The sync drivers the library runs on itself (SQLAlchemy driver names).
NATIVE_DRIVERS = frozenset({"psycopg", "psycopg2", "pymysql", "mysqldb", "pysqlite"})
#: Per family, the sync driver that replaces any other driver for the library's connection.
_SYNC_DRIVER = {
    "postgresql": "psycopg",
    "mysql": "pymysql",
    "mariadb": "pymysql",
    "sqlite": "pysqlite",
}


def app_url(url: str | URL) -> URL:
    """``url`` as an application uses it: plain ``postgresql://``/``mysql://`` get the extras'
    drivers, every other form (an async driver included) is kept."""
    parsed = make_url(url)
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    return parsed


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` into the URL of the library's own connection: plain
    ``postgresql://``/``mysql://`` URLs get the extras' drivers, and a driver the library does
    not run on (``+asyncpg``, ``+aiosqlite``, ``+pg8000``, ...) the family's sync driver."""
    try:
        parsed = app_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"alembic-cleandb: {safe_url(url)!r} is not a database URL ({exc}). Use a form like "
            "postgresql://user@localhost/app_test, mysql://root@127.0.0.1/app_test or "
            "sqlite:///test.db"
        ) from None
    backend = parsed.get_backend_name()
    if backend in _SYNC_DRIVER and parsed.get_driver_name() not in NATIVE_DRIVERS:
        parsed = parsed.set(drivername=f"{backend}+{_SYNC_DRIVER[backend]}")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def create_engine(url: str | URL) -> Engine:
    """An engine without a pool: the cleaner holds its one connection itself.

    Its driver is the family's sync driver when ``url`` names another one (async drivers
    need an event loop the library does not run).
    """
    parsed = normalize_url(url)
    try:
        return sa.create_engine(parsed, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    except NoSuchModuleError:
        raise ConfigurationError(
            f"alembic-cleandb: unknown database kind in {safe_url(parsed)!r}; supported: "
            "postgresql://, mysql://, mariadb:// and sqlite:/// (or their +driver forms)"
        ) from None
    except ModuleNotFoundError as exc:
        extra = _EXTRA.get(parsed.get_backend_name(), parsed.get_backend_name())
        written = make_url(url).get_driver_name()
        via = (
            f" (alembic-cleandb connects with {parsed.get_driver_name()}, the sync driver of "
            f"the family, whatever driver the URL names: {written} here)"
            if written != parsed.get_driver_name()
            else ""
        )
        raise ConfigurationError(
            f"alembic-cleandb: the driver for {safe_url(parsed)!r} is not installed "
            f"({exc.name}){via}. Install it with: pip install 'alembic-cleandb[{extra}]'"
        ) from None


def connect(engine: Engine) -> Connection:
    """Open a connection, turning driver errors into one readable message.

    A SQLite file that does not exist is an error too (SQLite would create an empty one).
    """
    url = engine.url
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
        raise MissingDatabaseError(
            f"alembic-cleandb: the SQLite database {path!r} does not exist; nothing was created. "
            "Create it by running the migrations, tracking included: "
            "`alembic -n cleandb upgrade heads` (tracking alone: "
            "`alembic -n cleandb upgrade cleandb@head`)."
        )
    try:
        return engine.connect()
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if url.password:  # drivers do not echo it, but never take the chance
            reason = reason.replace(str(url.password), "***")
        raise ConfigurationError(
            f"alembic-cleandb: cannot connect to {safe_url(engine.url)!r}: {reason}. Check that "
            "the server runs, the database exists (create it and run the migrations) and the "
            "credentials in the URL are right."
        ) from None


def native(dialect_driver: str) -> bool:
    """True when the library runs on this SQLAlchemy driver itself (no connection of its own)."""
    return dialect_driver in NATIVE_DRIVERS


def _url_of(target: Any) -> URL | None:
    """The URL behind an Engine, Connection, AsyncEngine or AsyncConnection whose driver the
    library does not run on (an async driver, pg8000); ``None`` when it runs on ``target``."""
    engine = getattr(target, "sync_engine", None)  # AsyncEngine, AsyncConnection
    if engine is None:
        if isinstance(target, Engine):
            engine = target
        elif isinstance(target, Connection):
            engine = target.engine
        else:
            raise ConfigurationError(
                f"alembic-cleandb: cannot use {target!r} as a database; pass a URL, an Engine, "
                "a Connection, an AsyncEngine or an AsyncConnection"
            )
        if native(engine.dialect.driver) and not engine.dialect.is_async:
            return None
    url: URL = engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigurationError(
            f"alembic-cleandb: {safe_url(url)!r} is an in-memory SQLite database, which only "
            "its own connection sees, and the library cannot use an async connection. Pass "
            "a Connection of the sqlite3 driver (sqlite+pysqlite://, StaticPool), or use a "
            "database file"
        )
    return url


@contextmanager
def autocommit_connection(target: Target) -> Iterator[Connection]:
    """A connection in AUTOCOMMIT mode to ``target``; closed afterwards if we opened it.

    An Engine or Connection of a driver the library does not run on (an ``AsyncEngine``, an
    ``AsyncConnection``, the sync Connection that ``AsyncConnection.run_sync()`` hands out, or
    pg8000) is reached through a connection of the library's own, with the family's sync
    driver, to the same database.
    """
    url: str | URL | None = target if isinstance(target, (str, URL)) else _url_of(target)
    if url is None and isinstance(target, Connection):
        yield target
        return
    if url is None and isinstance(target, Engine):
        autocommit: Engine = target.execution_options(isolation_level="AUTOCOMMIT")
        with connect(autocommit) as connection:
            yield connection
        return
    assert url is not None
    engine = create_engine(url)
    try:
        with connect(engine) as connection:
            yield connection
    finally:
        engine.dispose()
