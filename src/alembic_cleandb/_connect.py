"""URLs in, live connections out: accepts plain and SQLAlchemy URL forms."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Union

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from ._sql import message
from .errors import ConfigurationError, NotInstalledError


class MissingDatabaseError(ConfigurationError, NotInstalledError):
    """The database file does not exist (so neither does tracking)."""


#: What the public functions accept as "a database".
Target = Union[str, URL, Engine, Connection]

# Plain URLs get the driver the extras install.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_EXTRA = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://``/``mysql://`` URLs get the extras' drivers."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"alembic-cleandb: {safe_url(url)!r} is not a database URL ({exc}). Use a form like "
            "postgresql://user@localhost/app_test, mysql://root@127.0.0.1/app_test or "
            "sqlite:///test.db"
        ) from None
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def create_engine(url: str | URL) -> Engine:
    """An engine without a pool: the cleaner holds its one connection itself."""
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
        raise ConfigurationError(
            f"alembic-cleandb: the driver for {safe_url(parsed)!r} is not installed ({exc.name}). "
            f"Install it with: pip install 'alembic-cleandb[{extra}]'"
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
        reason = message(exc)
        if url.password:  # drivers do not echo it, but never take the chance
            reason = reason.replace(str(url.password), "***")
        raise ConfigurationError(
            f"alembic-cleandb: cannot connect to {safe_url(engine.url)!r}: {reason}. Check that "
            "the server runs, the database exists (create it and run the migrations) and the "
            "credentials in the URL are right."
        ) from None


@contextmanager
def autocommit_connection(target: Target) -> Iterator[Connection]:
    """A connection in AUTOCOMMIT mode to ``target``; closed afterwards if we opened it."""
    if isinstance(target, Connection):
        yield target
        return
    if isinstance(target, Engine):
        autocommit: Engine = target.execution_options(isolation_level="AUTOCOMMIT")
        with connect(autocommit) as connection:
            yield connection
        return
    engine = create_engine(target)
    try:
        with connect(engine) as connection:
            yield connection
    finally:
        engine.dispose()
