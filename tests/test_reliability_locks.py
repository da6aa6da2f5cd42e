"""A transaction left open on a table the reset must write makes the reset fail - within the
lock timeout, naming the table and the blocking session - never hang; nothing is lost, and the
next test starts from the baseline (or the run stops, with ``cleandb_on_failure = exit``)."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from alembic_cleandb import Cleaner, ResetError, clean
from alembic_cleandb.cleaner import DEFAULT_LOCK_TIMEOUT
from reliability_helpers import PATIENCE, connection, marks, q

pytestmark = pytest.mark.slow  # waits for lock timeouts; runs pytest

SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)

# (table, a statement that leaves a lock on it, the words of the reset statement that waits)
HOLDS = {
    "unseeded table, row updated": ("user", "UPDATE {t} SET name = 'locked'"),
    "seeded table, row locked for update": (
        "lookup_status",
        "SELECT * FROM {t} WHERE id = 1 FOR UPDATE",
    ),
}


def _session_id(c: sa.Connection) -> int:
    sql = "SELECT pg_backend_pid()" if c.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
    return int(c.exec_driver_sql(sql).scalar_one())


@SERVERS
@pytest.mark.parametrize("hold", list(HOLDS))
def test_a_lock_left_open_fails_the_reset_naming_table_and_session(
    migrated: str, hold: str
) -> None:
    table, statement = HOLDS[hold]
    with connection(migrated) as c:  # the test's committed writes make the table dirty
        if table == "user":
            c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('leaked')"))
        else:
            c.execute(sa.text("UPDATE lookup_status SET label = 'changed' WHERE id = 1"))
        c.commit()
    blocker_url = sa.make_url(migrated)
    if blocker_url.get_backend_name() == "postgresql":
        blocker_url = blocker_url.update_query_dict({"application_name": "leaky-test"})
    with connection(blocker_url.render_as_string(hide_password=False)) as blocker:
        session = _session_id(blocker)
        blocker.execute(sa.text(statement.format(t=q(blocker, table))))  # left open
        with Cleaner(migrated, lock_timeout=1) as cleaner:
            with pytest.raises(ResetError) as info:
                cleaner.reset()
            message = str(info.value)
            assert "lock" in message.lower()
            quoted = q(blocker, table) if blocker.dialect.name == "postgresql" else f"`{table}`"
            assert f"The reset was waiting for a lock on table {quoted}" in message
            if blocker.dialect.name == "postgresql":
                assert f"pid {session} (application 'leaky-test', idle in transaction" in message
                assert f"query {statement.format(t=quoted)[:20]!r}"[:-1] in message
                assert f"pg_terminate_backend({session})" in message
            else:
                assert f"thread {session} (root@" in message
                assert "idle in transaction" in message
                assert f"KILL {session}" in message
            assert "Commit or roll back in the test" in message
            assert cleaner.pending
            assert table in marks(migrated)  # nothing lost: the table stays marked
            blocker.rollback()  # the lock goes: the next reset finishes the job
            assert cleaner.reset() >= 1
            assert not cleaner.pending
    with connection(migrated) as c:
        assert c.execute(sa.text(f"SELECT COUNT(*) FROM {q(c, 'user')}")).scalar() == 0
        labels = c.execute(sa.text("SELECT label FROM lookup_status WHERE id = 1")).scalar()
        assert labels == "New"
    assert marks(migrated) == set()



@SERVERS
def test_a_session_idle_in_transaction_is_named_once_with_how_to_end_it(migrated: str) -> None:
    """The Flask-SQLAlchemy case: a session flushed writes to two tables and stays open."""
    with connection(migrated) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('leaked')"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed' WHERE id = 1"))
        c.commit()
    with connection(migrated) as blocker:
        session = _session_id(blocker)
        blocker.execute(sa.text(f"UPDATE {q(blocker, 'user')} SET name = 'flushed'"))
        blocker.execute(sa.text("UPDATE lookup_status SET label = 'flushed' WHERE id = 1"))
        with Cleaner(migrated, lock_timeout=1) as cleaner, pytest.raises(ResetError) as info:
            cleaner.reset()
        blocker.rollback()
    message = str(info.value)
    named = f"pid {session} (" if blocker.dialect.name == "postgresql" else f"thread {session} ("
    assert message.count(named) == 1, message
    assert message.count("a session idle in transaction wrote and has neither committed") == 1
    assert "db.session.remove()" in message and "cleandb_reset" in message
    if blocker.dialect.name == "postgresql":
        assert "lookup_status (RowExclusiveLock)" in message and '"user" (' in message
    assert clean(migrated) >= 1


@SERVERS
def test_clean_waits_no_longer_than_its_lock_timeout(migrated: str) -> None:
    """``lock_timeout=1`` makes clean() give up after about a second, where the library's
    default (5 s) or the server's (PostgreSQL: forever; MariaDB: 50 s) would wait longer. The
    bound has a wide margin (a hang guard, not a speed test): the call fails the test only if
    the wait clearly exceeded 1 s, i.e. it came from another timeout than the one passed."""
    assert DEFAULT_LOCK_TIMEOUT >= 5  # (the bound below must tell the two apart)
    with connection(migrated) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('leaked')"))
        c.commit()
        c.execute(sa.text(f"UPDATE {q(c, 'user')} SET name = 'locked'"))
        outcome: list[BaseException] = []
        started = time.monotonic()
        waiter = threading.Thread(target=_clean_capturing, args=(migrated, outcome), daemon=True)
        waiter.start()
        waiter.join(PATIENCE)  # never hang, even if the timeout were ignored entirely
        waited = time.monotonic() - started
        c.rollback()
        waiter.join(PATIENCE)
    assert len(outcome) == 1 and isinstance(outcome[0], ResetError), outcome
    assert "lock" in str(outcome[0]).lower()
    assert 0.9 <= waited < DEFAULT_LOCK_TIMEOUT - 1, f"clean(lock_timeout=1) waited {waited:.1f} s"
    assert clean(migrated) == 1


def _clean_capturing(url: str, outcome: list[BaseException]) -> None:
    try:
        clean(url, lock_timeout=1)
    except BaseException as exc:  # (handed to the test's thread)
        outcome.append(exc)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_reset_fails_on_a_locked_database_and_keeps_its_marks(migrated: str) -> None:
    with connection(migrated) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('leaked')"))
        c.commit()
        c.execute(sa.text(f"UPDATE {q(c, 'user')} SET name = 'locked'"))  # holds the write lock
        with Cleaner(migrated, lock_timeout=0.2) as cleaner:
            with pytest.raises(
                ResetError, match="database is locked. SQLite locks the whole database file"
            ):
                cleaner.reset()
            assert cleaner.pending
            c.rollback()
            assert marks(migrated) == {"user"}
            assert cleaner.reset() == 1
    with connection(migrated) as c:
        assert c.execute(sa.text(f"SELECT COUNT(*) FROM {q(c, 'user')}")).scalar() == 0


# -- through the pytest plugin --------------------------------------------------------------

LEAKY_TESTS = """
import os
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

