"""MySQL and MariaDB: every statement alembic-cleandb sends to the MySQL family lives here.

Triggers are attached from the client at migration time (MySQL 8 rejects ``CREATE TRIGGER``
in prepared statements, error 1295), so offline (``--sql``) mode cannot install tracking here.
The reset is the stored procedure ``cleandb_truncate()``: for each dirty table it runs the
statements stored in ``cleandb_tables`` with foreign-key checks off (no cascades either), and
deletes that table's marks right after it, so an interrupted reset leaves the marks of what it
did not finish. ``TRUNCATE`` fires no trigger in MySQL: a seeded table found empty counts as
written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from sqlalchemy.engine import Connection

from ._base import Executor, call_routine, register
from ._clientside import CONFIG, DIRTY, TABLES, ClientSideBackend, TableState, trigger_name
from .errors import CleanDBError

PROCEDURES = ("cleandb_truncate",)
BINLOG_ERROR = 1419  # "You do not have the SUPER privilege and binary logging is enabled"


def _procedure(seeded: Sequence[tuple[int, str]]) -> str:
    """The reset procedure; regenerated at each sync with the seeded-table emptiness check."""
    if seeded:
        checks = " UNION ALL ".join(
            f"SELECT {table_id}, 'i' FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM {q})"
            for table_id, q in seeded
        )
        truncated = f"INSERT INTO {DIRTY} (tid, kind) {checks};"
    else:
        truncated = ""
    return f"""CREATE PROCEDURE cleandb_truncate()
BEGIN
  DECLARE v_id INT;
  DECLARE v_reset, v_restore, v_counter TEXT;
  DECLARE v_inserted, v_done INT DEFAULT 0;
  DECLARE v_count INT DEFAULT 0;
  DECLARE cur CURSOR FOR
    SELECT t.id, t.reset_sql, t.restore_sql, t.counter_sql, MAX(d.kind = 'i')
    FROM {DIRTY} d JOIN {TABLES} t ON t.id = d.tid
    GROUP BY t.id, t.reset_sql, t.restore_sql, t.counter_sql;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    IF @cleandb_fk IS NOT NULL THEN
      SET SESSION foreign_key_checks = @cleandb_fk;
      SET @cleandb_fk = NULL;
    END IF;
    RESIGNAL;
  END;
  {truncated}
  IF EXISTS (SELECT 1 FROM {DIRTY}) THEN
    IF NOT EXISTS (SELECT 1 FROM {CONFIG} WHERE database_name = DATABASE()) THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
    END IF;
    SET @cleandb_fk = @@SESSION.foreign_key_checks;
    SET SESSION foreign_key_checks = 0;
    OPEN cur;
    tables: LOOP
      FETCH cur INTO v_id, v_reset, v_restore, v_counter, v_inserted;
      IF v_done THEN
        LEAVE tables;
      END IF;
      SET @cleandb_sql = v_reset;
      PREPARE cleandb_stmt FROM @cleandb_sql;
      EXECUTE cleandb_stmt;
      IF v_restore IS NOT NULL THEN
        SET @cleandb_sql = v_restore;
        PREPARE cleandb_stmt FROM @cleandb_sql;
        EXECUTE cleandb_stmt;
      END IF;
      IF v_counter IS NOT NULL AND v_inserted THEN
        SET @cleandb_sql = v_counter;
        PREPARE cleandb_stmt FROM @cleandb_sql;
        EXECUTE cleandb_stmt;
      END IF;
      DEALLOCATE PREPARE cleandb_stmt;
      DELETE FROM {DIRTY} WHERE tid = v_id;
      SET v_count = v_count + 1;
    END LOOP;
    CLOSE cur;
    DELETE FROM {DIRTY} WHERE tid NOT IN (SELECT id FROM {TABLES});
    SET SESSION foreign_key_checks = @cleandb_fk;
    SET @cleandb_fk = NULL;
  END IF;
  SELECT v_count;
