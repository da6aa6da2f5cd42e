"""MySQL and MariaDB: every statement alembic-cleandb sends to the MySQL family lives here.

Triggers are attached from the client at migration time (MySQL 8 rejects ``CREATE TRIGGER``
in prepared statements, error 1295), so offline (``--sql``) mode cannot install tracking here.
The reset is the stored procedure ``cleandb_truncate()``: one first query tells whether
anything happened since the last reset (and returns at once when nothing did); then each
table whose AUTO_INCREMENT counter must go back gets one DDL (``TRUNCATE``, ``ALTER`` only
where needed), and one final transaction copies seeded tables' baselines back and stores
the ticket position - foreign-key checks off throughout (no cascades either). Right after a
table's own statements go the marks this connection holds on it, so a mark that a trigger of
the application's leaves later in the reset (an audit log written while the reset deleted or
restored rows of another table) survives the final deletion, which spares this connection's
marks, and another pass resets that table too. An interrupted reset may leave marks of tables it did reset
(reset again next time), never lose those of a table it did not. ``TRUNCATE`` fires no
trigger in MySQL: a seeded table found empty counts as written.

Marks never make writers wait: each connection writes its own mark row (primary key
``(tid, kind, conn)``), with no read of the marks in the trigger. AUTO_INCREMENT values taken
by inserts that rolled back are found through tickets (see :func:`_procedure`), drawn from a
``NOCACHE`` sequence on MariaDB and from an AUTO_INCREMENT on MySQL 8 (no sequences there);
the server is asked at install and at every sync (:meth:`MySQLBackend.bind`).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection

from .._connect import autocommit_connection
from ..errors import CleanDBError, ConfigurationError
from ._clientside import (
    CONFIG,
    DIRTY,
    MAX_PASSES,
    TABLES,
    ClientSideBackend,
    TableState,
    trigger_name,
)
from .base import IDLE_IN_TRANSACTION, Executor, call_routine, create_failed, quote

PROCEDURES = ("cleandb_truncate",)
TICKETS = "cleandb_tickets"
#: MariaDB only: the source of tickets (see :func:`_tickets_position`).
SEQUENCE = "cleandb_ticket_seq"
#: MariaDB: how many times a DDL is tried with NOWAIT before the pending steps run first.
NOWAIT_ATTEMPTS = 4
BINLOG_ERROR = 1419  # "You do not have the SUPER privilege and binary logging is enabled"


def _start(query: str, length: int = 80) -> str:
    """The start of a query, on one line."""
    text = " ".join(query.split())
    return text if len(text) <= length else text[: length - 3] + "..."


def _tickets_source(sequence: bool) -> str:
    """A one-row derived table ``s`` whose ``next_ticket`` is the next ticket to be handed out
    (a value no rollback returns).

    MariaDB: the ``NOCACHE`` sequence's ``next_not_cached_value``, a plain row read. MySQL 8
    has no sequences: the tickets table's AUTO_INCREMENT, read from information_schema
    (``configure_session`` turns its statistics cache off).
    """
    if sequence:
        return f"(SELECT next_not_cached_value AS next_ticket FROM {SEQUENCE}) s"
    return (
        "(SELECT AUTO_INCREMENT AS next_ticket FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{TICKETS}') s"
    )


def _compact(sql: str) -> str:
    """The routine's text without comments or indentation.

    Any DDL on the server (a TRUNCATE in any database, the reset's own included) makes every
    session load its stored routines again on their next call, and that costs time in
    proportion to their text (measured: +0.14 ms for 200 short statements, +0.08 ms for 20 kB
    of comments). The comments stay here in the source. Applied before table names are put
    in: only the template's own ``--`` comments are removed.
    """
    lines = []
    for line in sql.splitlines():
        code = line.split(" -- ")[0].strip()
        if code and not code.startswith("--"):
            lines.append(code)
    return "\n".join(lines)


def _procedure(seeded: Sequence[tuple[int, str]], sequence: bool = False) -> str:
    """The reset procedure; regenerated at each sync with the seeded-table emptiness check.

    Every read of a table here is a ``SELECT ... INTO`` (a consistent, non-locking read in
    InnoDB), never ``IF EXISTS (SELECT ...)``, which takes shared locks inside routines and
    would wait for any open transaction that wrote a mark.

    Cost model (MariaDB 10.11, measured): a CALL costs about one ``SELECT 1`` round trip;
    each statement inside it a few microseconds; each commit (an autocommit DML) an fsync,
    0.2 ms; a ``TRUNCATE`` 1.3 ms, an ``ALTER TABLE ... AUTO_INCREMENT`` 2 ms. Hence:

    * one first ``SELECT`` reads everything that decides whether anything happened (ticket
      position and stored position, whether any mark exists, the database guard, which
      seeded tables are empty) and the procedure leaves
      right away when nothing did. The emptiness probes cost about 5 us per seeded table.
      Not used instead: the server's ``Com_truncate`` counter (skip the probes while it
      has not moved). Reading it (information_schema.GLOBAL_STATUS) costs 0.12-0.14 ms,
      as much as probing 20 seeded tables; it counts every database's TRUNCATEs, so with
      xdist workers (or any other session truncating) it moves anyway and adds to the
      probes; and a server restart sets it back to 0, from where it can reach the stored
      value again with a truncated seeded table unnoticed;
    * tables whose counter must go back get one DDL each (``TRUNCATE``: it restarts the
      counter, and re-inserting a seeded table's baseline rows with their keys moves it to
      where it was, so ``ALTER`` runs only where that is not enough);
    * everything else - the DELETE + copy of seeded tables whose counter did not move, the
      deletion of the marks of every finished table and the stored ticket position - is one
      transaction at the end: one commit (right after a table reset by DDL, this
      connection's marks of it are deleted: none in the usual case, so nothing to commit);
    * a pass ends with that commit; a mark of this connection's left then was written by an
      application's trigger during the pass (a seeded table's own DELETE + copy has its
      marks deleted right after it, in the final transaction), and the tables loop runs
      again, at most ``MAX_PASSES`` times. A trigger that writes the very table whose reset
      fired it is not seen (MySQL refuses that anyway, error 1442). An interrupted reset may leave the marks of tables
      it did reset (they are reset again next time), never lose those of one it did not.
    """
    if seeded:
        flags = ", ".join(
            f"IF(EXISTS (SELECT 1 FROM {q}), NULL, {table_id})" for table_id, q in seeded
        )
        empty = f"CONCAT_WS(',', {flags})"
    else:
        empty = "''"
    if sequence:
        # MariaDB: a DDL that would wait says so at once (error 1205). Tried up to
        # NOWAIT_ATTEMPTS times: right after a test's writes, InnoDB's background statistics
        # update (persistent statistics with auto-recalc, the default) holds a table for a
        # moment, and a first TRUNCATE ... NOWAIT then fails two times in three (measured,
        # MariaDB 10.11; never with STATS_AUTO_RECALC=0); the second attempt nearly always
        # succeeds. Giving up at once cost a commit of the pending steps per table: -0.9 ms
        # (7%) at k = 5 with the retries.
        attempt = f"""SET @cleandb_sql = CONCAT(v_ddl, ' NOWAIT'), v_tries = 0;
          PREPARE cleandb_stmt FROM @cleandb_sql;
          REPEAT
            SET v_busy = 0, v_tries = v_tries + 1;
            BEGIN
              DECLARE EXIT HANDLER FOR 1205 SET v_busy = 1;
              DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
              EXECUTE cleandb_stmt;
              SET v_ran = 1;
            END;
          UNTIL NOT v_busy OR v_tries >= {NOWAIT_ATTEMPTS} END REPEAT;"""
    else:  # MySQL 8: no NOWAIT for DDL: run the pending steps first
        attempt = "SET v_busy = 1;"
    text = _PROCEDURE.format(tickets=_tickets_source(sequence))
    return _compact(text.replace("__CLEANDB_TRY__", attempt)).replace("__CLEANDB_PROBES__", empty)


_PROCEDURE = f"""CREATE PROCEDURE cleandb_truncate()
proc: BEGIN
  DECLARE v_id INT;
  DECLARE v_name VARCHAR(64);
  DECLARE v_reset, v_restore, v_counter, v_empty, v_missing, v_ddl TEXT;
  DECLARE v_finished, v_later, v_freset, v_frestore TEXT;
  DECLARE v_fname VARCHAR(64);
  DECLARE v_message VARCHAR(128);
  DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
  DECLARE v_last, v_busy, v_ran, v_seeded, v_fid INT DEFAULT 0;
  DECLARE v_count, v_marks, v_tries, v_pass, v_again INT DEFAULT 0;
  DECLARE v_next, v_seen, v_kept, v_base, v_now BIGINT DEFAULT 0;
  -- Integers only: a cursor is materialized in a temporary table, and TEXT columns (or a
  -- GROUP BY over them) would put it on disk. The statements are read per table below.
  DECLARE cur CURSOR FOR
    SELECT tid, MAX(kind IN ('i', 'a')), MAX(kind = 'u'), MAX(kind <> 'a')
    FROM {DIRTY} GROUP BY tid ORDER BY tid;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    -- the final transaction, if open, keeps nothing: the marks stay for the next reset
    ROLLBACK;
    IF @cleandb_fk IS NOT NULL THEN
      SET SESSION foreign_key_checks = @cleandb_fk;
      SET @cleandb_fk = NULL;
    END IF;
    RESIGNAL;
  END;
  SET @cleandb_table = NULL;
  -- The one read that decides. Inserts (or updates of the key) that rolled back took
  -- AUTO_INCREMENT values but left no mark: every fresh 'i' or 'u' mark takes a ticket
  -- first (a value no rollback returns), and when fewer tickets were committed than taken,
  -- every counter is compared with its baseline (kind 'a': only the counter moved; such a
  -- table is reset but not counted). TRUNCATE fires no trigger: a seeded table found empty
  -- counts as written.
  SELECT s.next_ticket, c.tickets,
         EXISTS (SELECT 1 FROM {DIRTY}), c.database_name = DATABASE(), __CLEANDB_PROBES__
  INTO v_next, v_seen, v_marks, v_here, v_empty
  FROM {CONFIG} c, {{tickets}} LIMIT 1;
  IF v_done THEN  -- no configuration row: any mark makes the guard below refuse
    SELECT EXISTS (SELECT 1 FROM {DIRTY}) INTO v_marks;
  END IF;
  IF v_next = v_seen AND NOT v_marks AND NOT v_done AND (v_empty IS NULL OR v_empty = '') THEN
    SELECT 0;
    LEAVE proc;
  END IF;
  IF v_empty <> '' THEN
    INSERT IGNORE INTO {DIRTY} (tid, kind) SELECT id, 'i' FROM {TABLES}
    WHERE FIND_IN_SET(id, v_empty) > 0;
    SET v_marks = 1;
  END IF;
  IF v_next <> v_seen THEN
    -- (counted below the position read first: a ticket taken since is not in the range)
    SELECT COUNT(*) INTO v_kept FROM {TICKETS} WHERE id >= v_seen AND id < v_next;
    IF v_kept <> v_next - v_seen THEN
      INSERT IGNORE INTO {DIRTY} (tid, kind)
      SELECT t.id, 'a' FROM {TABLES} t JOIN information_schema.TABLES s
        ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
      WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
      SELECT COUNT(*) INTO v_marks FROM {DIRTY};
    END IF;
  END IF;
  IF v_marks THEN
    IF NOT v_here THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
    END IF;
    SET @cleandb_fk = @@SESSION.foreign_key_checks;
    SET SESSION foreign_key_checks = 0;
    -- Tables in id order. A table whose counter must go back gets its DDL (TRUNCATE; ALTER
    -- only where needed) right away; every other step - the DELETE + copy of seeded
    -- tables (a seeded table just truncated gets its copy then too), the deletion of the
    -- marks of finished tables - waits for one transaction at the end, so that the DDL's
    -- implicit commits find nothing pending: k DDL + 1 commit. But before a DDL has to wait
    -- for a lock (MariaDB: it is tried with NOWAIT first; MySQL 8 has no NOWAIT for DDL,
    -- so there before every DDL once something is waiting), that transaction is run first,
    -- and the DDL's implicit commit commits it: a reset killed while waiting has committed
    -- every table before the one it waits for, marks gone. Killed elsewhere, it may keep
    -- marks of tables it did reset: they are reset again next time, never lost.
    passes: LOOP
    SET v_done = 0;
    OPEN cur;
    tables: LOOP
      FETCH cur INTO v_id, v_inserted, v_updated, v_written;
      SET v_last = v_done, v_busy = 0, v_ran = 0, v_gone = 0;
      IF NOT v_last THEN
        SELECT name, reset_sql, restore_sql, counter_sql, counter
        INTO v_name, v_reset, v_restore, v_counter, v_base FROM {TABLES} WHERE id = v_id;
        IF v_done THEN  -- a mark of a table no longer tracked (forgotten by a sync): drop it
          SET v_done = 0;
          DELETE FROM {DIRTY} WHERE tid = v_id;
          ITERATE tables;
        END IF;
        SET @cleandb_table = v_name;
        IF v_restore IS NULL THEN
          SET v_seeded = 0, v_ddl = v_reset;  -- empty at baseline: TRUNCATE (counter to 1)
        ELSE
          IF v_base IS NOT NULL AND v_updated AND NOT v_inserted THEN
            -- an UPDATE moves the counter only when it set the key higher: look first
            SELECT AUTO_INCREMENT INTO v_now FROM information_schema.TABLES
            WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = v_name;
            -- (a table gone finds no row: that must not end the loop)
            SET v_inserted = v_now <> v_base, v_done = 0;
          END IF;
          IF v_base IS NULL OR NOT v_inserted THEN
            SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
            ITERATE tables;
          END IF;
          -- seeded, counter moved: TRUNCATE; the copy of the baseline (keys included) then
          -- puts the counter back where it was (ALTER only where it does not)
          SET v_seeded = 1,
              v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
        END IF;
        IF v_later IS NOT NULL OR v_finished IS NOT NULL THEN
          __CLEANDB_TRY__
        END IF;
      END IF;
      IF v_last OR v_busy THEN
        -- the pending steps, in one transaction: at the end, or before a DDL that must wait
        START TRANSACTION;
        WHILE v_later IS NOT NULL DO
          SET v_fid = SUBSTRING_INDEX(v_later, ',', 1);
          SET v_later = NULLIF(SUBSTRING(v_later, LENGTH(v_fid) + 2), '');
          SELECT name, reset_sql, restore_sql INTO v_fname, v_freset, v_frestore
          FROM {TABLES} WHERE id = v_fid;
          SET @cleandb_table = v_fname, v_gone = 0;
          BEGIN
            DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
            SET @cleandb_sql = v_freset;
            PREPARE cleandb_stmt FROM @cleandb_sql;
            EXECUTE cleandb_stmt;
            SET @cleandb_sql = v_frestore;
            PREPARE cleandb_stmt FROM @cleandb_sql;
            EXECUTE cleandb_stmt;
            DEALLOCATE PREPARE cleandb_stmt;
          END;
          IF v_gone THEN
            SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_fname, '`', '``'), '`'));
          ELSE  -- its marks, its own statements' included, right after them (see passes)
            DELETE FROM {DIRTY} WHERE tid = v_fid;
          END IF;
        END WHILE;
        IF v_finished IS NOT NULL THEN
          SET @cleandb_sql = CONCAT('DELETE FROM {DIRTY} WHERE tid IN (', v_finished, ') AND conn <> CONNECTION_ID()');
          PREPARE cleandb_stmt FROM @cleandb_sql;
          EXECUTE cleandb_stmt;
          DEALLOCATE PREPARE cleandb_stmt;
          SET v_finished = NULL;
        END IF;
        IF v_last THEN
          LEAVE tables;
        END IF;
        SET @cleandb_table = v_name, v_gone = 0;
      END IF;
      IF NOT v_gone THEN
        BEGIN
          -- A table dropped or renamed behind the tracker's back: reset the others, keep its
          -- marks, and say so at the end.
          DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
          IF NOT v_ran THEN
            SET @cleandb_sql = v_ddl;  -- the TRUNCATE, waiting for locks if it must
            PREPARE cleandb_stmt FROM @cleandb_sql;
            EXECUTE cleandb_stmt;
          END IF;
          IF v_counter IS NOT NULL THEN
            IF v_seeded THEN
              SET @cleandb_sql = v_restore;
              PREPARE cleandb_stmt FROM @cleandb_sql;
              EXECUTE cleandb_stmt;
            END IF;
            SET @cleandb_sql = v_counter;  -- (its implicit commit commits that copy)
            PREPARE cleandb_stmt FROM @cleandb_sql;
            EXECUTE cleandb_stmt;
          END IF;
          DEALLOCATE PREPARE cleandb_stmt;
        END;
      END IF;
      IF v_gone THEN
        SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
      ELSEIF v_seeded AND v_counter IS NULL THEN
        SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
      ELSE
        -- this connection's marks of it (none, unless a trigger wrote it earlier in this
        -- reset): right away, so that one written from now on stays for the next pass
        DELETE FROM {DIRTY} WHERE tid = v_id AND conn = CONNECTION_ID();
        SET v_finished = CONCAT_WS(',', v_finished, v_id), v_count = v_count + v_written;
      END IF;
    END LOOP;
    CLOSE cur;
    SET @cleandb_table = NULL;
    IF v_pass = 0 AND v_next <> v_seen THEN
      UPDATE {CONFIG} SET tickets = v_next;
    END IF;
    COMMIT;
    -- Each table's marks went right after its own statements: a mark of this connection's
    -- now was left by a trigger of the application's that wrote a table while the reset
    -- deleted or restored rows of another. Another pass resets those tables too.
    SELECT EXISTS (SELECT 1 FROM {DIRTY} WHERE conn = CONNECTION_ID()) INTO v_again;
    IF NOT v_again OR v_missing IS NOT NULL THEN
      LEAVE passes;
    END IF;
    SET v_pass = v_pass + 1;
    IF v_pass >= {MAX_PASSES} THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'alembic-cleandb: triggers keep writing tracked tables while the reset restores them, {MAX_PASSES} passes in a row; their marks are kept.';
    END IF;
    END LOOP;
  ELSEIF v_next <> v_seen THEN  -- (each pass above commits its own work)
    UPDATE {CONFIG} SET tickets = v_next;
    COMMIT;
  END IF;
  IF v_marks THEN
    SET SESSION foreign_key_checks = @cleandb_fk;
    SET @cleandb_fk = NULL;
  END IF;
  IF v_missing IS NOT NULL THEN
    SET @cleandb_table = v_missing;
    SET v_message = LEFT(CONCAT('alembic-cleandb: tracked table ', v_missing,
                                ' doesn''t exist (dropped or renamed)'), 128);
    SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message;
  END IF;
  SELECT v_count;
