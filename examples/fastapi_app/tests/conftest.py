from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from todo import db
from todo.main import app


@pytest.fixture(scope="session")
async def engine_disposed() -> AsyncIterator[None]:
    """Close the app's pooled connections at the end of the run."""
    yield
    await db.engine().dispose()


@pytest.fixture
async def client(engine_disposed: None) -> AsyncIterator[httpx.AsyncClient]:
    # The app's requests commit through its own async engine; the plugin's reset after each
    # test puts the rows and ids back. No transaction wrapping, no dependency override.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
