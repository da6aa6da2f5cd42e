"""The Flask recipe (docs/recipes.md): an app per run, an app context per test, the session
removed before the reset, and the migration's demo user deleted once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

import alembic_cleandb
from flaskr import Notice, create_app, db


@pytest.fixture(scope="session")
def app(cleandb_url: str) -> Flask:
    # The plugin has set DATABASE_URL to cleandb_url (the worker's copy under -n 2) and
    # migrated it (cleandb_migrate). The migration seeds a welcome notice that these tests
    # expect gone: delete it once and make that the baseline every reset returns to.
    app = create_app({"TESTING": True})
    with app.app_context():
        db.session.execute(sa.delete(Notice))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    alembic_cleandb.set_baseline(cleandb_url)
    return app


@pytest.fixture(autouse=True)
def app_context(app: Flask, cleandb_reset: None) -> Iterator[None]:
    """Depends on the plugin's cleandb_reset, so its teardown runs first: the scoped session
    is removed (an open transaction rolled back) before the reset, which would otherwise wait
    for that transaction's locks."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def session() -> object:
    return db.session


@pytest.fixture
def client(app: Flask) -> object:
    return app.test_client()
