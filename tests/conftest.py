"""Fixtures for tests against real PostgreSQL, MariaDB and SQLite.

Server URLs come from CLEANDB_TEST_POSTGRESQL / CLEANDB_TEST_MARIADB (defaults: the local
servers .ci/run starts). A server that does not answer fails the tests that need it: a
backend is never skipped silently.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("postgresql", "mariadb", "sqlite")
SERVERS = {
    "postgresql": os.environ.get(
        "CLEANDB_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("CLEANDB_TEST_MARIADB", "mariadb+pymysql://root@127.0.0.1:3306/"),
}
_reachable: dict[str, str | None] = {}


def server_engine(backend: str) -> sa.Engine:
    engine = sa.create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")
    if backend not in _reachable:
        try:
            with engine.connect():
                _reachable[backend] = None
        except sa.exc.OperationalError as exc:
            _reachable[backend] = str(exc.orig).splitlines()[0]
    if _reachable[backend] is not None:
        pytest.fail(
            f"{backend} server {SERVERS[backend]} is not answering ({_reachable[backend]}): "
            "start it (`bash .ci/services`) — backend tests are never skipped",
            pytrace=False,
        )
    return engine


class Databases:
    """Creates throw-away databases whose names need quoting; drops them afterwards."""

    def __init__(self, backend: str, tmp_path: Path):
        self.backend = backend
        self.tmp_path = tmp_path
        self.created: list[str] = []

    def create(self, name: str | None = None) -> str:
        name = name or f"cleandb-test-{uuid.uuid4().hex[:8]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_path / (name + '.db')}"
        engine = server_engine(self.backend)
        quote = engine.dialect.identifier_preparer.quote
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(name)}")
            connection.exec_driver_sql(f"CREATE DATABASE {quote(name)}")
        engine.dispose()
        self.created.append(name)
        return str(engine.url.set(database=name).render_as_string(hide_password=False))

    def drop_all(self) -> None:
        if not self.created:
            return
        engine = server_engine(self.backend)
        quote = engine.dialect.identifier_preparer.quote
        force = " WITH (FORCE)" if self.backend == "postgresql" else ""
        with engine.connect() as connection:
            if self.backend == "mariadb":  # a transaction left open in it: an error, not a hang
                connection.exec_driver_sql("SET SESSION lock_wait_timeout = 60")
            for name in self.created:
                drop = f"DROP DATABASE IF EXISTS {quote(name)}{force}"
                try:
                    connection.exec_driver_sql(drop)
                except sa.exc.OperationalError as exc:
                    if not remove_stray_trigger_backups(connection, exc):
                        raise
                    connection.exec_driver_sql(drop)
        engine.dispose()


def remove_stray_trigger_backups(connection: sa.Connection, exc: sa.exc.OperationalError) -> bool:
    """MariaDB 10.11, under load, sometimes leaves a ``<table>.TRG-`` backup file in a database's
    directory after CREATE TRIGGERs in two databases at once, and the database cannot be dropped
    ("Directory not empty"; the library's own drop says so). The test servers are local: remove
    those files so that the DROP can be retried. False: not that error, or nothing removed."""
    found = re.search(r"rmdir '\./([^']+)'.*Directory not empty", str(exc.orig.args[-1]))
    if connection.dialect.name not in ("mysql", "mariadb") or not found:
        return False
    datadir = Path(connection.exec_driver_sql("SELECT @@datadir").scalar_one())
    stray = list((datadir / found.group(1)).glob("*.TRG-"))
    for path in stray:
        path.unlink()
    return bool(stray)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def databases(backend: str, tmp_path: Path) -> Iterator[Databases]:
    dbs = Databases(backend, tmp_path)
    yield dbs
    dbs.drop_all()


@pytest.fixture
def db_url(databases: Databases) -> str:
    """A fresh, empty test database."""
    return databases.create()


def alembic_config(url: str, cleandb: bool = True) -> Config:
    """The repository's alembic.ini, test ([cleandb]) or production ([alembic]) section."""
    config = Config(str(ROOT / "alembic.ini"), ini_section="cleandb" if cleandb else "alembic")
    config.attributes["url"] = url
    return config


def upgrade(url: str, target: str = "heads", cleandb: bool = True) -> None:
    command.upgrade(alembic_config(url, cleandb), target)


@pytest.fixture
def migrated(db_url: str) -> str:
    """A test database migrated to head, with tracking installed (`-n cleandb upgrade heads`)."""
    upgrade(db_url)
    return db_url


@pytest.fixture
def engine_factory() -> Iterator[Callable[[str], sa.Engine]]:
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        engine = sa.create_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
