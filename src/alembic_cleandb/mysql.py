"""MySQL and MariaDB: every statement alembic-cleandb sends to the MySQL family lives here.

Triggers are attached from the client at migration time (MySQL 8 rejects ``CREATE TRIGGER``
in prepared statements, error 1295), so offline (``--sql``) mode cannot install tracking here.
The reset is the stored procedure ``cleandb_truncate()``: for each dirty table it runs the
statements stored in ``cleandb_tables`` with foreign-key checks off (no cascades either), and
deletes that table's marks right after it, so an interrupted reset leaves the marks of what it
did not finish. ``TRUNCATE`` fires no trigger in MySQL: a seeded table found empty counts as
written.

Marks never make writers wait: each connection writes its own mark row (primary key
``(tid, kind, conn)``), with no read of the marks in the trigger. AUTO_INCREMENT values taken
by inserts that rolled back are found through tickets (see :func:`_procedure`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from sqlalchemy.engine import Connection

from ._base import Executor, call_routine, register
from ._clientside import CONFIG, DIRTY, TABLES, ClientSideBackend, TableState, trigger_name
from .errors import CleanDBError

PROCEDURES = ("cleandb_truncate",)
TICKETS = "cleandb_tickets"
BINLOG_ERROR = 1419  # "You do not have the SUPER privilege and binary logging is enabled"


def _start(query: str, length: int = 80) -> str:
    """The start of a query, on one line."""
    text = " ".join(query.split())
    return text if len(text) <= length else text[: length - 3] + "..."


def _procedure(seeded: Sequence[tuple[int, str]]) -> str:
    """The reset procedure; regenerated at each sync with the seeded-table emptiness check.

    Every read of a table here is a ``SELECT ... INTO`` (a consistent, non-locking read in
    InnoDB), never ``IF EXISTS (SELECT ...)``, which takes shared locks inside routines and
    would wait for any open transaction that wrote a mark.
    """
    if seeded:
        flags = ", ".join(
            f"IF(EXISTS (SELECT 1 FROM {q}), NULL, {table_id})" for table_id, q in seeded
        )
        truncated = f"""SELECT CONCAT_WS(',', {flags}) INTO v_empty;
  IF v_empty <> '' THEN
    INSERT IGNORE INTO {DIRTY} (tid, kind) SELECT id, 'i' FROM {TABLES}
    WHERE FIND_IN_SET(id, v_empty) > 0;
  END IF;"""
    else:
        truncated = ""
    return f"""CREATE PROCEDURE cleandb_truncate()
