"""Migrating a tracked database through a long history: tracking is synced once, after the
run's last step, and is then exactly what the migrations left; a run that stops in the middle
leaves a database the reset refuses, saying why and how to fix it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from alembic_cleandb import Cleaner, ConfigurationError, clean, enable, set_baseline
from alembic_cleandb.backends import backend_for
from alembic_cleandb.backends.base import Executor
from conftest import ROOT, upgrade
from dbutil import connect, execute, insert, q

pytestmark = pytest.mark.slow  # migrates long generated histories

_spec = importlib.util.spec_from_file_location("history", ROOT / "bench" / "history.py")
assert _spec is not None and _spec.loader is not None
history: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(history)

STEPS = 12  # tables Item-1 and Item-6 and Item-11; Item-6 is seeded by step 10


def _config(root: Path, url: str, per_migration: bool = False) -> Config:
    config = Config()
    config.set_main_option("script_location", str(root))
    config.set_main_option("path_separator", "newline")
    config.set_main_option("version_locations", str(root / "versions"))
    config.attributes["url"] = url
    config.attributes["per_migration"] = per_migration
    return enable(config)


def _tracked(url: str) -> set[str]:
    with connect(url) as c:
        return {n.rpartition(".")[2] for n in backend_for(c.dialect.name).tracked_tables(c)}


def _names(url: str, table: str) -> list[str]:
    with connect(url) as c:
        return sorted(str(r[0]) for r in c.execute(sa.text(f"SELECT name FROM {q(c, table)}")))


def _scribble(url: str, tables: dict[str, list[str]]) -> None:
    """What a test does: insert into every table, change and delete seed rows."""
    for table in tables:
        insert(url, table, name="written by a test")
        with connect(url) as c:
            c.execute(sa.text(f"UPDATE {q(c, table)} SET name = 'changed'"))
        execute(url, f"DELETE FROM {q_name(url, table)} WHERE id = 1")


def q_name(url: str, table: str) -> str:
    return sa.make_url(url).get_dialect()().identifier_preparer.quote(table)


def _baseline(url: str, tables: dict[str, list[str]]) -> dict[str, tuple[list[str], int | None]]:
    """Each table's rows (which must be the migrations' seeds) and the id its next insert
    gets (its counter); the probe rows are reset again."""
    seen = {}
    for table, seeds in tables.items():
        assert _names(url, table) == sorted(seeds), table
        seen[table] = (sorted(seeds), insert(url, table, name="probe"))
    clean(url)
    return seen


def test_a_long_history_leaves_every_table_tracked_at_its_migrated_baseline(
    db_url: str, tmp_path: Path
) -> None:
    upgrade(db_url, "cleandb@head")  # tracking first: then the application's history
    root = history.write_history(tmp_path / "migrations", STEPS)
    command.upgrade(_config(root, db_url), "heads")
    tables = history.expected(STEPS)
    assert set(tables) == {"Item-1", "Item-6", "Item-11"} and tables["Item-6"]
    assert set(tables) <= _tracked(db_url)
    migrated = _baseline(db_url, tables)  # seeds inserted by a later step than the CREATE
    assert migrated["Item-6"] == (["seed-10-a", "seed-10-b"], 3)
    _scribble(db_url, tables)
    assert clean(db_url) == len(tables)
    assert _baseline(db_url, tables) == migrated


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_history_is_synced_once_not_after_every_step(db_url: str, tmp_path: Path) -> None:
    """PostgreSQL counts its syncs (``cleandb.epoch`` moves on at each)."""
    upgrade(db_url, "cleandb@head")
    root = history.write_history(tmp_path / "migrations", STEPS)

    def epoch() -> int:
        with connect(db_url) as c:
            return int(c.execute(sa.text("SELECT last_value FROM cleandb.epoch")).scalar_one())

    before = epoch()
    command.upgrade(_config(root, db_url), "heads")
    assert epoch() == before + 1


def test_a_run_that_stops_in_the_middle_is_refused_until_finished(
    db_url: str, tmp_path: Path
) -> None:
    """Steps 1-9 are committed one by one (transaction_per_migration), step 10 (the seeds of
    Item-6) fails: the baseline would lack the later tables and seeds, so the reset refuses.
    Finishing the migration syncs, and the baseline is the migrations' again."""
    upgrade(db_url, "cleandb@head")
    root = history.write_history(tmp_path / "migrations", STEPS, fail_at=10)
    with pytest.raises(RuntimeError, match="step 10 fails on purpose"):
        command.upgrade(_config(root, db_url, per_migration=True), "heads")
    with pytest.raises(ConfigurationError, match="stopped before its last step.*set_baseline"):
        Cleaner(db_url)
    with pytest.raises(ConfigurationError, match="stopped before its last step"):
        clean(db_url)
    history.write_history(root, STEPS)  # the step is fixed
    command.upgrade(_config(root, db_url, per_migration=True), "heads")
    tables = history.expected(STEPS)
    assert set(tables) <= _tracked(db_url)
    migrated = _baseline(db_url, tables)
    _scribble(db_url, tables)
    assert clean(db_url) == len(tables)
    assert _baseline(db_url, tables) == migrated


def test_set_baseline_takes_a_stopped_run_as_it_is(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url, "cleandb@head")
    root = history.write_history(tmp_path / "migrations", STEPS, fail_at=10)
    with pytest.raises(RuntimeError):
        command.upgrade(_config(root, db_url, per_migration=True), "heads")
    set_baseline(db_url)
    done = history.expected(9)  # steps 1-9: Item-1 and Item-6, no seeds yet
    assert set(done) <= _tracked(db_url)
    migrated = _baseline(db_url, done)
    _scribble(db_url, done)
    assert clean(db_url) == len(done)
    assert _baseline(db_url, done) == migrated


def test_a_run_whose_closing_sync_failed_is_finished_by_upgrading_again(
    db_url: str, tmp_path: Path
) -> None:
    """Every step ran and is stamped, but the sync after the last one did not finish (on
    MariaDB a server that refuses a trigger does this: test_reliability_privileges): the
    database is marked "sync pending" and a step's seed row is not in the baseline. `upgrade
    heads` has no step left to run, and still finishes it."""
    upgrade(db_url, "cleandb@head")
    root = history.write_history(tmp_path / "migrations", STEPS)
    command.upgrade(_config(root, db_url), "heads")
    with connect(db_url) as c:  # what the lost sync would have taken
        assert backend_for(c.dialect.name).mark_sync_pending(Executor.for_connection(c))
        c.execute(sa.text(f"INSERT INTO {q(c, 'Item-6')} (name) VALUES ('seed-late')"))
    with pytest.raises(ConfigurationError, match="stopped before its last step"):
        clean(db_url)
    command.upgrade(_config(root, db_url), "heads")  # no step left to run
    tables = history.expected(STEPS)
    tables["Item-6"] = [*tables["Item-6"], "seed-late"]
    migrated = _baseline(db_url, tables)
    assert migrated["Item-6"] == (["seed-10-a", "seed-10-b", "seed-late"], 4)
    _scribble(db_url, tables)
    assert clean(db_url) == len(tables)
    assert _baseline(db_url, tables) == migrated
