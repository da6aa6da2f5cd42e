"""examples/shop - the README's first command - passes on SQLite with no server, and on
PostgreSQL and MariaDB by setting one environment variable; with and without -n 2. So do
examples/flask_app (Flask-Migrate) and examples/fastapi_app (FastAPI, async SQLAlchemy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import ROOT

pytestmark = pytest.mark.slow  # runs the example's pytest in a subprocess

SHOP = ROOT / "examples" / "shop"


def run_example(
    name: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``cd examples/<name> && python -m pytest ...`` in a fresh copy of the example."""
    copy = tmp_path / name
    if not copy.exists():
        shutil.copytree(
            ROOT / "examples" / name,
            copy,
            ignore=shutil.ignore_patterns("__pycache__", "*.db", ".pytest_cache", "instance"),
        )
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "CLEANDB_")) and k != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=copy,
        env={**clean_env, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_shop(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_example("shop", tmp_path, *args, **env)


def _passed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_shop(tmp_path: Path, databases, backend: str, workers: str) -> None:
    env = {}
    if backend != "sqlite":
        env["CLEANDB_URLS"] = databases.create(f"shop_test_{os.getpid()}_{workers}")
    result = run_shop(tmp_path, "-n", workers, **env)
    assert "11 passed" in _passed(result)
    assert "cleandb: " in result.stdout
    if backend == "sqlite":
        assert (tmp_path / "shop" / "shop_test.db").exists()
        assert not list((tmp_path / "shop").glob("shop_test_gw*.db"))  # worker copies dropped


def test_shop_twice_in_a_row_and_in_reverse_order(tmp_path: Path) -> None:
    assert "11 passed" in _passed(run_shop(tmp_path))
    assert "11 passed" in _passed(run_shop(tmp_path, "-p", "no:randomly"))
    # Reverse the file order: each test stands alone.
    tests = sorted((tmp_path / "shop" / "tests").glob("test_*.py"), reverse=True)
    assert "11 passed" in _passed(run_shop(tmp_path, *map(str, tests)))


def test_without_the_plugin_the_shop_tests_fail(tmp_path: Path) -> None:
    """The control experiment: the example's tests really rely on the reset."""
    assert "11 passed" in _passed(run_shop(tmp_path))  # migrates shop_test.db
    result = run_shop(
        tmp_path,
        "-p",
        "no:cleandb",
        "-o",
        "cleandb_urls=",
        "--override-ini=cleandb_url_env=",
        **{"DATABASE_URL": f"sqlite:///{tmp_path / 'shop' / 'shop_test.db'}"},
    )
    assert result.returncode == 1, result.stdout + result.stderr


@pytest.mark.parametrize("workers", ["0", "2"])
def test_flask_app(tmp_path: Path, databases, backend: str, workers: str) -> None:
    """Flask-Migrate: cleandb_migrate = migrations/alembic.ini; the seed's two id == 1 tests;
    a test that leaves the scoped session's transaction open; the migration's seed row
    deleted once, then set_baseline()."""
    env = {}
    if backend != "sqlite":
        env["CLEANDB_URLS"] = databases.create(f"flaskr_test_{os.getpid()}_{workers}")
    result = run_example("flask_app", tmp_path, "-n", workers, "-p", "no:randomly", **env)
    assert "7 passed" in _passed(result)
    if workers == "0":  # again: migrated already, the seed row gone, the baseline kept
        assert "7 passed" in _passed(run_example("flask_app", tmp_path, **env))


NO_RESET = """
import os
import pytest

@pytest.fixture(scope="session")
def cleandb_url():
    return os.environ["DATABASE_URL"]

@pytest.fixture
def cleandb_reset():
    yield
"""


def test_without_the_plugin_the_flask_tests_fail(tmp_path: Path) -> None:
    """The control: the same tests, with fixtures of the same names that reset nothing."""
    assert "7 passed" in _passed(run_example("flask_app", tmp_path))  # migrates flaskr_test.db
    (tmp_path / "flask_app" / "no_reset.py").write_text(NO_RESET)
    result = run_example(
        "flask_app",
        tmp_path,
        "-p",
        "no:cleandb",
        "-p",
        "no_reset",
        "-p",
        "no:randomly",
        "-o",
        "cleandb_urls=",
        "--override-ini=cleandb_url_env=",
        "--override-ini=cleandb_migrate=",
        **{"DATABASE_URL": f"sqlite:///{tmp_path / 'flask_app' / 'flaskr_test.db'}"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "test_user_schema2 - assert 2 == 1" in result.stdout


@pytest.mark.parametrize("workers", ["0", "2"])
def test_fastapi_app(tmp_path: Path, databases, backend: str, workers: str) -> None:
    """FastAPI + async SQLAlchemy, pytest-asyncio, httpx: the URL names the async driver
    (asyncpg, asyncmy, aiosqlite); the app and its async env.py get it as written."""
    env = {}
    if backend != "sqlite":
        url = sa.make_url(databases.create(f"todo_test_{os.getpid()}_{workers}"))
        driver = {"postgresql": "postgresql+asyncpg", "mariadb": "mariadb+asyncmy"}[backend]
        env["CLEANDB_URLS"] = url.set(drivername=driver).render_as_string(hide_password=False)
    result = run_example("fastapi_app", tmp_path, "-n", workers, "-p", "no:randomly", **env)
    assert "4 passed" in _passed(result)


def test_without_the_plugin_the_fastapi_tests_fail(tmp_path: Path) -> None:
    assert "4 passed" in _passed(run_example("fastapi_app", tmp_path))  # migrates todo_test.db
    result = run_example(
        "fastapi_app",
        tmp_path,
        "-p",
        "no:cleandb",
        "-p",
        "no:randomly",
        "-o",
        "cleandb_urls=",
        "--override-ini=cleandb_url_env=",
        "--override-ini=cleandb_migrate=",
        **{"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fastapi_app' / 'todo_test.db'}"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 failed, 2 passed" in result.stdout