BEGIN
  DECLARE v_id INT;
  DECLARE v_name VARCHAR(64);
  DECLARE v_reset, v_restore, v_counter, v_empty, v_missing TEXT;
  DECLARE v_message VARCHAR(128);
  DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
  DECLARE v_count, v_marks INT DEFAULT 0;
  DECLARE v_next, v_seen, v_kept, v_base, v_now BIGINT DEFAULT 0;
  DECLARE cur CURSOR FOR
    SELECT t.id, t.name, t.reset_sql, t.restore_sql, t.counter_sql, t.counter,
           MAX(d.kind IN ('i', 'a')), MAX(d.kind = 'u'), MAX(d.kind <> 'a')
    FROM {DIRTY} d JOIN {TABLES} t ON t.id = d.tid
    GROUP BY t.id, t.name, t.reset_sql, t.restore_sql, t.counter_sql, t.counter
    ORDER BY t.id;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    IF @cleandb_fk IS NOT NULL THEN
      SET SESSION foreign_key_checks = @cleandb_fk;
      SET @cleandb_fk = NULL;
    END IF;
    RESIGNAL;
  END;
  SET @cleandb_table = NULL;
  {truncated}
  -- Inserts (or updates of the key) that rolled back took AUTO_INCREMENT values but left no
  -- mark. Every fresh 'i' or 'u' mark takes a ticket (an AUTO_INCREMENT value of {TICKETS}, which no rollback returns):
  -- when fewer tickets were committed than taken, compare every counter with its baseline
  -- (kind 'a': only the counter moved; such a table is reset but not counted).
  SELECT AUTO_INCREMENT INTO v_next FROM information_schema.TABLES
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{TICKETS}';
  SELECT tickets INTO v_seen FROM {CONFIG} LIMIT 1;
  IF v_next <> v_seen THEN
    SELECT COUNT(*) INTO v_kept FROM {TICKETS} WHERE id >= v_seen AND id < v_next;
    IF v_kept <> v_next - v_seen THEN
      INSERT IGNORE INTO {DIRTY} (tid, kind)
      SELECT t.id, 'a' FROM {TABLES} t JOIN information_schema.TABLES s
        ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
      WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
    END IF;
  END IF;
  SELECT COUNT(*) INTO v_marks FROM {DIRTY};
  IF v_marks > 0 THEN
    SELECT COUNT(*) INTO v_here FROM {CONFIG} WHERE database_name = DATABASE();
    IF v_here = 0 THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
    END IF;
    SET @cleandb_fk = @@SESSION.foreign_key_checks;
    SET SESSION foreign_key_checks = 0;
    SET v_done = 0;
    OPEN cur;
    tables: LOOP
      FETCH cur INTO v_id, v_name, v_reset, v_restore, v_counter, v_base, v_inserted, v_updated,
        v_written;
      IF v_done THEN
        LEAVE tables;
      END IF;
      SET @cleandb_table = v_name, v_gone = 0;
      BEGIN
        -- A table dropped or renamed behind the tracker's back: reset the others, keep its
        -- marks, and say so at the end.
        DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
        SET @cleandb_sql = v_reset;
        PREPARE cleandb_stmt FROM @cleandb_sql;
        EXECUTE cleandb_stmt;
        IF v_restore IS NOT NULL THEN
          SET @cleandb_sql = v_restore;
          PREPARE cleandb_stmt FROM @cleandb_sql;
          EXECUTE cleandb_stmt;
        END IF;
        IF v_counter IS NOT NULL AND v_updated AND NOT v_inserted THEN
          -- an UPDATE moves the counter only when it set the key higher: look before altering
          SELECT AUTO_INCREMENT INTO v_now FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = v_name;
          SET v_inserted = v_now <> v_base;
        END IF;
        IF v_counter IS NOT NULL AND v_inserted THEN
          SET @cleandb_sql = v_counter;
          PREPARE cleandb_stmt FROM @cleandb_sql;
          EXECUTE cleandb_stmt;
        END IF;
        DEALLOCATE PREPARE cleandb_stmt;
      END;
      IF v_gone THEN
        SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
      ELSE
        DELETE FROM {DIRTY} WHERE tid = v_id;
        SET v_count = v_count + v_written;
      END IF;
    END LOOP;
    CLOSE cur;
    SET @cleandb_table = NULL;
    SET SESSION foreign_key_checks = @cleandb_fk;
    SET @cleandb_fk = NULL;
  END IF;
  IF v_next <> v_seen THEN
    UPDATE {CONFIG} SET tickets = v_next;
  END IF;
  IF v_missing IS NOT NULL THEN
    SET @cleandb_table = v_missing;
    SET v_message = LEFT(CONCAT('alembic-cleandb: tracked table ', v_missing,
                                ' doesn''t exist (dropped or renamed)'), 128);
    SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message;
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
        if not self._mariadb(connection):  # the reset reads AUTO_INCREMENT counters
            connection.exec_driver_sql("SET SESSION information_schema_stats_expiry = 0")

    @staticmethod
    def _mariadb(connection: Connection) -> bool:
        return connection.dialect.name == "mariadb" or bool(
            getattr(connection.dialect, "is_mariadb", False)
        )

    def lock_details(self, exc: BaseException, connection: Connection) -> str:
        # The procedure names the table it works on in @cleandb_table (already quoted).
        table = connection.exec_driver_sql("SELECT @cleandb_table").scalar()
        rows: Sequence[Any]
        try:
            rows = connection.exec_driver_sql(
                "SELECT t.trx_mysql_thread_id, p.USER, p.HOST, p.COMMAND, p.TIME, "
                "t.trx_state, t.trx_started, COALESCE(t.trx_query, p.INFO) "
                "FROM information_schema.INNODB_TRX t "
                "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE t.trx_mysql_thread_id <> CONNECTION_ID() AND p.DB = DATABASE() "
                "ORDER BY t.trx_started LIMIT 5"
            ).fetchall()
            what = "sessions with an open transaction in this database"
        except Exception:  # INNODB_TRX needs the PROCESS privilege: the user's own sessions
            rows = [
                (i, u, h, c, t, None, None, q)
                for i, u, h, c, t, q in connection.exec_driver_sql(
                    "SELECT ID, USER, HOST, COMMAND, TIME, INFO FROM information_schema.PROCESSLIST "
                    "WHERE ID <> CONNECTION_ID() AND DB = DATABASE() LIMIT 5"
                )
            ]
            what = "other sessions in this database (grant PROCESS to see their transactions)"
        parts = []
        if table:
            quoted = str(table) if str(table).startswith("`") else f"`{table}`"
            parts.append(f"the reset was waiting for a lock on table {quoted}")
        sessions = []
        for thread, user, host, command, seconds, state, started, query in rows:
            idle = command == "Sleep"
            status = "idle in transaction" if idle and state else ("idle" if idle else command)
            text = f"thread {thread} ({user}@{host}, {status} for {seconds} s"
            if started is not None:
                text += f", transaction started {started}"
            if query:
                text += f", query {_start(str(query))!r}"
            sessions.append(text + f"; end it with KILL {thread})")
        if sessions:
            parts.append(f"{what}: " + "; ".join(sessions))
        return "; ".join(parts)

    bookkeeping_ddl: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {CONFIG} (schema_version INT NOT NULL, "
        "database_name VARCHAR(64) NOT NULL, excluded TEXT NOT NULL, "
        "tickets BIGINT NOT NULL DEFAULT 1) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {TABLES} (id INT AUTO_INCREMENT PRIMARY KEY, "
        "name VARCHAR(64) NOT NULL UNIQUE, baseline_rows BIGINT NOT NULL DEFAULT 0, "
        "counter BIGINT NULL, reset_sql TEXT NULL, restore_sql TEXT NULL, "
        "counter_sql TEXT NULL) ENGINE=InnoDB",
        # One mark per (table, kind, connection): a writer only ever meets its own mark
        # (a primary-key duplicate locks that record alone, never a gap), so two
        # transactions writing the same table never wait for each other's marks.
        f"CREATE TABLE IF NOT EXISTS {DIRTY} (tid INT NOT NULL, kind CHAR(1) NOT NULL, "
        "conn BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (tid, kind, conn)) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {TICKETS} (id BIGINT AUTO_INCREMENT PRIMARY KEY) "
        "ENGINE=InnoDB",
    )
    extra_tables: ClassVar[tuple[str, ...]] = (TICKETS,)

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
        counters: dict[str, Any] = {
            str(n): c
            for n, c in connection.exec_driver_sql(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            )
        }
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
            # (this one does go through the driver's %-formatting)
            count = f"SELECT COUNT(*) FROM {q}".replace("%", "%%")
            rows = int(connection.exec_driver_sql(count).scalar_one())
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
        # No read of cleandb_dirty: inside a trigger InnoDB reads with shared locks, so an
        # ``IF NOT EXISTS (SELECT ...)`` guard waits for other writers' uncommitted marks. The
        # insert meets at most this connection's own mark; the handler swallows that duplicate
        # (no warning reaches the client).
        # A fresh insert or update mark takes a ticket (an UPDATE can move AUTO_INCREMENT too,
        # by setting the column higher); BEFORE the row, so that a row that then fails
        # (duplicate key, ...) leaves a ticket without a mark as well.
        moves = kind in ("i", "u")
        ticket = f" IF fresh THEN INSERT INTO {TICKETS} () VALUES (); END IF;" if moves else ""
        timing = "BEFORE" if moves else "AFTER"
        return (
            f"CREATE TRIGGER {trigger_name(table_id, kind)} {timing} {event} ON {quote_table} "
            "FOR EACH ROW BEGIN DECLARE fresh INT DEFAULT 1; "
            "DECLARE CONTINUE HANDLER FOR 1062 SET fresh = 0; "
            f"INSERT INTO {DIRTY} (tid, kind, conn) VALUES ({table_id}, '{kind}', "
            f"CONNECTION_ID());{ticket} END"
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

    def after_sync(
        self, ex: Executor, seeded: Sequence[tuple[int, str]], fresh: bool = True
    ) -> None:
        ex("DROP PROCEDURE IF EXISTS cleandb_truncate")
        ex(_procedure(seeded))
        if not fresh:
            return
        # The marks are cleared next: every ticket taken so far is accounted for.
        ex(f"DELETE FROM {TICKETS}")
        ex(
            f"UPDATE {CONFIG} SET tickets = (SELECT AUTO_INCREMENT FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{TICKETS}')"
        )

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
