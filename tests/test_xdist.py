"""`pytest -n 2`: every worker gets its own copy of the configured database, on each backend.

The inner projects are run with pytester (in this process; their xdist workers are processes
of their own), with the real plugin (entry point) and the real pytest-xdist.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from alembic_cleandb import Cleaner, ConfigurationError, UnsafeDatabaseError, clean
from alembic_cleandb.backends import backend_for_url
from alembic_cleandb.testing import xdist as _xdist
from alembic_cleandb.testing.plugin import worker_url
from conftest import Databases, server_engine, upgrade
from dbutil import count, execute

pytestmark = pytest.mark.slow  # runs pytest -n 2 (three processes) several times

# Run with `-n 2 --dist each`: both workers run every test. Test i inserts a row on each
# worker, then waits for the other worker to have inserted its row for test i too (a file
# rendezvous), then checks that its row is the only one and got id 1. On one shared database
# each would see the other's row; with a copy per worker neither does.
RENDEZVOUS = """
import os
import time

def rendezvous(root, i, me):
    tag = f"rdv-{os.environ['PYTEST_XDIST_TESTRUNUID']}-{i}"
    (root / f"{tag}-{me}").touch()
    deadline = time.monotonic() + 60
    while not [p for p in root.glob(f"{tag}-*") if p.name != f"{tag}-{me}"]:
        assert time.monotonic() < deadline, "the other worker never came"
        time.sleep(0.02)
"""

ISOLATION = (
    RENDEZVOUS
    + """
import pytest
import sqlalchemy as sa

BOOT_URL = os.environ["DATABASE_URL"]  # read at import (collection) time

@pytest.fixture(scope="session", autouse=True)
def session_sees_the_url(cleandb_url):
    assert os.environ["DATABASE_URL"] == cleandb_url == BOOT_URL

@pytest.mark.parametrize("i", range(4))
def test_alone(i, cleandb_url, cleandb_urls, request):
    assert cleandb_urls == [cleandb_url]
    me = os.environ["PYTEST_XDIST_WORKER"]
    assert cleandb_url.endswith(("_" + me, "_" + me + ".db"))
    engine = sa.create_engine(cleandb_url)
    try:
        with engine.begin() as c:
            user = sa.Table("user", sa.MetaData(), autoload_with=c)
            new_id = c.execute(user.insert().values(name=me)).inserted_primary_key[0]
        rendezvous(request.config.rootpath, i, me)
        with engine.begin() as c:
            assert c.execute(sa.select(user.c.id, user.c.name)).fetchall() == [(1, me)]
            assert new_id == 1
    finally:
        engine.dispose()