END"""


class MySQLBackend(ClientSideBackend):
    names: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
    missing_table_markers = ("doesn't exist",)
    lock_timeout_markers = ("Lock wait timeout",)

    def configure_session(self, connection: Connection, lock_timeout: float) -> None:
        seconds = max(1, round(lock_timeout))
        connection.exec_driver_sql(
            f"SET SESSION innodb_lock_wait_timeout = {seconds}, lock_wait_timeout = {seconds}"
        )
    bookkeeping_ddl: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {CONFIG} (schema_version INT NOT NULL, "
        "database_name VARCHAR(64) NOT NULL, excluded TEXT NOT NULL) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {TABLES} (id INT AUTO_INCREMENT PRIMARY KEY, "
        "name VARCHAR(64) NOT NULL UNIQUE, baseline_rows BIGINT NOT NULL DEFAULT 0, "
        "counter BIGINT NULL, reset_sql TEXT NULL, restore_sql TEXT NULL, "
        "counter_sql TEXT NULL) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {DIRTY} (tid INT NOT NULL, kind CHAR(1) NOT NULL, "
        "KEY cleandb_dirty_tid (tid, kind)) ENGINE=InnoDB",
    )

    def list_tables(self, connection: Connection) -> list[str]:
        rows = connection.exec_driver_sql(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        )
        return [str(r[0]) for r in rows]

    def current_database(self, connection: Connection) -> str:
        name = connection.exec_driver_sql("SELECT DATABASE()").scalar()
        if name is None:
            raise CleanDBError(
                "alembic-cleandb: the MySQL connection has no current database; "
                "put the database name in the URL (mysql://user@host/test_db)"
            )
        return str(name)

    def table_states(self, connection: Connection, names: Sequence[str]) -> list[TableState]:
        if not names:
            return []
        # MySQL 8 caches information_schema statistics for a day by default.
        if connection.dialect.name != "mariadb" and not getattr(
            connection.dialect, "is_mariadb", False
        ):
            connection.exec_driver_sql("SET SESSION information_schema_stats_expiry = 0")
        counters = dict(
            connection.exec_driver_sql(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            ).fetchall()  # type: ignore[arg-type]
        )
        columns: dict[str, list[str]] = {}
        for table, column, extra in connection.exec_driver_sql(
            "SELECT TABLE_NAME, COLUMN_NAME, EXTRA FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ):
            if "GENERATED" not in str(extra).upper() and "VIRTUAL" not in str(extra).upper():
                columns.setdefault(str(table), []).append(str(column))
        states = []
        for name in names:
            q = self._q(connection, name)
            rows = int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {q}").scalar_one())
            counter = counters.get(name)
            states.append(
                TableState(
                    name=name,
                    rows=rows,
                    counter=None if counter is None else int(counter),
                    columns=tuple(columns.get(name, ())),
                )
            )
        return states

    def trigger_ddl(self, quote_table: str, table_id: int, kind: str, event: str) -> str:
        return (
            f"CREATE TRIGGER {trigger_name(table_id, kind)} AFTER {event} ON {quote_table} "
            f"FOR EACH ROW BEGIN IF NOT EXISTS (SELECT 1 FROM {DIRTY} WHERE tid = {table_id} "
            f"AND kind = '{kind}') THEN INSERT INTO {DIRTY} (tid, kind) VALUES ({table_id}, "
            f"'{kind}'); END IF; END"
        )

    def statements(
        self, q: str, shadow: str, cols: str, state: TableState
    ) -> tuple[str, str | None, str | None]:
        counter_sql = None
        if state.counter is not None:
            counter_sql = f"ALTER TABLE {q} AUTO_INCREMENT = {state.counter}"
        if not state.rows:
            if state.counter is not None and state.counter <= 1:
                counter_sql = None  # TRUNCATE restarts the counter at 1 already
            return f"TRUNCATE TABLE {q}", None, counter_sql
        restore = f"INSERT INTO {q} ({cols}) SELECT {cols} FROM {shadow}"
        return f"DELETE FROM {q}", restore, counter_sql

    def after_sync(self, ex: Executor, seeded: Sequence[tuple[int, str]]) -> None:
        ex("DROP PROCEDURE IF EXISTS cleandb_truncate")
        ex(_procedure(seeded))

    def uninstall_routines(self, ex: Executor) -> None:
        for name in PROCEDURES:
            ex(f"DROP PROCEDURE IF EXISTS {name}")

    def resetter(self, connection: Connection) -> Callable[[], int]:
        return call_routine(connection, "CALL cleandb_truncate()")

    def wrap_error(self, exc: Exception, database: str) -> Exception | None:
        orig = getattr(exc, "orig", exc)
        args = getattr(orig, "args", ())
        if args and args[0] == BINLOG_ERROR:
            return CleanDBError(
                f"alembic-cleandb could not create triggers in database {database!r}: the server "
                "has binary logging enabled and this user lacks SUPER (MySQL error 1419). Fix: "
                "`SET GLOBAL log_bin_trust_function_creators = 1` (or start the test server with "
                "--log-bin-trust-function-creators=1, or with --skip-log-bin), then run the "
                "migration again."
            )
        return None


register(MySQLBackend.names, MySQLBackend)
