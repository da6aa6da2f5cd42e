"""Privileges: a PostgreSQL role that is not a superuser and a MariaDB user without SUPER (or
PROCESS) install tracking and reset; MySQL error 1419 (binary logging) is recognised and the
fix explained, and an install it interrupts leaves nothing half-attached."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pymysql
import pytest
import sqlalchemy as sa

import alembic_cleandb
from alembic_cleandb import CleanDBError, Cleaner, ResetError
from alembic_cleandb.backends import mysql
from conftest import Databases, server_engine, upgrade
from reliability_helpers import connection, engine, full_dump, q

pytestmark = pytest.mark.slow  # creates roles and users on the servers

BINLOG_MESSAGE = (
    "You do not have the SUPER privilege and binary logging is enabled (you *might* want to "
    "use the less safe log_bin_trust_function_creators variable)"
)


@pytest.fixture
def unprivileged(backend: str, databases: Databases) -> Iterator[str]:
    """A fresh test database and a URL that logs in as a role/user owning only it."""
    name = f"cleandb_u_{uuid.uuid4().hex[:8]}"
    url = databases.create()
    database = str(sa.make_url(url).database)
    admin = server_engine(backend)
    with admin.connect() as c:
        if backend == "postgresql":
            c.exec_driver_sql(f"CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
            c.exec_driver_sql(f"ALTER DATABASE {q(c, database)} OWNER TO {name}")
        else:
            # ('%%': the driver %-formats these statements)
            c.exec_driver_sql(f"CREATE USER '{name}'@'%%' IDENTIFIED BY ''")
            c.exec_driver_sql(f"GRANT ALL PRIVILEGES ON {q(c, database)}.* TO '{name}'@'%%'")
            assert not c.exec_driver_sql(
                f"SELECT 1 FROM mysql.user WHERE User = '{name}' AND (Super_priv = 'Y' "
                "OR Process_priv = 'Y')"
            ).all()
    try:
        yield sa.make_url(url).set(username=name).render_as_string(hide_password=False)
    finally:
        databases.drop_all()
        databases.created.clear()
        with admin.connect() as c:
            if backend == "postgresql":
                c.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
            else:
                c.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'%%'")
        admin.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_role_without_superuser(unprivileged: str) -> None:
    url = unprivileged
    with engine(url).connect() as c:
        assert (
            c.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar()
            is False
        )
    upgrade(url)  # notice: no event trigger for this role
    with engine(url).connect() as c:
        assert c.exec_driver_sql("SELECT COUNT(*) FROM pg_event_trigger").scalar() == 0
    baseline = full_dump(url)
    with connection(url) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed'"))
        c.commit()
    with Cleaner(url, lock_timeout=1) as cleaner:
        assert cleaner.reset() == 2
    assert full_dump(url) == baseline
    # The documented fallback: a table created outside migrations is tracked after sync(url).
    with connection(url) as c:
        c.execute(sa.text("CREATE TABLE extra (id serial PRIMARY KEY, v int)"))
        c.commit()
    alembic_cleandb.sync(url)
    with connection(url) as c:
        c.execute(sa.text("INSERT INTO extra (v) VALUES (1)"))
        c.commit()
    assert alembic_cleandb.clean(url) == 1
    with connection(url) as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM extra")).scalar() == 0
        assert c.execute(sa.text("INSERT INTO extra (v) VALUES (2) RETURNING id")).scalar() == 1
        c.rollback()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("granted", [False, True])
def test_postgresql_role_granted_set_on_session_replication_role(
    unprivileged: str, granted: bool
) -> None:
    """PostgreSQL 15 lets a superuser grant SET on session_replication_role: such a role's
    reset runs with triggers off (an application's audit trigger does not log it); without
    the grant the reset still works, with triggers on."""
    url = unprivileged
    role = sa.make_url(url).username
    upgrade(url)
    with connection(url) as c:
        c.execute(sa.text("CREATE TABLE audit (what text)"))
        c.execute(
            sa.text(
                "CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "INSERT INTO audit VALUES (TG_OP); RETURN NULL; END $$"
            )
        )
        c.execute(
            sa.text(
                f"CREATE TRIGGER log_it AFTER DELETE ON {q(c, 'user')} "
                "FOR EACH ROW EXECUTE FUNCTION log_it()"
            )
        )
        c.commit()
    alembic_cleandb.sync(url)  # no event trigger for this role
    if granted:
        admin = server_engine("postgresql")
        with admin.connect() as c:
            c.exec_driver_sql(f"GRANT SET ON PARAMETER session_replication_role TO {role}")
        admin.dispose()
    try:
        with connection(url) as c:
            c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
            c.commit()
        with Cleaner(url, lock_timeout=1) as cleaner:
            assert cleaner.reset() == 1
        with connection(url) as c:
            assert c.execute(sa.text(f"SELECT COUNT(*) FROM {q(c, 'user')}")).scalar() == 0
            logged = c.execute(sa.text("SELECT COUNT(*) FROM audit")).scalar()
        assert logged == (0 if granted else 1)
    finally:
        if granted:
            admin = server_engine("postgresql")
            with admin.connect() as c:
                c.exec_driver_sql(f"REVOKE SET ON PARAMETER session_replication_role FROM {role}")
            admin.dispose()


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_user_without_super_or_process(unprivileged: str) -> None:
    url = unprivileged
    upgrade(url)
    baseline = full_dump(url)
    with connection(url) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed'"))
        c.commit()
        c.execute(sa.text(f"UPDATE {q(c, 'user')} SET name = 'locked'"))  # left open
        with Cleaner(url, lock_timeout=1) as cleaner:
            with pytest.raises(ResetError) as info:
                cleaner.reset()
            message = str(info.value)
            # Without PROCESS only the user's own sessions are visible - still named.
            session = c.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            assert f"thread {session} (" in message and "grant PROCESS" in message
            c.rollback()
            assert cleaner.reset() >= 1  # (what came before the locked table is reset already)
    assert full_dump(url) == baseline


def _binlog_error() -> sa.exc.DBAPIError:
    orig = pymysql.err.OperationalError(1419, BINLOG_MESSAGE)
    return sa.exc.DBAPIError.instance("CREATE TRIGGER ...", None, orig, pymysql.err.Error)


def test_mysql_error_1419_is_recognised_and_explained() -> None:
    wrapped = mysql.MySQLBackend().wrap_error(_binlog_error(), "app_test")
    assert isinstance(wrapped, CleanDBError)
    message = str(wrapped)
    assert "'app_test'" in message and "binary logging" in message and "1419" in message
    assert "SET GLOBAL log_bin_trust_function_creators = 1" in message
    other = pymysql.err.OperationalError(1146, "Table 'x' doesn't exist")
    assert mysql.MySQLBackend().wrap_error(other, "app_test") is None


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_install_interrupted_by_1419_is_explained_and_attaches_nothing_by_halves(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server itself raises error 1419 (SIGNAL in place of the second table's UPDATE
    trigger): the migration stops with the fix, and no table is left with a trigger missing;
    once the cause is gone, the same command finishes the install."""
    original = mysql.MySQLBackend.trigger_ddl
    calls = []

    def failing(
        self: mysql.MySQLBackend, quote_table: str, table_id: int, kind: str, event: str
    ) -> str:
        calls.append((table_id, kind))
        if len(calls) == 5:
            return (
                "BEGIN NOT ATOMIC SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1419, "
                f"MESSAGE_TEXT = '{BINLOG_MESSAGE}'; END"
            )
        return original(self, quote_table, table_id, kind, event)

    monkeypatch.setattr(mysql.MySQLBackend, "trigger_ddl", failing)
    with pytest.raises(
        CleanDBError,
        match="binary logging enabled.*error 1419.*log_bin_trust_function_creators = 1",
    ):
        upgrade(db_url)
    with engine(db_url).connect() as c:
        tracked = {str(n) for (n,) in c.exec_driver_sql("SELECT name FROM cleandb_tables")}
        triggers: dict[str, int] = {}
        for (table,) in c.exec_driver_sql(
            "SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE()"
        ):
            triggers[str(table)] = triggers.get(str(table), 0) + 1
    assert tracked and all(triggers.get(t) == 3 for t in tracked)  # all three, or untracked
    assert set(triggers) == tracked
    monkeypatch.undo()
    upgrade(db_url)
    baseline = full_dump(db_url)
    with connection(db_url) as c:
        for table, column in (("user", "name"), ("category", "name"), ("audit_entry", "what")):
            c.execute(sa.text(f"INSERT INTO {q(c, table)} ({column}) VALUES ('x')"))
        c.commit()
    assert alembic_cleandb.clean(db_url) == 3
    assert full_dump(db_url) == baseline
