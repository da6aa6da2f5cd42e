"""Crash safety: a test process killed mid-test leaves nothing for the next run, and a reset
killed halfway leaves the marks of whatever it did not reset (PostgreSQL: it changes nothing
at all), so the next reset finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from alembic_cleandb import Cleaner, ResetError, clean
from reliability_helpers import PATIENCE, connection, engine, full_dump, marks, q, wait_for

pytestmark = pytest.mark.slow  # kills processes; runs pytest

WRITES_THEN_HANGS = """
import os, pathlib, time
import sqlalchemy as sa

URL = os.environ["CRASH_URL"]

def test_writes_then_hangs():
    engine = sa.create_engine(URL)
    user = engine.dialect.identifier_preparer.quote("user")
    with engine.begin() as c:
        c.execute(sa.text(f"INSERT INTO {user} (name) VALUES ('committed')"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed'"))
        c.execute(sa.text("DELETE FROM lookup_status WHERE id = 4"))
    open_transaction = engine.connect()
    open_transaction.execute(sa.text(f"INSERT INTO {user} (name) VALUES ('never committed')"))
    pathlib.Path(os.environ["CRASH_READY"]).write_text("ready")
    time.sleep(600)  # killed here
"""

STARTS_FROM_BASELINE = """
import os
import sqlalchemy as sa

URL = os.environ["CRASH_URL"]

def test_starts_from_the_baseline():
    engine = sa.create_engine(URL)
    user = engine.dialect.identifier_preparer.quote("user")
    with engine.begin() as c:
        assert c.execute(sa.text(f"SELECT COUNT(*) FROM {user}")).scalar() == 0
        labels = c.execute(sa.text("SELECT label FROM lookup_status ORDER BY id")).scalars()
        assert list(labels) == ["New", "Paid", "Shipped", "Cancelled"]
        table = sa.Table("user", sa.MetaData(), autoload_with=c)
        assert c.execute(table.insert().values(name="first")).inserted_primary_key[0] == 1
"""


def test_a_test_process_killed_mid_test_leaves_nothing_for_the_next_run(
    pytester: pytest.Pytester, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = full_dump(migrated)
    ready = pytester.path / "ready"
    monkeypatch.setenv("CRASH_URL", migrated)
    monkeypatch.setenv("CRASH_READY", str(ready))
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(test_crash=WRITES_THEN_HANGS)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_crash.py"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("the test to write and hang", lambda: ready.exists() or process.poll() is not None)
        assert process.poll() is None, "the crashing test ended on its own"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(PATIENCE)
    assert process.returncode == -signal.SIGKILL
    assert marks(migrated) >= {"user", "lookup_status"}  # the killed run left its writes
    assert full_dump(migrated) != baseline

    Path(pytester.path / "test_crash.py").unlink()
    pytester.makepyfile(test_next=STARTS_FROM_BASELINE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def _dirty_three_tables(url: str) -> None:
    with connection(url) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('u')"))
        c.execute(sa.text("INSERT INTO category (name) VALUES ('c')"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed' WHERE id = 2"))
        c.commit()


def _reset_in_thread(url: str) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with Cleaner(url, lock_timeout=PATIENCE) as cleaner:
                cleaner.reset()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("blocked", ["user", "category", "lookup_status"])
def test_postgresql_reset_killed_midway_changes_nothing_and_keeps_every_mark(
    migrated: str, blocked: str
) -> None:
    baseline = full_dump(migrated)
    _dirty_three_tables(migrated)
    dirty = full_dump(migrated)
    with connection(migrated) as blocker, engine(migrated).connect() as watch:
        blocker.execute(sa.text(f"SELECT * FROM {q(blocker, blocked)} FOR UPDATE"))
        holder = blocker.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        thread, errors = _reset_in_thread(migrated)

        def waiting_reset() -> int | None:
            pid = watch.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%%cleandb_truncate%%' AND pid <> "
                f"{int(holder)}"
            ).scalar()
            watch.rollback()
            return pid

        pid = wait_for("the reset to wait for the lock", waiting_reset)
        watch.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        watch.commit()
        thread.join(PATIENCE)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ResetError)
        blocker.rollback()
    assert full_dump(migrated) == dirty  # all or nothing: nothing
    assert marks(migrated) == {"user", "category", "lookup_status"}
    assert clean(migrated) == 3
    assert full_dump(migrated) == baseline


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_reset_killed_midway_keeps_the_marks_of_what_it_did_not_reset(
    migrated: str,
) -> None:
    baseline = full_dump(migrated)
    _dirty_three_tables(migrated)
    with engine(migrated).connect() as c:
        ids = dict(c.exec_driver_sql("SELECT name, id FROM cleandb_tables").fetchall())
    done_first, last = (
        sorted(["user", "category", "lookup_status"], key=lambda n: ids[n])[:2],
        max(["user", "category", "lookup_status"], key=lambda n: ids[n]),
    )
    with connection(migrated) as blocker, engine(migrated).connect() as watch:
        blocker.execute(sa.text(f"SELECT * FROM {q(blocker, last)} FOR UPDATE"))
        holder = int(blocker.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
        thread, errors = _reset_in_thread(migrated)

        def waiting_reset() -> int | None:
            thread_id = watch.exec_driver_sql(
                "SELECT p.ID FROM information_schema.PROCESSLIST p "
                "LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
                "WHERE p.DB = DATABASE() AND p.ID NOT IN (CONNECTION_ID(), "
                f"{holder}) AND p.COMMAND = 'Query' "
                "AND (t.trx_state = 'LOCK WAIT' OR p.STATE LIKE 'Waiting for table metadata%%')"
            ).scalar()
            watch.rollback()
            return thread_id

        thread_id = wait_for("the reset to wait for the lock", waiting_reset)
        watch.exec_driver_sql(f"KILL {int(thread_id)}")
        thread.join(PATIENCE)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ResetError)
        blocker.rollback()
    now = full_dump(migrated)
    for table in done_first:  # reset before the kill, marks gone
        assert now[f".{table}"] == baseline[f".{table}"]
    assert now[f".{last}"] != baseline[f".{last}"]
    assert marks(migrated) == {last}  # what it did not reset is still marked
    assert clean(migrated) == 1
    assert full_dump(migrated) == baseline
