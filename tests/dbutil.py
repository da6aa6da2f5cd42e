"""Small helpers the tests use to look at and write to a database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

LONG_NAME = "a_table_whose_name_is_exactly_sixty_four_characters_long_abcdefg"


def long_table_name(url: str) -> str:
    """The longest table name the backend allows (64 on MySQL, 63 on PostgreSQL)."""
    dialect = sa.make_url(url).get_dialect()()
    return LONG_NAME[: dialect.max_identifier_length]


@contextmanager
def connect(url: str, begin: bool = True) -> Iterator[sa.Connection]:
    """A connection in a transaction committed at the end; ``begin=False``: a plain
    SQLAlchemy 2 connection (autobegin only, whatever is left open rolled back on close)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() if begin else engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def q(connection: sa.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def execute(url: str, *statements: str, **params: Any) -> None:
    with connect(url) as c:
        for statement in statements:
            c.execute(sa.text(statement), params)


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with connect(url) as c:
        result = c.execute(sa.text(f"SELECT * FROM {q(c, table)}"))
        return sorted((tuple(r) for r in result), key=repr)


def count(url: str, table: str) -> int:
    with connect(url) as c:
        return int(c.execute(sa.text(f"SELECT COUNT(*) FROM {q(c, table)}")).scalar_one())


def insert(url: str, table: str, **values: Any) -> int | None:
    """Insert one row; return the generated key (``id``) if the table has one."""
    with connect(url) as c:
        t = sa.Table(table, sa.MetaData(), autoload_with=c)
        result = c.execute(t.insert().values(**values))
        key = result.inserted_primary_key
        return int(key[0]) if key and key[0] is not None and len(key) == 1 else None


def dump(url: str, tables: list[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every user table (cleandb's own excluded)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        names = [
            n
            for n in sa.inspect(engine).get_table_names()
            if not n.startswith("cleandb_") and n != "alembic_version"
        ]
    finally:
        engine.dispose()
    return {name: rows(url, name) for name in (tables or names)}