END"""


_DEFINER = re.compile(r"DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`\s*")

#: Connections that create a worker copy's tables (with their rows) at once. Each CREATE
#: TABLE waits for its own file syncs, which overlap across connections: on a busy disk, 4
#: connections made 40 tables 4-5x faster than one.
COPY_CONNECTIONS = 4
#: Triggers are created one at a time, by one connection, for one database at a time:
#: MariaDB 10.11 sometimes leaves a ``<table>.TRG-`` backup file behind when CREATE TRIGGERs
#: run at once (seen with 4 connections on one database, and on two databases), and that
#: stray file makes the database impossible to drop ("Directory not empty").
_TRIGGERS_LOCK = threading.Lock()


class MySQLBackend(ClientSideBackend):
    names: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
    missing_table_markers = ("doesn't exist",)
    lock_timeout_markers = ("Lock wait timeout",)
    #: Tickets come from a SEQUENCE (MariaDB) or the tickets table's AUTO_INCREMENT (MySQL 8,
    #: which has no sequences). Decided by the server at install and at every sync.
    sequence: bool = False

    def bind(self, connection: Connection) -> None:
        self.sequence = self._mariadb(connection)

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
        idle_in_transaction = False
        for thread, user, host, command, seconds, state, started, query in rows:
            idle = command == "Sleep"
            idle_in_transaction = idle_in_transaction or bool(idle and state)
            status = "idle in transaction" if idle and state else ("idle" if idle else command)
            text = f"thread {thread} ({user}@{host}, {status} for {seconds} s"
            if started is not None:
                text += f", transaction started {started}"
            if query:
                text += f", query {_start(str(query))!r}"
            sessions.append(text + f"; end it with KILL {thread})")
        if sessions:
            parts.append(f"{what}: " + "; ".join(sessions))
        if idle_in_transaction:
            parts.append(IDLE_IN_TRANSACTION)
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

    def bookkeeping_statements(self) -> tuple[str, ...]:
        if not self.sequence:
            return self.bookkeeping_ddl
        # NOCACHE: next_not_cached_value is then exactly the next ticket to be handed out.
        return (*self.bookkeeping_ddl, f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE} NOCACHE")

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
        keys: dict[str, str] = {}  # the AUTO_INCREMENT column of each table that has one
        for table, column, extra in connection.exec_driver_sql(
            "SELECT TABLE_NAME, COLUMN_NAME, EXTRA FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ):
            if "GENERATED" not in str(extra).upper() and "VIRTUAL" not in str(extra).upper():
                columns.setdefault(str(table), []).append(str(column))
            if "AUTO_INCREMENT" in str(extra).upper():
                keys[str(table)] = str(column)
        # Re-inserting rows with their keys leaves the counter at the highest key + 1 only
        # with the default increment (Galera and multi-source setups change it).
        step = tuple(
            connection.exec_driver_sql(
                "SELECT @@auto_increment_increment, @@auto_increment_offset"
            ).one()
        )
        states = []
        for name in names:
            q = self._q(connection, name)
            # (this one does go through the driver's %-formatting)
            count = f"SELECT COUNT(*) FROM {q}".replace("%", "%%")
            rows = int(connection.exec_driver_sql(count).scalar_one())
            counter = counters.get(name)
            restored = None
            if rows and name in keys and step == (1, 1):
                top = f"SELECT MAX({self._q(connection, keys[name])}) FROM {q}"
                highest = connection.exec_driver_sql(top.replace("%", "%%")).scalar()
                restored = None if highest is None else int(highest) + 1
            states.append(
                TableState(
                    name=name,
                    rows=rows,
                    counter=None if counter is None else int(counter),
                    columns=tuple(columns.get(name, ())),
                    restored_counter=restored,
                )
            )
        return states

    def trigger_ddl(self, quote_table: str, table_id: int, kind: str, event: str) -> str:
        # No read of cleandb_dirty: inside a trigger InnoDB reads with shared locks, so an
        # ``IF NOT EXISTS (SELECT ...)`` guard waits for other writers' uncommitted marks. The
        # insert meets at most this connection's own mark; the handler swallows that duplicate
        # (no warning reaches the client) and, being an EXIT handler, skips the ticket.
        # A fresh insert or update mark takes a ticket (an UPDATE can move AUTO_INCREMENT too,
        # by setting the column higher); BEFORE the row, so that a row that then fails
        # (duplicate key, ...) leaves a ticket without a mark as well.
        # Measured per row of a 10,000-row INSERT (MariaDB 10.11): an empty trigger 0.35 us,
        # each further trigger statement about 1 us, this duplicate insert 4 us; a CONTINUE
        # handler plus a flag and an IF cost 0.7 us more; INSERT ... ON DUPLICATE KEY UPDATE
        # costs more than the handler, and its ROW_COUNT() cannot tell a fresh mark from a
        # duplicate for clients that set CLIENT_FOUND_ROWS (SQLAlchemy's MySQL drivers do).
        # Nothing cheaper is correct: MariaDB has row triggers only, and a per-session "already
        # marked" flag (a user variable) survives a ROLLBACK that removed the mark and is
        # carried by a pooled connection into the next test.
        moves = kind in ("i", "u")
        if not moves:
            ticket = ""
        elif self.sequence:
            ticket = f" INSERT INTO {TICKETS} (id) VALUES (NEXT VALUE FOR {SEQUENCE});"
        else:
            ticket = f" INSERT INTO {TICKETS} () VALUES ();"
        timing = "BEFORE" if moves else "AFTER"
        return (
            f"CREATE TRIGGER {trigger_name(table_id, kind)} {timing} {event} ON {quote_table} "
            "FOR EACH ROW BEGIN DECLARE EXIT HANDLER FOR 1062 BEGIN END; "
            f"INSERT INTO {DIRTY} (tid, kind, conn) VALUES ({table_id}, '{kind}', "
            f"CONNECTION_ID());{ticket} END"
        )

    def statements(
        self, q: str, shadow: str, cols: str, state: TableState
    ) -> tuple[str, str | None, str | None]:
        """Empty at baseline: ``TRUNCATE`` (restarts the counter; ``ALTER`` after it only when
        the baseline counter is past 1). Seeded: ``DELETE`` + copy of the baseline when the
        counter did not move; when it did, the procedure truncates instead, and the copy
        (keys included) puts the counter back - ``counter_sql`` (``ALTER``) is kept only for
        tables where the copy does not land on the baseline counter."""
        counter_sql = None
        if state.counter is not None:
            counter_sql = f"ALTER TABLE {q} AUTO_INCREMENT = {state.counter}"
        if not state.rows:
            if state.counter is not None and state.counter <= 1:
                counter_sql = None  # TRUNCATE restarts the counter at 1 already
            return f"TRUNCATE TABLE {q}", None, counter_sql
        if state.restored_counter is not None and state.restored_counter == state.counter:
            counter_sql = None
        restore = f"INSERT INTO {q} ({cols}) SELECT {cols} FROM {shadow}"
        return f"DELETE FROM {q}", restore, counter_sql

    def after_sync(
        self, ex: Executor, seeded: Sequence[tuple[int, str]], fresh: bool = True
    ) -> None:
        ex("DROP PROCEDURE IF EXISTS cleandb_truncate")
        ex(_procedure(seeded, self.sequence))
        if not fresh:
            return
        # The marks are cleared next: every ticket taken so far is accounted for.
        ex(f"DELETE FROM {TICKETS}")
        source = _tickets_source(self.sequence)
        ex(f"UPDATE {CONFIG} SET tickets = (SELECT next_ticket FROM {source})")

    def own_objects(self, connection: Connection) -> list[tuple[str, str]]:
        found = [
            ("TRIGGER", str(name))
            for (name,) in connection.exec_driver_sql(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()"
            )
        ]
        found += [
            (str(kind), str(name))
            for name, kind in connection.exec_driver_sql(
                "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = DATABASE()"
            )
        ]
        kinds = {"VIEW": "VIEW", "SEQUENCE": "SEQUENCE"}
        found += [
            (kinds.get(str(kind), "TABLE"), str(name))
            for name, kind in connection.exec_driver_sql(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            )
        ]
        return [(kind, name) for kind, name in found if self.own_table(name)]

    def resetter(self, connection: Connection) -> Callable[[], int]:
        return call_routine(connection, "CALL cleandb_truncate()", more_results=True)

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

    # -- whole test databases -----------------------------------------------------
    exists_sql = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %(name)s"
    version_tables_sql: ClassVar[str] = (
        "SELECT NULL, TABLE_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'version_num' ORDER BY 2"
    )
    create_sql = "CREATE DATABASE IF NOT EXISTS {name}"

    def copy(self, base: URL, copy: URL, allowed: str | None = None) -> None:
        """``copy`` as an image of ``base``, which the plugin has just reset: the copy's
        baseline, marks and tickets are the base's, so no re-install (and no re-snapshot) is
        needed, only :func:`~alembic_cleandb.adopt`. Everything is read first, through one
        connection to the base; the copy's tables are created by :data:`COPY_CONNECTIONS`
        connections at once, its triggers by one."""
        name = self.database(copy)
        with autocommit_connection(base) as src:
            charset, collation = src.exec_driver_sql(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"
            ).one()
            plan = _CopyPlan.read(src)
            try:
                _raw(
                    src,
                    f"CREATE DATABASE {_quote(src, name)} CHARACTER SET {_word(charset)} "
                    f"COLLATE {_word(collation)}",
                )
            except Exception as exc:
                raise create_failed(copy, exc) from None
        _in_parallel(copy, plan.tables)
        with autocommit_connection(copy) as dst:
            run = Executor.for_connection(dst)
            for statements in plan.routines:
                for sql in statements:
                    run(sql)
            _create_views(run, plan.views, plan.database)
        with _TRIGGERS_LOCK:
            _in_parallel(copy, plan.triggers, connections=1)
        self.adopt_copy(copy, allowed)

    def drop(self, url: URL) -> None:
        with self._server(url) as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(c, self.database(url))}")


def _quote(connection: Connection, name: str) -> str:
    """Quoted for a statement run without parameters (no ``%`` doubling)."""
    p = connection.dialect.identifier_preparer
    return p.initial_quote + name.replace(p.escape_quote, p.escape_to_quote) + p.final_quote


def _raw(connection: Connection, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the driver's cursor without parameters (nothing parses ``%``)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall() or ())
    finally:
        cursor.close()


def _word(value: object) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(value)):
        raise ConfigurationError(f"alembic-cleandb: unexpected character set name {value!r}")
    return str(value)


_GENERATED = ("GENERATED", "VIRTUAL", "PERSISTENT")


class _CopyPlan:
    """Every statement that makes a copy of the database ``src`` is connected to."""

    def __init__(self, database: str):
        self.database = database
        #: One job per table: CREATE (with its AUTO_INCREMENT), then its rows.
        self.tables: list[list[str]] = []
        #: One job per table: its triggers, in their order.
        self.triggers: list[list[str]] = []
        self.routines: list[list[str]] = []
        #: (name, CREATE VIEW) of each view.
        self.views: list[tuple[str, str]] = []

    @classmethod
    def read(cls, src: Connection) -> _CopyPlan:
        plan = cls(str(src.exec_driver_sql("SELECT DATABASE()").scalar()))
        q = functools.partial(_quote, src)
        columns: dict[str, list[str]] = {}
        for table, column, extra in src.exec_driver_sql(
            "SELECT TABLE_NAME, COLUMN_NAME, EXTRA FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ):
            if not any(w in str(extra).upper() for w in _GENERATED):
                columns.setdefault(str(table), []).append(q(str(column)))
        for table, kind in src.exec_driver_sql(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
        ):
            table = str(table)
            if kind == "VIEW":
                ddl = _raw(src, f"SHOW CREATE VIEW {q(table)}")[0][1]
                plan.views.append((table, _DEFINER.sub("", str(ddl))))
                continue
            cols = ", ".join(columns.get(table, []))
            plan.tables.append(
                [
                    str(_raw(src, f"SHOW CREATE TABLE {q(table)}")[0][1]),
                    f"INSERT INTO {q(table)} ({cols}) "
                    f"SELECT {cols} FROM {q(plan.database)}.{q(table)}",
                ]
            )
        by_table: dict[str, list[str]] = {}
        for trigger, table in src.exec_driver_sql(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() "
            "ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER"
        ):
            row = _raw(src, f"SHOW CREATE TRIGGER {q(str(trigger))}")[0]
            by_table.setdefault(str(table), []).extend(
                [_sql_mode(row[1]), _DEFINER.sub("", str(row[2]))]
            )
        plan.triggers = list(by_table.values())
        for routine, kind in src.exec_driver_sql(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME"
        ):
            if kind not in ("PROCEDURE", "FUNCTION"):
                continue
            row = _raw(src, f"SHOW CREATE {kind} {q(str(routine))}")[0]
            plan.routines.append([_sql_mode(row[1]), _DEFINER.sub("", str(row[2]))])
        return plan


def _in_parallel(
    url: URL, jobs: Sequence[Sequence[str]], connections: int = COPY_CONNECTIONS
) -> None:
    """Run each job's statements in order, up to ``connections`` jobs at once, with
    foreign-key checks off (a table may reference one not created yet)."""
    todo = list(reversed(jobs))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        with autocommit_connection(url) as connection:
            run = Executor.for_connection(connection)
            run("SET SESSION foreign_key_checks = 0")
            while True:
                with lock:
                    if errors or not todo:
                        return
                    job = todo.pop()
                try:
                    for sql in job:
                        run(sql)
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                    return

    if not todo:
        return
    count = max(1, min(connections, len(todo)))
    with ThreadPoolExecutor(max_workers=count) as pool:
        for future in [pool.submit(work) for _ in range(count)]:
            future.result()
    if errors:
        raise errors[0]


def _create_views(run: Executor, views: list[tuple[str, str]], database: str) -> None:
    """Views may use views: create them in rounds until none is left."""
    while views:
        left = []
        for name, ddl in views:
            try:
                run(ddl)
            except Exception:
                left.append((name, ddl))
        if len(left) == len(views):
            raise ConfigurationError(
                f"alembic-cleandb: cannot copy the views {', '.join(n for n, _ in left)} of "
                f"{database!r} for a pytest-xdist worker"
            )
        views = left


def _sql_mode(mode: object) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_,]*", str(mode)):
        raise ConfigurationError(f"alembic-cleandb: unexpected sql_mode {mode!r}")
    return f"SET SESSION sql_mode = '{mode}'"
