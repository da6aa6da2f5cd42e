"""examples/shop - the README's first command - passes on SQLite with no server, and on
PostgreSQL and MariaDB by setting one environment variable; with and without -n 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # runs the example's pytest in a subprocess

SHOP = ROOT / "examples" / "shop"


def run_shop(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``cd examples/shop && python -m pytest ...`` in a fresh copy of the example."""
    copy = tmp_path / "shop"
    if not copy.exists():
        shutil.copytree(
            SHOP, copy, ignore=shutil.ignore_patterns("__pycache__", "*.db", ".pytest_cache")
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
