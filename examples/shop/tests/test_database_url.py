"""Where the application's database comes from, under `pytest` and `pytest -n 4`."""

import os

from sqlalchemy.engine import make_url

from shop import db


def test_the_app_uses_the_database_the_plugin_resets(cleandb_url):
    # cleandb_url_env = DATABASE_URL: set before any test or fixture runs. Under
    # pytest-xdist it names this worker's copy (shop_test_gw0, shop_test_gw1, ...).
    assert os.environ["DATABASE_URL"] == cleandb_url
    assert db.engine().url.database == make_url(cleandb_url).database
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        assert make_url(cleandb_url).database.endswith((f"_{worker}", f"_{worker}.db"))