"""
)
EACH = ("-n", "2", "--dist", "each")


def _ini(url: str, *extra: str) -> str:
    lines = ["[pytest]", f"cleandb_urls = {url}", "cleandb_url_env = DATABASE_URL", *extra]
    return "\n".join(lines)


def _exists(url: str) -> bool:
    return backend_for_url(url).exists(sa.make_url(url))


def test_two_workers_are_isolated(pytester: pytest.Pytester, migrated: str) -> None:
    pytester.makeini(_ini(migrated))
    pytester.makepyfile(test_iso=ISOLATION)
    result = pytester.runpytest(*EACH)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        ["cleandb: 2 worker databases (*_gw*; recreate), made while the workers start"]
    )
    # The copies are gone (recreate), the configured database was never written.
    assert not _exists(worker_url(migrated, "gw0"))
    assert not _exists(worker_url(migrated, "gw1"))
    assert count(migrated, "user") == 0
    assert clean(migrated) == 0


def test_without_copies_the_workers_collide(pytester: pytest.Pytester, migrated: str) -> None:
    """The control experiment: both workers on the one database (a ``cleandb_urls`` fixture
    override opts out of copies) make the same tests fail."""
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture(scope='session')\n"
        f"def cleandb_urls():\n    return [{migrated!r}]\n"
    )
    pytester.makepyfile(
        test_collide=ISOLATION.replace(
            'os.environ["DATABASE_URL"]  #', 'os.environ.get("DATABASE_URL")  #'
        )
        .replace('assert os.environ["DATABASE_URL"] == cleandb_url == BOOT_URL', "pass")
        .replace("assert cleandb_url.endswith", "assert not cleandb_url.endswith")
    )
    result = pytester.runpytest(*EACH)
    # Round 0: both rows are in before either worker checks (no reset can come between), so
    # the first check fails; later rounds fail or pass by the other worker's resets.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes().get("failed", 0) >= 1


def _has_table(url: str, name: str) -> bool:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).has_table(name)
    finally:
        engine.dispose()


def test_copies_are_reused_while_the_heads_match(
    pytester: pytest.Pytester, migrated: str, databases
) -> None:
    copies = [worker_url(migrated, w) for w in ("gw0", "gw1")]
    if databases.backend != "sqlite":  # dropped after the test even if it fails
        databases.created.extend(str(sa.make_url(u).database) for u in copies)
    pytester.makeini(_ini(migrated, "cleandb_worker_dbs = reuse"))
    pytester.makepyfile(test_iso=ISOLATION)
    pytester.runpytest(*EACH).assert_outcomes(passed=8)
    assert all(_exists(u) for u in copies)

    # A mark the base does not have: it survives a reuse, not a re-creation.
    execute(copies[0], "CREATE TABLE reuse_probe (x INTEGER)")
    result = pytester.runpytest(*EACH)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*worker databases*reuse*"])
    assert _has_table(copies[0], "reuse_probe")

    # A copy whose alembic heads differ from the base's is made again.
    execute(copies[0], "UPDATE alembic_version SET version_num = '0001' WHERE version_num = '0002'")
    pytester.runpytest(*EACH).assert_outcomes(passed=8)
    assert not _has_table(copies[0], "reuse_probe")

    # recreate (the default) drops them at the end of the run.
    result = pytester.runpytest(*EACH, "--cleandb-worker-dbs=recreate")
    result.assert_outcomes(passed=8)
    assert not any(_exists(u) for u in copies)


def test_an_explicitly_allowed_base_allows_its_copies(
    pytester: pytest.Pytester, databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = databases.create(f"cleandb_allowed_{os.getpid()}")
    name = sa.make_url(url).database
    allowed = os.path.splitext(os.path.basename(name))[0] if databases.backend == "sqlite" else name
    monkeypatch.setenv("CLEANDB_ALLOW_DATABASE", allowed)
    upgrade(url)
    pytester.makeini(_ini(url))
    pytester.makepyfile(test_iso=ISOLATION)
    # The allowance reaches the workers' resets as an argument: the environment the tests and
    # the application see keeps what the user set.
    pytester.makepyfile(
        test_env=f"import os\n\ndef test_env():\n"
        f"    assert os.environ['CLEANDB_ALLOW_DATABASE'] == {allowed!r}\n"
    )
    pytester.runpytest(*EACH).assert_outcomes(passed=10)


def _watch_environment(stop: threading.Event, seen: set[str | None]) -> None:
    while not stop.is_set():
        seen.add(os.environ.get("CLEANDB_ALLOW_DATABASE"))


def test_copies_of_an_allowed_base_are_made_without_touching_the_environment(
    databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The allowance is an argument: copies made by several threads at once need no lock
    around os.environ, and no other thread ever sees it change."""
    url = databases.create(f"cleandb_allowed_{os.getpid()}")
    name = sa.make_url(url).database
    allowed = os.path.splitext(os.path.basename(name))[0] if databases.backend == "sqlite" else name
    monkeypatch.setenv("CLEANDB_ALLOW_DATABASE", allowed)
    upgrade(url)
    copies = [worker_url(url, w) for w in ("gw0", "gw1")]
    if databases.backend != "sqlite":
        databases.created.extend(str(sa.make_url(u).database) for u in copies)
    stop, seen = threading.Event(), set()
    watcher = threading.Thread(target=_watch_environment, args=(stop, seen))
    watcher.start()
    try:
        made = _xdist.prepare([url], ["gw0", "gw1"], "recreate")
    finally:
        stop.set()
        watcher.join()
    assert seen == {allowed}
    assert made == {"gw0": [copies[0]], "gw1": [copies[1]]}
    # Each copy is reset through the allowance argument, and only so.
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE")
    copy_name = os.path.splitext(os.path.basename(sa.make_url(copies[0]).database or ""))[0]
    with pytest.raises(UnsafeDatabaseError, match="refuses to reset"):
        Cleaner(copies[0])
    with Cleaner(copies[0], allowed_database=copy_name) as cleaner:
        assert cleaner.reset() == 0
    _xdist.drop(copies)
    assert not any(_exists(u) for u in copies)


