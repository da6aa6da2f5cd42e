"""The application's own async engine. It knows nothing about tests: it reads DATABASE_URL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import cache

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


@cache
def engine() -> AsyncEngine:
    """Created on first use, from DATABASE_URL (the pytest plugin sets it for the tests)."""
    return create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///todo.db"))


async def session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request."""
    async with async_sessionmaker(engine(), expire_on_commit=False)() as s:
        yield s