URL = os.environ["LEAKY_URL"]
LEAKED = []

def _user(c):
    return c.dialect.identifier_preparer.quote("user")

def test_a_leaves_a_transaction_open():
    c = sa.create_engine(URL, poolclass=NullPool).connect()
    c.execute(sa.text(f"INSERT INTO {_user(c)} (name) VALUES ('leaked')"))
    c.commit()
    c.execute(sa.text(f"UPDATE {_user(c)} SET name = 'locked'"))  # never committed
    LEAKED.append(c)

def test_b_starts_from_the_baseline():
    engine = sa.create_engine(URL, poolclass=NullPool)
    with engine.connect() as c:
        assert c.execute(sa.text(f"SELECT COUNT(*) FROM {_user(c)}")).scalar() == 0
    engine.dispose()
"""

# The leaked connection is closed before test_b's setup: only the reset stands between the two.
# (And at the end of the session, when the run stopped before test_b: the inner run happens in
# this process, where an open transaction would keep the database from being dropped.)
LEAKY_CONFTEST = """
import pytest

def _close_leaked(module):
    for c in getattr(module, "LEAKED", []):
        c.close()

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.name == "test_b_starts_from_the_baseline":
        _close_leaked(item.module)

def pytest_sessionfinish(session):
    for item in session.items:
        _close_leaked(item.module)
"""


def _leaky_project(pytester: pytest.Pytester, url: str, on_failure: str) -> None:
    pytester.makeini(
        f"[pytest]\ncleandb_urls = {url}\ncleandb_lock_timeout = 1\n"
        f"cleandb_on_failure = {on_failure}\n"
    )
    pytester.makeconftest(LEAKY_CONFTEST)
    pytester.makepyfile(test_leaky=LEAKY_TESTS)


def test_plugin_fails_the_teardown_then_the_next_test_starts_from_the_baseline(
    pytester: pytest.Pytester, backend: str, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY_URL", migrated)
    _leaky_project(pytester, migrated, "fail")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_a_leaves_a_transaction_open*"])
    result.stdout.fnmatch_lines(["*alembic-cleandb: resetting * failed: *"])
    if backend == "sqlite":
        result.stdout.fnmatch_lines(["*SQLite locks the whole database file*"])
    else:
        result.stdout.fnmatch_lines(["*waiting for a lock on table*user*"])


def test_plugin_on_failure_exit_stops_the_run(
    pytester: pytest.Pytester, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY_URL", migrated)
    _leaky_project(pytester, migrated, "exit")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*Exit: alembic-cleandb: resetting * failed: *"])
    assert "test_b_starts_from_the_baseline PASSED" not in result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) <= 1 and "failed" not in outcomes