def test_a_base_without_tracking_stops_the_run_before_any_worker(
    pytester: pytest.Pytester, db_url: str
) -> None:
    upgrade(db_url, "heads", cleandb=False)
    pytester.makeini(_ini(db_url))
    pytester.makepyfile(test_iso=ISOLATION)
    result = pytester.runpytest(*EACH)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: alembic-cleandb: tracking is not installed in *"])
    assert not _exists(worker_url(db_url, "gw0"))


def test_worker_url_keeps_the_users_form() -> None:
    assert worker_url("postgresql://u:p%40ss@h:5433/app_test?sslmode=disable", "gw3") == (
        "postgresql://u:p%40ss@h:5433/app_test_gw3?sslmode=disable"
    )
    assert worker_url("mariadb+pymysql://root@h/app_test", "gw0") == (
        "mariadb+pymysql://root@h/app_test_gw0"
    )
    assert worker_url("sqlite:///data/app_test.db", "gw1") == "sqlite:///data/app_test_gw1.db"
    assert worker_url("sqlite:////tmp/x/app_test.sqlite3", "gw1") == (
        "sqlite:////tmp/x/app_test_gw1.sqlite3"
    )


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_session_on_the_base_blocks_the_copy_and_is_named(
    pytester: pytest.Pytester, migrated: str
) -> None:
    engine = sa.create_engine(migrated, connect_args={"application_name": "my-gui-client"})
    with engine.connect():
        pytester.makeini(_ini(migrated))
        pytester.makepyfile(test_iso=ISOLATION)
        result = pytester.runpytest(*EACH)
    engine.dispose()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # The copies are made while the workers start; the run stops before any test, saying
    # why as pytest says every usage error.
    result.stderr.fnmatch_lines(
        [
            "ERROR: alembic-cleandb: cannot copy * other sessions are connected to it (pid *"
            "my-gui-client*Close those sessions*"
        ]
    )
    assert "passed" not in result.stdout.str()
    assert not _exists(worker_url(migrated, "gw0")) and not _exists(worker_url(migrated, "gw1"))


@pytest.mark.parametrize("backend", ["mariadb"])
def test_a_mariadb_database_a_stray_trigger_backup_keeps_is_named_with_the_fix(
    databases: Databases,
) -> None:
    """MariaDB 10.11 sometimes leaves a ``<table>.TRG-`` file behind (CREATE TRIGGERs in two
    databases at once, under load) and then refuses to drop the database: dropping a worker
    copy says what happened and how to fix it, not a bare "Directory not empty"."""
    url = databases.create()
    name = sa.make_url(url).database
    assert name is not None and re.fullmatch(r"[a-z0-9-]+", name)
    with server_engine("mariadb").connect() as c:
        datadir = Path(c.exec_driver_sql("SELECT @@datadir").scalar_one())
    directory = datadir / name.replace("-", "@002d")
    if not directory.is_dir():
        pytest.fail(f"this test needs the MariaDB server's datadir on this machine ({directory})")
    execute(url, "CREATE TABLE t (id INT PRIMARY KEY)")
    (directory / "t.TRG-").write_text("TYPE=TRIGGERS\n")
    with pytest.raises(ConfigurationError, match=r"stray '<table>\.TRG-' file.*Delete the files"):
        backend_for_url(url).drop(sa.make_url(url))
    # (the fixture's teardown removes the file, as it does for one the server left)
