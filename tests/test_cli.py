"""``python -m alembic_cleandb init`` and ``demo``: the template and the SQLite demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import alembic_cleandb
from alembic_cleandb.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def test_demo_shows_a_reset_on_sqlite() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic_cleandb", "demo"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert any("a test wrote:" in line and "PAID!" in line for line in lines)
    after = next(line for line in lines if line.startswith("after the reset:"))
    assert "orders=[]" in after and "(2, 'paid')" in after
    assert lines[-1].split()[-1] == "1"


def test_demo_migrates_its_own_database_whatever_database_url_says(tmp_path: Path) -> None:
    """The template's env.py prefers DATABASE_URL; a shell that has one set (for the user's
    application) must not have the demo migrate that database."""
    other = tmp_path / "users_app.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{other}"}
    result = subprocess.run(
        [sys.executable, "-m", "alembic_cleandb", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].split()[-1] == "1"
    assert not other.exists()


def test_init_writes_an_environment_wired_with_the_hook(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "migrations"]) == 0
    env = (tmp_path / "migrations" / "env.py").read_text()
    assert "**alembic_cleandb.env_options()" in env
    assert env == (ROOT / "migrations_template" / "env.py").read_text()
    ini = Config(str(tmp_path / "alembic.ini"), ini_section="cleandb")
    prod = Config(str(tmp_path / "alembic.ini"))
    assert ScriptDirectory.from_config(prod).get_heads() == []
    assert ScriptDirectory.from_config(ini).get_heads() == [alembic_cleandb.REVISION]
    url = f"sqlite:///{tmp_path / 'app_test.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    command.upgrade(ini, "heads")
    assert alembic_cleandb.clean(url) == 0
