"""The application's own engine. It knows nothing about tests: it reads DATABASE_URL."""

from __future__ import annotations

import os
from functools import cache

import sqlalchemy as sa
from sqlalchemy.orm import Session


@cache
def engine() -> sa.Engine:
    """Created on first use, from DATABASE_URL (the pytest plugin sets it for the tests)."""
    return sa.create_engine(os.environ.get("DATABASE_URL", "sqlite:///shop.db"))


def session() -> Session:
    return Session(engine(), expire_on_commit=False)
