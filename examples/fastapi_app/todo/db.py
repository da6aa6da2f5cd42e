"""The application's own async engine. It knows nothing about tests: it reads DATABASE_URL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import cache

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# DATABASE_URL may name a sync driver (the form Alembic and alembic-cleandb use); the app
# talks to the same database through the async driver of the same family.
ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
}


def async_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    return parsed.set(drivername=ASYNC_DRIVERS[parsed.get_backend_name()])


@cache
def engine() -> AsyncEngine:
    return create_async_engine(async_url(os.environ.get("DATABASE_URL", "sqlite:///todo.db")))


async def session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request."""
    async with async_sessionmaker(engine(), expire_on_commit=False)() as s:
        yield s
