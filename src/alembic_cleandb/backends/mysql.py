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

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .._connect import autocommit_connection, safe_url
from .._sql import (
    SQL,
    Composable,
    Identifier,
    Value,
    driver_call,
    error_number,
    execute,
    inline,
    message,
    quote_name,
)
from ..errors import CleanDBError, ConfigurationError
from ._clientside import (
    CONFIG,
    DIRTY,
    LAYER_COLUMNS,
    LAYER_SHADOW,
    LAYERS,
    MAX_PASSES,
    TABLES,
    ClientSideBackend,
    ForeignKey,
    TableState,
    shadow_name,
    trigger_name,
)
from .base import (
    IDLE_IN_TRANSACTION,
    LOCK_TIMEOUT,
    MISSING_TABLE,
    UNIQUE_CLASH,
    ChangeSource,
    Executor,
    create_failed,
    query_start,
)

PROCEDURES = ("cleandb_truncate", "cleandb_reset")
TICKETS = "cleandb_tickets"
#: The bookkeeping tables' character set: any table name fits (also in a latin1 database), and
#: names are compared exactly (`Order` and `order`, `cafe` and `café` are different tables).
_BINARY = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
#: For each tracked table, the tracked tables its cascading foreign keys reach.
CASCADES = "cleandb_cascades"
#: Seeded tables with at least this many rows are restored in place even without triggers.
IN_PLACE_ROWS = 1000
#: Column types compared byte for byte when a table is restored in place.
TEXT_TYPES = frozenset(
    ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set")
)
#: Foreign-key rules that make InnoDB change a child's rows (and fire no trigger for them).
CASCADING_RULES = ("CASCADE", "SET NULL", "SET DEFAULT")
#: MariaDB only: the source of tickets (see :func:`_tickets_position`).
SEQUENCE = "cleandb_ticket_seq"
#: MariaDB: how many times a DDL is tried with NOWAIT before the pending steps run first.
NOWAIT_ATTEMPTS = 4
BINLOG_ERROR = 1419  # "You do not have the SUPER privilege and binary logging is enabled"
SEQUENCE_EXHAUSTED = 4084  # MariaDB: "Sequence ... has run out"
#: ``cleandb_tables.reset_mode``: how the reset empties a table. Default: DELETE + copy (or
#: in place; TRUNCATE where the counter must go back). TRUNCATE_ALWAYS: a table with DELETE
#: triggers of the application's (an append-only audit log's raise) is truncated, which fires
#: no trigger, and its baseline copied back (also when counters keep counting). NEVER_TRUNCATE: a system-versioned table
#: (MariaDB refuses to truncate it, error 4137) is emptied by DELETE, its counter by ALTER.
DELETE_FIRST, TRUNCATE_ALWAYS, NEVER_TRUNCATE = 0, 1, 2
#: MariaDB: the baseline position of each SEQUENCE (a test's NEXTVAL fires no trigger).
SEQUENCES = "cleandb_sequences"
#: Marks of non-transactional tables (MyISAM, Aria, MEMORY...), kept in a MyISAM table: a
#: rollback undoes an InnoDB mark but not such a table's write, so their triggers mark here.
DIRTY_NT = "cleandb_dirty_nt"
#: Engines whose writes a ROLLBACK undoes (every other engine's triggers mark in DIRTY_NT).
TRANSACTIONAL_ENGINES = frozenset(("InnoDB", "RocksDB", "TokuDB", "XtraDB"))
#: The reset's message when restoring a TRUNCATE_ALWAYS table fails in the application's own
#: triggers (the Python side adds the way out, see :meth:`MySQLBackend.explain`).
REFUSED = "fired its own triggers, which refused:"
ELSEWHERE = (
    "'alembic-cleandb: tracking here was installed in another database; refusing to reset. "
    "Adopt a copied test database with alembic_cleandb.adopt(url).'"
)


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


def generated_column(extra: str) -> bool:
    """Whether ``information_schema.COLUMNS.EXTRA`` marks a generated column (never copied).

    Generated: ``VIRTUAL GENERATED``, ``STORED GENERATED`` (MySQL 8, MariaDB 10.2+), and
    MariaDB's older ``VIRTUAL`` / ``PERSISTENT``. Data, and so copied: MySQL 8's
    ``DEFAULT_GENERATED`` (a plain ``DEFAULT CURRENT_TIMESTAMP``), with or without
    ``on update CURRENT_TIMESTAMP``, ``auto_increment``, ``INVISIBLE``.
    """
    words = extra.upper().split()
    return any(w in words for w in ("VIRTUAL", "STORED", "PERSISTENT"))


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


def _procedure(
    seeded: Sequence[tuple[int, str]],
    sequence: bool = False,
    cascades: bool = False,
    checks: bool = False,
    sequences: Sequence[tuple[str, int]] = (),
    counters: Sequence[tuple[int, str, int]] = (),
    nontransactional: bool = False,
) -> str:
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
    # TRUNCATE fires no trigger: a seeded table found empty, or a table empty at baseline whose
    # counter is past 1 found at another position (``counters``: id, name, counter), counts as
    # written.
    flags = [f"IF(EXISTS (SELECT 1 FROM {q}), NULL, {table_id})" for table_id, q in seeded]
    flags += [
        # (only when counters restart: keeping them, a counter past its baseline is expected)
        "IF(NOT p_restart OR (SELECT AUTO_INCREMENT FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME = CONVERT(X'{name.encode().hex()}' USING utf8mb4)) = {int(counter)}, "
        f"NULL, {int(table_id)})"
        for table_id, name, counter in counters
    ]
    empty = f"CONCAT_WS(',', {', '.join(flags)})" if flags else "''"
    if sequence:
        # MariaDB: a DDL that would wait says so at once (error 1205). Tried up to
        # NOWAIT_ATTEMPTS times: right after a test's writes, InnoDB's background statistics
        # update (persistent statistics with auto-recalc, the default) holds a table for a
        # moment, and a first TRUNCATE ... NOWAIT then fails two times in three (measured,
        # MariaDB 10.11; never with STATS_AUTO_RECALC=0); the second attempt nearly always
        # succeeds. Giving up at once cost a commit of the pending steps per table: -0.9 ms
        # (7%) at k = 5 with the retries.
        attempt = f"""SET @cleandb_sql = v_nowait, v_tries = 0;
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
    # InnoDB fires no trigger for rows that cascading foreign keys change: a table written
    # by UPDATE or DELETE marks the tables its cascades reach (only with such foreign keys).
    cascade = (
        f"INSERT IGNORE INTO {DIRTY} (tid, kind) SELECT c.child, 'd' FROM {CASCADES} c "
        f"JOIN {DIRTY} d ON d.tid = c.parent AND d.kind IN ('u', 'd');"
        if cascades
        else ""
    )
    text = _PROCEDURE.format(tickets=_tickets_source(sequence))
    text = text.replace(
        "__CLEANDB_IN_PLACE_NOW__", _restore("v_reset", "v_update", "v_restore", "v_name")
    )
    text = text.replace(
        "__CLEANDB_IN_PLACE_LATER__", _restore("v_freset", "v_fupdate", "v_frestore", "v_fname")
    )
    text = text.replace("__CLEANDB_CASCADES__", cascade)
    # MariaDB: the DDL's NOWAIT form (after the table's name: TRUNCATE TABLE t NOWAIT,
    # ALTER TABLE t NOWAIT AUTO_INCREMENT = n); MySQL 8 has none.
    truncate = "SET v_nowait = CONCAT(v_ddl, ' NOWAIT');" if sequence else ""
    alter = (
        "SET v_nowait = CONCAT('ALTER TABLE `', REPLACE(v_name, '`', '``'), "
        "'` NOWAIT AUTO_INCREMENT = ', v_base);"
        if sequence
        else ""
    )
    text = text.replace("__CLEANDB_NOWAIT_TRUNCATE__", truncate)
    text = text.replace("__CLEANDB_NOWAIT_ALTER__", alter)
    text = text.replace("__CLEANDB_CHECKS__", _CHECKS if checks else "")
    # Marks of non-transactional tables (see DIRTY_NT) join the others first; committed before
    # they leave DIRTY_NT, so that a failed reset keeps them.
    moved = (
        f"""IF (SELECT COUNT(*) FROM {DIRTY_NT}) > 0 THEN
    INSERT IGNORE INTO {DIRTY} (tid, kind) SELECT tid, kind FROM {DIRTY_NT};
    COMMIT;
    DELETE FROM {DIRTY_NT};
  END IF;"""
        if nontransactional
        else ""
    )
    text = text.replace("__CLEANDB_NONTRANSACTIONAL__", moved)
    text = _compact(text.replace("__CLEANDB_TRY__", attempt)).replace("__CLEANDB_PROBES__", empty)
    probes, restarts = _sequence_steps(sequences)
    text = text.replace("__CLEANDB_SEQUENCE_PROBES__", probes)
    return text.replace("__CLEANDB_SEQUENCES__\n", f"{restarts}\n" if restarts else "")


def _sequence_steps(sequences: Sequence[tuple[str, int]]) -> tuple[str, str]:
    """MariaDB ``SEQUENCE`` objects (``(quoted name, baseline position)``): the first query's
    probe (the numbers of the sequences moved since, comma-separated) and the statements that
    put them back. A NEXTVAL fires no trigger (and no rollback returns its value), so each
    position is compared: ``next_not_cached_value`` is the baseline position right after an
    ``ALTER SEQUENCE ... RESTART`` (see :meth:`MySQLBackend.sequence_positions`), and any
    value taken since moves it. The reset's only DDL for a sequence is that RESTART, when it
    moved."""
    if not sequences:
        return "''", ""
    flags = ", ".join(
        f"IF((SELECT next_not_cached_value FROM {q}) = {int(position)}, NULL, {k})"
        for k, (q, position) in enumerate(sequences, 1)
    )
    restarts = "\n".join(
        f"IF FIND_IN_SET({k}, v_seqs) THEN ALTER SEQUENCE {q} RESTART WITH {int(position)}; END IF;"
        for k, (q, position) in enumerate(sequences, 1)
    )
    block = (
        f"IF v_seqs <> '' THEN\nIF NOT v_here THEN\nSIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = "
        f"{ELSEWHERE};\nEND IF;\n{restarts}\nEND IF;"
    )
    return f"CONCAT_WS(',', {flags})", block


def _restore(delete: str, update: str, insert: str, name: str) -> str:
    """A seeded table's rows back to its baseline (the variables hold its statements).

    Without a primary key (``update`` is NULL): ``delete`` deletes every row and ``insert``
    copies the baseline. With one, in place: ``delete`` removes the rows the baseline lacks,
    ``insert`` adds the missing ones, ``update`` puts back the rows that differ (compared byte
    for byte), last, so that it also undoes what an application's INSERT trigger changed in
    the rows just inserted. A seed row the test did not touch is not written at all: no
    trigger rewrites it, and the cost follows what changed. Should unique values have been
    swapped between rows (the insert or update meets a duplicate key, error 1062, and
    changes nothing), every row is deleted and the baseline copied back (then updated, for
    the triggers). A table dropped behind the tracker's back sets ``v_gone``.
    """
    steps = f"""PREPARE cleandb_stmt FROM @cleandb_sql;
              EXECUTE cleandb_stmt;
              IF {update} IS NOT NULL THEN
                SET @cleandb_sql = {update};
                PREPARE cleandb_stmt FROM @cleandb_sql;
                EXECUTE cleandb_stmt;
              END IF;"""
    return f"""BEGIN
            DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
            SET @cleandb_sql = {delete}, v_swap = 0;
            PREPARE cleandb_stmt FROM @cleandb_sql;
            EXECUTE cleandb_stmt;
            BEGIN
              DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
              SET @cleandb_sql = {insert};
              {steps}
            END;
            IF v_swap THEN
              SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE({name}, '`', '``'), '`');
              PREPARE cleandb_stmt FROM @cleandb_sql;
              EXECUTE cleandb_stmt;
              SET @cleandb_sql = {insert};
              {steps}
            END IF;
            DEALLOCATE PREPARE cleandb_stmt;
          END;"""


#: Before the reset writes anything: no row of an untracked table may reference a row it
#: would remove (it runs with foreign-key checks off). Each dirty table with such references
#: has a ``check_sql`` (``SELECT CASE ... END INTO @cleandb_bad``: 0, or k for the k-th
#: untracked table of ``check_names``); a hit refuses the reset, marks kept.
_CHECKS = f"""SET v_later = NULL;
    SELECT GROUP_CONCAT(id ORDER BY id) INTO v_later FROM {TABLES}
    WHERE check_sql IS NOT NULL AND id IN (SELECT tid FROM {DIRTY});
    WHILE v_later IS NOT NULL DO
      SET v_fid = SUBSTRING_INDEX(v_later, ',', 1);
      SET v_later = NULLIF(SUBSTRING(v_later, LENGTH(v_fid) + 2), '');
      SELECT name, check_sql, check_names INTO v_fname, v_freset, v_frestore
      FROM {TABLES} WHERE id = v_fid;
      SET @cleandb_sql = v_freset, @cleandb_bad = 0;
      PREPARE cleandb_stmt FROM @cleandb_sql;
      EXECUTE cleandb_stmt;
      DEALLOCATE PREPARE cleandb_stmt;
      IF @cleandb_bad > 0 THEN
        SET @cleandb_table = CONCAT('`', REPLACE(v_fname, '`', '``'), '`');
        SET v_message = LEFT(CONCAT('alembic-cleandb: a row of untracked table `',
          JSON_UNQUOTE(JSON_EXTRACT(v_frestore, CONCAT('$[', @cleandb_bad - 1, ']'))),
          '` references a row a test wrote to ', @cleandb_table), 128);
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
      END IF;
    END WHILE;"""

_PROCEDURE = f"""CREATE PROCEDURE cleandb_reset(IN p_restart BOOLEAN)
proc: BEGIN
  DECLARE v_id INT;
  -- (utf8mb4 whatever the database's character set: any table name fits)
  DECLARE v_name VARCHAR(64) CHARACTER SET utf8mb4;
  DECLARE v_reset, v_restore, v_counter, v_empty, v_missing, v_ddl, v_nowait TEXT CHARACTER SET utf8mb4;
  DECLARE v_update, v_fupdate TEXT CHARACTER SET utf8mb4;
  DECLARE v_finished, v_later, v_freset, v_frestore TEXT CHARACTER SET utf8mb4;
  DECLARE v_fname VARCHAR(64) CHARACTER SET utf8mb4;
  DECLARE v_message VARCHAR(128) CHARACTER SET utf8mb4;
  DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
  DECLARE v_last, v_busy, v_ran, v_seeded, v_fid, v_swap, v_drift INT DEFAULT 0;
  DECLARE v_count, v_marks, v_tries, v_pass, v_again, v_mode, v_stuck INT DEFAULT 0;
  DECLARE v_refused, v_why, v_seqs TEXT CHARACTER SET utf8mb4;
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
  __CLEANDB_NONTRANSACTIONAL__
  -- The one read that decides. Inserts (or updates of the key) that rolled back took
  -- AUTO_INCREMENT values but left no mark: every fresh 'i' or 'u' mark takes a ticket
  -- first (a value no rollback returns), and when fewer tickets were committed than taken,
  -- every counter is compared with its baseline (kind 'a': only the counter moved; such a
  -- table is reset but not counted). TRUNCATE fires no trigger: a seeded table found empty
  -- counts as written.
  -- A reset that kept counting (p_restart false) left counters past their baselines without
  -- marks (drifted): the next one that restarts ids compares every counter, as after a rollback.
  SELECT s.next_ticket, c.tickets, c.drifted AND p_restart,
         EXISTS (SELECT 1 FROM {DIRTY}), c.database_name = DATABASE(), __CLEANDB_PROBES__,
         __CLEANDB_SEQUENCE_PROBES__
  INTO v_next, v_seen, v_drift, v_marks, v_here, v_empty, v_seqs
  FROM {CONFIG} c, {{tickets}} LIMIT 1;
  IF v_done THEN  -- no configuration row: any mark makes the guard below refuse
    SELECT EXISTS (SELECT 1 FROM {DIRTY}) INTO v_marks;
  END IF;
  IF NOT p_restart THEN  -- keeping counters: sequences keep counting too
    SET v_seqs = '';
  END IF;
  IF v_next = v_seen AND NOT v_marks AND NOT v_done AND NOT v_drift
     AND (v_empty IS NULL OR v_empty = '') AND (v_seqs IS NULL OR v_seqs = '') THEN
    SELECT 0;
    LEAVE proc;
  END IF;
  __CLEANDB_SEQUENCES__
  IF v_empty <> '' THEN
    INSERT IGNORE INTO {DIRTY} (tid, kind) SELECT id, 'i' FROM {TABLES}
    WHERE FIND_IN_SET(id, v_empty) > 0;
    SET v_marks = 1;
  END IF;
  IF p_restart AND (v_next <> v_seen OR v_drift) THEN  -- (keeping counters: no matter)
    -- (counted below the position read first: a ticket taken since is not in the range)
    SELECT COUNT(*) INTO v_kept FROM {TICKETS} WHERE id >= v_seen AND id < v_next;
    IF v_kept <> v_next - v_seen OR v_drift THEN
      INSERT IGNORE INTO {DIRTY} (tid, kind)
      SELECT t.id, 'a' FROM {TABLES} t JOIN information_schema.TABLES s
        ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
      WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
      SELECT COUNT(*) INTO v_marks FROM {DIRTY};
    END IF;
  END IF;
  IF v_marks THEN
    IF NOT v_here THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {ELSEWHERE};
    END IF;
    __CLEANDB_CASCADES__
    __CLEANDB_CHECKS__
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
      SET v_last = v_done, v_busy = 0, v_ran = 0, v_gone = 0, v_stuck = 0;
      IF NOT v_last THEN
        SELECT name, reset_sql, restore_sql, counter_sql, counter, update_sql, reset_mode
        INTO v_name, v_reset, v_restore, v_counter, v_base, v_update, v_mode
        FROM {TABLES} WHERE id = v_id;
        IF v_done THEN  -- a mark of a table no longer tracked (forgotten by a sync): drop it
          SET v_done = 0;
          DELETE FROM {DIRTY} WHERE tid = v_id;
          ITERATE tables;
        END IF;
        SET @cleandb_table = v_name;
        IF NOT p_restart AND v_mode <> {TRUNCATE_ALWAYS} THEN
          -- rows only, counters keep counting: DELETE (and the copy of a seeded table's
          -- baseline) in the final transaction, no DDL at all (except for a table with DELETE
          -- triggers of its own, which a DELETE would fire: truncated, its counter restarts)
          SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
          ITERATE tables;
        END IF;
        IF v_restore IS NULL THEN
          SET v_seeded = 0, v_ddl = v_reset;  -- empty at baseline: TRUNCATE (counter to 1)
          __CLEANDB_NOWAIT_TRUNCATE__
        ELSEIF v_mode = {TRUNCATE_ALWAYS} THEN
          -- seeded, with DELETE triggers of the application's (an append-only table's raises):
          -- TRUNCATE, which fires none, then its counter, then the baseline copied back
          SET v_seeded = 1,
              v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
          __CLEANDB_NOWAIT_TRUNCATE__
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
          IF v_update IS NULL AND v_mode <> {NEVER_TRUNCATE} THEN
            SET v_seeded = 1,
                v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
            __CLEANDB_NOWAIT_TRUNCATE__
          ELSE
            -- restored in place (by primary key): the rows now, in a transaction that the
            -- counter's ALTER then commits (no TRUNCATE: no seed row is written again)
            START TRANSACTION;
            __CLEANDB_IN_PLACE_NOW__
            SET v_seeded = 0, v_ddl = v_counter, v_counter = NULL;
            __CLEANDB_NOWAIT_ALTER__
          END IF;
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
          SELECT name, reset_sql, restore_sql, update_sql
          INTO v_fname, v_freset, v_frestore, v_fupdate FROM {TABLES} WHERE id = v_fid;
          SET @cleandb_table = v_fname, v_gone = 0;
          IF v_frestore IS NULL THEN  -- empty at baseline, counter kept (p_restart false)
            BEGIN
              DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
              SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
              PREPARE cleandb_stmt FROM @cleandb_sql;
              EXECUTE cleandb_stmt;
              DEALLOCATE PREPARE cleandb_stmt;
            END;
          ELSE
            __CLEANDB_IN_PLACE_LATER__
          END IF;
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
            IF v_seeded AND v_mode <> {TRUNCATE_ALWAYS} THEN
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
      IF v_seeded AND v_mode = {TRUNCATE_ALWAYS} AND NOT v_gone THEN
        -- truncated (and its counter set): the baseline copied back, then the rows its INSERT
        -- triggers changed put back. Committed at once, also when a trigger of the
        -- application's refuses (no seed row is lost): then its marks stay and the reset says so.
        BEGIN
          DECLARE EXIT HANDLER FOR SQLEXCEPTION
          BEGIN
            GET DIAGNOSTICS CONDITION 1 v_why = MESSAGE_TEXT;
            SET v_stuck = 1;
          END;
          SET @cleandb_sql = v_restore;
          PREPARE cleandb_stmt FROM @cleandb_sql;
          EXECUTE cleandb_stmt;
          IF v_update IS NOT NULL THEN
            SET @cleandb_sql = v_update;
            PREPARE cleandb_stmt FROM @cleandb_sql;
            EXECUTE cleandb_stmt;
          END IF;
        END;
        COMMIT;
      END IF;
      IF v_gone THEN
        SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
      ELSEIF v_stuck THEN
        SET v_refused = CONCAT_WS(', ', v_refused, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
      ELSEIF v_seeded AND v_counter IS NULL AND v_mode <> {TRUNCATE_ALWAYS} THEN
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
    IF v_pass = 0 THEN  -- (drifted: whether counters may be past their baselines unmarked)
      UPDATE {CONFIG} SET tickets = v_next, drifted = (NOT p_restart)
      WHERE tickets <> v_next OR drifted <> (NOT p_restart);
    END IF;
    COMMIT;
    -- Each table's marks went right after its own statements: a mark of this connection's
    -- now was left by a trigger of the application's that wrote a table while the reset
    -- deleted or restored rows of another. Another pass resets those tables too.
    SELECT EXISTS (SELECT 1 FROM {DIRTY} WHERE conn = CONNECTION_ID()) INTO v_again;
    IF NOT v_again OR v_missing IS NOT NULL OR v_refused IS NOT NULL THEN
      LEAVE passes;
    END IF;
    SET v_pass = v_pass + 1;
    IF v_pass >= {MAX_PASSES} THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'alembic-cleandb: triggers keep writing tracked tables while the reset restores them, {MAX_PASSES} passes in a row; their marks are kept.';
    END IF;
    END LOOP;
  ELSE  -- (each pass above commits its own work)
    UPDATE {CONFIG} SET tickets = v_next, drifted = (NOT p_restart)
    WHERE tickets <> v_next OR drifted <> (NOT p_restart);
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
    SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message, MYSQL_ERRNO = 1146;
  END IF;
  IF v_refused IS NOT NULL THEN
    SET @cleandb_table = v_refused;
    SET v_message = LEFT(CONCAT('alembic-cleandb: restoring ', v_refused, ' {REFUSED} ', v_why), 128);
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
  END IF;
  SELECT v_count;
END"""

#: The reset as every version called it: restarting ids.
_TRUNCATE = "CREATE PROCEDURE cleandb_truncate() CALL cleandb_reset(TRUE)"


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
    #: ER_NO_SUCH_TABLE (also what the reset procedure signals for a table gone),
    #: ER_LOCK_WAIT_TIMEOUT, ER_DUP_ENTRY
    ERROR_KINDS: ClassVar[dict[int, str]] = {
        1146: MISSING_TABLE,
        1205: LOCK_TIMEOUT,
        1062: UNIQUE_CLASH,
    }
    layer_columns: ClassVar[tuple[str, ...]] = (*LAYER_COLUMNS, "reset_mode")

    def error_kind(self, exc: BaseException) -> str | None:
        return self.ERROR_KINDS.get(error_number(exc) or 0)

    def explain(
        self,
        exc: BaseException,
        display: str,
        connection: Connection | None = None,
        action: str = "resetting",
    ) -> str:
        reason = message(exc)
        if REFUSED not in reason:
            return super().explain(exc, display, connection, action)
        return (
            f"alembic-cleandb: {action} {display} failed: {reason}. The table has DELETE "
            "triggers of its own, so the reset truncates it and copies its baseline rows back; "
            "its own INSERT triggers changed those rows and putting them back failed in its "
            "triggers (an UPDATE trigger that refuses?). The rows are there as its triggers "
            "made them, every other table was reset, and its marks are kept. Fix: exclude the "
            "table (op.install_clean_tracking(exclude=[...])), or have its INSERT trigger keep "
            "the values an INSERT gives (SET NEW.at = COALESCE(NEW.at, NOW())), then reset again."
        )

    #: Tickets come from a SEQUENCE (MariaDB) or the tickets table's AUTO_INCREMENT (MySQL 8,
    #: which has no sequences). Decided by the server at install and at every sync.
    sequence: bool = False

    def __init__(self) -> None:
        super().__init__()
        #: ``reset_mode`` of each table the running sync took a baseline of (stored at its end),
        #: by id; and by name, as :meth:`table_states` found it.
        self._modes: dict[int, int] = {}
        self._table_modes: dict[str, int] = {}
        #: The quoted names of the non-transactional tables the last listing found.
        self._nontransactional: set[str] = set()

    def sequence_positions(self, ex: Executor, fresh: bool) -> list[tuple[str, int]]:
        """MariaDB: ``(quoted name, baseline position)`` of every SEQUENCE the application has
        (not excluded), stored in ``cleandb_sequences``. A new sequence, and after a migration
        step (``fresh``) one that moved, takes its position now: ``next_not_cached_value``
        for a ``NOCACHE`` one; a cached one hands out values from memory that the table does
        not show, so its next value is taken (``NEXTVAL``) and the sequence restarted there -
        its next value unchanged, and ``next_not_cached_value`` then equal to it, which is what
        the reset compares (see :func:`_sequence_steps`)."""
        connection = ex.connection
        if not self.sequence or connection is None:
            return []
        excluded = self._excluded(connection)
        names = [
            str(n)
            for (n,) in execute(
                connection,
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME",
            )
            if not self.own_table(str(n)) and str(n) not in excluded
        ]
        stored = {
            str(n): int(p)
            for n, p in execute(connection, f"SELECT name, position FROM {SEQUENCES}")
        }
        for name in set(stored) - set(names):
            execute(
                connection, SQL(f"DELETE FROM {SEQUENCES} WHERE name = {{}}").format(Value(name))
            )
        found = []
        for name in names:
            quoted = quote_name(connection.dialect, name)
            now, cache = execute(
                connection, SQL("SELECT next_not_cached_value, cache_size FROM {}").format(name)
            ).one()
            position = int(now)
            if name in stored and (not fresh or stored[name] == position):
                found.append((quoted, stored[name]))
                continue
            if int(cache):
                try:
                    position = int(
                        execute(connection, SQL("SELECT NEXTVAL({})").format(name)).scalar_one()
                    )
                except Exception as exc:  # exhausted (no CYCLE): it stays where it is
                    if error_number(exc) != SEQUENCE_EXHAUSTED:
                        raise
                else:
                    ex(f"ALTER SEQUENCE {quoted} RESTART WITH {position}")
            execute(
                connection,
                SQL(f"REPLACE INTO {SEQUENCES} (name, position) VALUES ({{}}, {{}})").format(
                    Value(name), Value(position)
                ),
            )
            found.append((quoted, position))
        return found

    def configure_session(self, connection: Connection, lock_timeout: float) -> None:
        seconds = max(1, round(lock_timeout))
        execute(
            connection,
            f"SET SESSION innodb_lock_wait_timeout = {seconds}, lock_wait_timeout = {seconds}",
        )
        if not self._mariadb(connection):  # the reset reads AUTO_INCREMENT counters
            execute(connection, "SET SESSION information_schema_stats_expiry = 0")

    @staticmethod
    def _mariadb(connection: Connection) -> bool:
        return connection.dialect.name == "mariadb" or bool(
            getattr(connection.dialect, "is_mariadb", False)
        )

    def lock_details(self, exc: BaseException, connection: Connection) -> str:
        # The procedure names the table it works on in @cleandb_table (already quoted).
        table = execute(connection, "SELECT @cleandb_table").scalar()
        rows: Sequence[Any]
        try:
            rows = execute(
                connection,
                "SELECT t.trx_mysql_thread_id, p.USER, p.HOST, p.COMMAND, p.TIME, "
                "t.trx_state, t.trx_started, COALESCE(t.trx_query, p.INFO) "
                "FROM information_schema.INNODB_TRX t "
                "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE t.trx_mysql_thread_id <> CONNECTION_ID() AND p.DB = DATABASE() "
                "ORDER BY t.trx_started LIMIT 5",
            ).fetchall()
            what = "sessions with an open transaction in this database"
        except Exception:  # INNODB_TRX needs the PROCESS privilege: the user's own sessions
            rows = [
                (i, u, h, c, t, None, None, q)
                for i, u, h, c, t, q in execute(
                    connection,
                    "SELECT ID, USER, HOST, COMMAND, TIME, INFO FROM information_schema.PROCESSLIST "
                    "WHERE ID <> CONNECTION_ID() AND DB = DATABASE() LIMIT 5",
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
                text += f", query {query_start(str(query))!r}"
            sessions.append(text + f"; end it with KILL {thread})")
        if sessions:
            parts.append(f"{what}: " + "; ".join(sessions))
        if idle_in_transaction:
            parts.append(IDLE_IN_TRANSACTION)
        return "; ".join(parts)

    bookkeeping_ddl: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {CONFIG} (schema_version INT NOT NULL, "
        "database_name VARCHAR(64) NOT NULL, excluded TEXT NOT NULL, "
        "tickets BIGINT NOT NULL DEFAULT 1, drifted BOOLEAN NOT NULL DEFAULT FALSE) "
        "ENGINE=InnoDB " + _BINARY,
        f"CREATE TABLE IF NOT EXISTS {TABLES} (id INT AUTO_INCREMENT PRIMARY KEY, "
        "name VARCHAR(64) NOT NULL UNIQUE, baseline_rows BIGINT NOT NULL DEFAULT 0, "
        "counter BIGINT NULL, reset_sql TEXT NULL, restore_sql TEXT NULL, "
        "counter_sql TEXT NULL, update_sql TEXT NULL, check_sql TEXT NULL, check_names TEXT NULL, "
        "app_triggers TINYINT NOT NULL DEFAULT 0, reset_mode TINYINT NOT NULL DEFAULT 0) "
        "ENGINE=InnoDB " + _BINARY,
        # One mark per (table, kind, connection): a writer only ever meets its own mark
        # (a primary-key duplicate locks that record alone, never a gap), so two
        # transactions writing the same table never wait for each other's marks.
        f"CREATE TABLE IF NOT EXISTS {DIRTY} (tid INT NOT NULL, kind CHAR(1) NOT NULL, "
        "conn BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (tid, kind, conn)) ENGINE=InnoDB "
        + _BINARY,
        f"CREATE TABLE IF NOT EXISTS {TICKETS} (id BIGINT AUTO_INCREMENT PRIMARY KEY) "
        "ENGINE=InnoDB " + _BINARY,
        f"CREATE TABLE IF NOT EXISTS {CASCADES} (parent INT NOT NULL, child INT NOT NULL, "
        "PRIMARY KEY (parent, child)) ENGINE=InnoDB " + _BINARY,
        f"CREATE TABLE IF NOT EXISTS {LAYERS} (depth INT NOT NULL, tid INT NOT NULL, "
        "baseline_rows BIGINT NOT NULL DEFAULT 0, counter BIGINT NULL, reset_sql TEXT NULL, "
        "restore_sql TEXT NULL, counter_sql TEXT NULL, update_sql TEXT NULL, "
        "reset_mode TINYINT NOT NULL DEFAULT 0, "
        "PRIMARY KEY (depth, tid)) ENGINE=InnoDB " + _BINARY,
        f"CREATE TABLE IF NOT EXISTS {DIRTY_NT} (tid INT NOT NULL, kind CHAR(1) NOT NULL, "
        "conn BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (tid, kind, conn)) ENGINE=MyISAM "
        + _BINARY,
    )
    #: Whether the last sync found cascading foreign keys between tracked tables.
    cascades: bool = False

    def foreign_keys(self, connection: Connection) -> list[ForeignKey]:
        found: dict[tuple[str, str], list[Any]] = {}
        for (
            name,
            child,
            column,
            parent,
            referenced,
            on_update,
            on_delete,
        ) in execute(
            connection,
            "SELECT k.CONSTRAINT_NAME, k.TABLE_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
            "k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE "
            "FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
            "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME "
            "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_SCHEMA = DATABASE() "
            "ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        ):
            entry = found.setdefault((str(child), str(name)), [str(parent), [], [], False])
            entry[1].append(str(column))
            entry[2].append(str(referenced))
            entry[3] = str(on_update) in CASCADING_RULES or str(on_delete) in CASCADING_RULES
        return [
            ForeignKey(child, tuple(cols), parent, tuple(refs), cascades)
            for (child, _), (parent, cols, refs, cascades) in found.items()
        ]

    def current_counters(self, connection: Connection) -> dict[str, int]:
        if not self._mariadb(connection):  # MySQL 8 caches these statistics for a day
            execute(connection, "SET SESSION information_schema_stats_expiry = 0")
        return {
            str(n): int(c)
            for n, c in execute(
                connection,
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL",
            )
        }

    def check_statement(self, expression: str) -> str:
        return f"SELECT {expression} INTO @cleandb_bad"

    def store_cascades(
        self, ex: Executor, connection: Connection, closure: dict[int, set[int]]
    ) -> None:
        execute(connection, f"DELETE FROM {CASCADES}")
        pairs = [(parent, child) for parent, children in closure.items() for child in children]
        if pairs:
            # One multi-row INSERT, as the MySQL drivers' executemany sends it anyway.
            rows = SQL(", ").join(
                SQL("({}, {})").format(Value(parent), Value(child)) for parent, child in pairs
            )
            execute(
                connection, SQL(f"INSERT INTO {CASCADES} (parent, child) VALUES {{}}").format(rows)
            )
        self.cascades = bool(pairs)

    def changed_ids(self, connection: Connection) -> set[int]:
        """The dirty tables and the tables their cascading foreign keys reach (InnoDB fires no
        trigger for the rows a cascade changes)."""
        return {
            int(r[0])
            for r in execute(
                connection,
                f"SELECT tid FROM {DIRTY} UNION SELECT c.child FROM {CASCADES} c "
                f"JOIN {DIRTY} d ON d.tid = c.parent",
            )
        }

    def change_sources(self, connection: Connection) -> list[ChangeSource]:
        # GROUP BY compares only the first max_sort_length bytes of a text value (1024 by
        # default): a change further on would go unseen.
        execute(connection, "SET SESSION max_sort_length = 8388608")
        return super().change_sources(connection)

    def group_column(self, column: str, state: TableState, name: str) -> str:
        if name in state.binary:  # byte for byte: 'Paid' -> 'PAID' is a change
            return f"{column}, CAST({column} AS BINARY)"
        return column

    def bookkeeping_statements(self) -> tuple[str, ...]:
        if not self.sequence:
            return self.bookkeeping_ddl
        # NOCACHE: next_not_cached_value is then exactly the next ticket to be handed out.
        return (
            *self.bookkeeping_ddl,
            f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE} NOCACHE",
            f"CREATE TABLE IF NOT EXISTS {SEQUENCES} (name VARCHAR(64) PRIMARY KEY, "
            "position BIGINT NOT NULL) ENGINE=InnoDB " + _BINARY,
        )

    def list_tables(self, connection: Connection) -> list[str]:
        rows = execute(
            connection,
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') "
            "ORDER BY TABLE_NAME",
        ).fetchall()
        self._nontransactional = {
            quote_name(connection.dialect, str(name))
            for name, engine in rows
            if str(engine) not in TRANSACTIONAL_ENGINES and not self.own_table(str(name))
        }
        return [str(r[0]) for r in rows]

    def current_database(self, connection: Connection) -> str:
        name = execute(connection, "SELECT DATABASE()").scalar()
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
            execute(connection, "SET SESSION information_schema_stats_expiry = 0")
        # A few tables (a scoped baseline's push): looked up by name, so that the cost
        # follows them and not the schema (information_schema opens only the tables named).
        only, only_triggers = _named("TABLE_NAME", names), _named("EVENT_OBJECT_TABLE", names)
        counters: dict[str, Any] = {}
        versioned = set()  # (MariaDB) system-versioned tables: never truncated
        for n, c, kind in execute(
            connection,
            SQL(
                "SELECT TABLE_NAME, AUTO_INCREMENT, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE(){}"
            ).format(only),
        ):
            counters[str(n)] = c
            if kind == "SYSTEM VERSIONED":
                versioned.add(str(n))
        columns: dict[str, list[str]] = {}
        keys: dict[str, str] = {}  # the AUTO_INCREMENT column of each table that has one
        binary: dict[str, list[str]] = {}
        for table, column, extra, data_type in execute(
            connection,
            SQL(
                "SELECT TABLE_NAME, COLUMN_NAME, EXTRA, DATA_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE(){} ORDER BY TABLE_NAME, ORDINAL_POSITION"
            ).format(only),
        ):
            if not generated_column(str(extra)):
                columns.setdefault(str(table), []).append(str(column))
                if str(data_type).lower() in TEXT_TYPES:
                    binary.setdefault(str(table), []).append(str(column))
            if "AUTO_INCREMENT" in str(extra).upper():
                keys[str(table)] = str(column)
        triggered: set[str] = set()
        deleting: set[str] = set()  # tables with DELETE triggers of the application's
        for t, event in execute(
            connection,
            SQL(
                "SELECT DISTINCT EVENT_OBJECT_TABLE, EVENT_MANIPULATION FROM "
                "information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() "
                "AND LEFT(TRIGGER_NAME, 8) <> 'cleandb_'{}"
            ).format(only_triggers),
        ):
            triggered.add(str(t))
            if event == "DELETE":
                deleting.add(str(t))
        primary: dict[str, list[str]] = {}
        for table, column in execute(
            connection,
            SQL(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                "WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'{} "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION"
            ).format(only),
        ):
            primary.setdefault(str(table), []).append(str(column))
        # Re-inserting rows with their keys leaves the counter at the highest key + 1 only
        # with the default increment (Galera and multi-source setups change it).
        step = tuple(
            execute(connection, "SELECT @@auto_increment_increment, @@auto_increment_offset").one()
        )
        states = []
        for name in names:
            rows = int(
                execute(connection, SQL("SELECT COUNT(*) FROM {}").format(name)).scalar_one()
            )
            counter = counters.get(name)
            restored = None
            if rows and name in keys and step == (1, 1):
                top = SQL("SELECT MAX({}) FROM {}").format(keys[name], name)
                highest = execute(connection, top).scalar()
                restored = None if highest is None else int(highest) + 1
            key = tuple(primary.get(name, ()))
            if not set(key) <= set(columns.get(name, ())):
                key = ()  # (a generated column in the key: restored by copying every row)
            if name in versioned:
                mode = NEVER_TRUNCATE
            else:
                # (empty at baseline, truncated anyway when counters restart; when they
                # keep counting, TRUNCATE_ALWAYS still keeps DELETE off it)
                mode = TRUNCATE_ALWAYS if name in deleting else DELETE_FIRST
            self._table_modes[name] = mode
            states.append(
                TableState(
                    name=name,
                    rows=rows,
                    counter=None if counter is None else int(counter),
                    columns=tuple(columns.get(name, ())),
                    restored_counter=restored,
                    key=key,
                    binary=tuple(binary.get(name, ())),
                    triggers=name in triggered,
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
        # (a non-transactional table's write survives a rollback: so must its mark)
        marks = DIRTY_NT if quote_table in self._nontransactional else DIRTY
        return (
            f"CREATE TRIGGER {trigger_name(table_id, kind)} {timing} {event} ON {quote_table} "
            "FOR EACH ROW BEGIN DECLARE EXIT HANDLER FOR 1062 BEGIN END; "
            f"INSERT INTO {marks} (tid, kind, conn) VALUES ({table_id}, '{kind}', "
            f"CONNECTION_ID());{ticket} END"
        )

    @staticmethod
    def in_place(state: TableState) -> bool:
        """Whether a seeded table is restored in place, by primary key (see :func:`_restore`):
        where the application has triggers on it (copying every row back would fire them for
        seed rows no test touched, and its counter would go back by TRUNCATE) or it is large
        (the cost then follows what changed). A small table without triggers is deleted and
        copied back whole: as exact, and cheaper when its counter moved (TRUNCATE + copy:
        1.2 times faster than restoring in place + ALTER ... AUTO_INCREMENT, measured)."""
        return bool(state.key) and (state.triggers or state.rows >= IN_PLACE_ROWS)

    def shadow_ddl(self, connection: Connection, shadow: str, cols: str, state: TableState) -> str:
        """With the table's primary key, which restoring in place looks rows up by."""
        q = quote_name(connection.dialect, state.name)
        if not self.in_place(state):
            return f"CREATE TABLE {shadow} AS SELECT {cols} FROM {q}"
        key = ", ".join(quote_name(connection.dialect, c) for c in state.key)
        return f"CREATE TABLE {shadow} (PRIMARY KEY ({key})) AS SELECT {cols} FROM {q}"

    @staticmethod
    def _equal(column: str, binary: bool, null_safe: bool = True) -> str:
        """``cleandb_t.column`` equals ``cleandb_b.column`` - byte for byte for text (``binary``):
        a collation may call 'Paid' and 'PAID', or 'cafe' and 'café', equal."""
        t, b = f"cleandb_t.{column}", f"cleandb_b.{column}"
        op = "<=>" if null_safe else "="
        if binary:
            return f"CAST({t} AS BINARY) {op} CAST({b} AS BINARY)"
        return f"{t} {op} {b}"

    def _same_key(self, connection: Connection, state: TableState) -> str:
        """The join of a table's row (``cleandb_t``) with its baseline row (``cleandb_b``): the
        key, by the index, and byte for byte for text keys (a key changed in letter case only
        is another row, deleted and inserted again)."""
        parts = []
        for c in state.key:
            q = quote_name(connection.dialect, c)
            parts.append(f"cleandb_b.{q} = cleandb_t.{q}")
            if c in state.binary:
                parts.append(self._equal(q, True, null_safe=False))
        return " AND ".join(parts)

    def _in_place(self, connection: Connection, shadow: str, state: TableState) -> tuple[str, str]:
        """Restore in place: ``(delete, insert)``, the rows the baseline lacks and the rows
        missing (see :func:`_restore`)."""
        q = quote_name(connection.dialect, state.name)
        same = self._same_key(connection, state)
        first = quote_name(connection.dialect, state.key[0])
        cols = ", ".join(quote_name(connection.dialect, c) for c in state.columns)
        delete = (
            f"DELETE cleandb_t FROM {q} AS cleandb_t LEFT JOIN {shadow} AS cleandb_b ON {same} "
            f"WHERE cleandb_b.{first} IS NULL"
        )
        insert = (
            f"INSERT INTO {q} ({cols}) SELECT {cols} FROM {shadow} AS cleandb_b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {q} AS cleandb_t WHERE {same})"
        )
        return delete, insert

    def update_statement(
        self, connection: Connection, shadow: str, state: TableState
    ) -> str | None:
        """The rows whose other columns differ. The key is never assigned (rows are matched
        on it exactly): MariaDB 10.11 reports a duplicate key met by a multi-table UPDATE
        that assigns a column of its join past the procedure's handler. A table made of its
        key alone has nothing to update (``DO 0``)."""
        if not self.in_place(state):
            return None
        others = [c for c in state.columns if c not in state.key]
        if not others:
            return "DO 0"
        q = quote_name(connection.dialect, state.name)
        columns = [(quote_name(connection.dialect, c), c in state.binary) for c in others]
        assign = ", ".join(f"cleandb_t.{c} = cleandb_b.{c}" for c, _ in columns)
        differs = " AND ".join(self._equal(c, binary) for c, binary in columns)
        return (
            f"UPDATE {q} AS cleandb_t JOIN {shadow} AS cleandb_b "
            f"ON {self._same_key(connection, state)} SET {assign} WHERE NOT ({differs})"
        )

    def _snapshot(
        self,
        ex: Executor,
        connection: Connection,
        table_id: int,
        state: TableState,
        existing: set[str],
        depth: int = 0,
    ) -> None:
        super()._snapshot(ex, connection, table_id, state, existing, depth)
        self._modes[table_id] = self._table_modes.get(state.name, DELETE_FIRST)
        if state.rows and self.in_place(state):
            delete, insert = self._in_place(
                connection, quote_name(connection.dialect, shadow_name(table_id, depth)), state
            )
            counter = (
                None
                if state.counter is None
                else f"ALTER TABLE {quote_name(connection.dialect, state.name)} AUTO_INCREMENT = "
                f"{int(state.counter)}"
            )
            execute(
                connection,
                SQL(
                    f"UPDATE {TABLES} SET reset_sql = {{}}, restore_sql = {{}}, "
                    "counter_sql = {} WHERE id = {}"
                ).format(Value(delete), Value(insert), Value(counter), Value(table_id)),
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
        never = self._table_modes.get(state.name, DELETE_FIRST) == NEVER_TRUNCATE
        if not state.rows:
            if never:  # system-versioned: DELETE (nothing to copy back), ALTER for the counter
                return f"DELETE FROM {q}", "DO 0", counter_sql
            if state.counter is not None and state.counter <= 1:
                counter_sql = None  # TRUNCATE restarts the counter at 1 already
            return f"TRUNCATE TABLE {q}", None, counter_sql
        if (
            not never
            and state.restored_counter is not None
            and state.restored_counter == state.counter
        ):
            counter_sql = None
        restore = f"INSERT INTO {q} ({cols}) SELECT {cols} FROM {shadow}"
        return f"DELETE FROM {q}", restore, counter_sql

    def bind(self, connection: Connection) -> None:
        self.sequence = self._mariadb(connection)
        self._modes = {}
        self._table_modes = {}

    def after_sync(
        self, ex: Executor, seeded: Sequence[tuple[int, str]], fresh: bool = True
    ) -> None:
        connection = getattr(ex, "connection", None)
        if connection is not None and self._modes:
            # One statement for every table the sync took a baseline of.
            by_mode = SQL(" ").join(
                SQL("WHEN {} THEN {}").format(Value(i), Value(m))
                for i, m in self._modes.items()
                if m != DELETE_FIRST
            )
            ids = SQL(", ").join(Value(i) for i in self._modes)
            execute(
                connection,
                SQL(
                    f"UPDATE {TABLES} SET reset_mode = CASE id {{}} ELSE 0 END WHERE id IN ({{}})"
                ).format(by_mode, ids)
                if any(m != DELETE_FIRST for m in self._modes.values())
                else SQL(f"UPDATE {TABLES} SET reset_mode = 0 WHERE id IN ({{}})").format(ids),
            )
            self._modes = {}
        sequences = self.sequence_positions(ex, fresh) if connection is not None else []
        counters: list[tuple[int, str, int]] = []
        if connection is not None:
            counters = [
                (int(i), str(n), int(c))
                for i, n, c in execute(
                    connection,
                    f"SELECT id, name, counter FROM {TABLES} "
                    "WHERE baseline_rows = 0 AND counter > 1 ORDER BY id",
                )
            ]
        for name in PROCEDURES:
            ex(f"DROP PROCEDURE IF EXISTS {name}")
        # Created under NO_AUTO_VALUE_ON_ZERO (a routine runs under the sql_mode it was created
        # with): a baseline row whose AUTO_INCREMENT key is 0 is copied back with key 0 (not a
        # new key), as mysqldump restores rows for the same reason.
        ex("SET @cleandb_mode = @@SESSION.sql_mode")
        ex(
            "SET SESSION sql_mode = "
            "CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')"
        )
        try:
            ex(
                _procedure(
                    seeded,
                    self.sequence,
                    self.cascades,
                    self.checks,
                    sequences,
                    counters,
                    bool(self._nontransactional),
                )
            )
        finally:
            ex("SET SESSION sql_mode = @cleandb_mode")
        ex(_TRUNCATE)
        if not fresh:
            return
        # The marks are cleared next: every ticket taken so far is accounted for.
        ex(f"DELETE FROM {TICKETS}")
        source = _tickets_source(self.sequence)
        ex(f"UPDATE {CONFIG} SET tickets = (SELECT next_ticket FROM {source})")

    @contextmanager
    def _registry_transaction(self, connection: Connection) -> Iterator[None]:
        execute(connection, "START TRANSACTION")
        try:
            yield
        except BaseException:
            execute(connection, "ROLLBACK")
            raise
        execute(connection, "COMMIT")

    def refresh_routines(self, ex: Executor, connection: Connection) -> None:
        # What the last sync found, as the database keeps it (this object may not have synced).
        self.cascades = execute(connection, f"SELECT 1 FROM {CASCADES} LIMIT 1").first() is not None
        self.checks = (
            execute(
                connection, f"SELECT 1 FROM {TABLES} WHERE check_sql IS NOT NULL LIMIT 1"
            ).first()
            is not None
        )
        super().refresh_routines(ex, connection)

    def written_unmarked(self, connection: Connection) -> list[int]:
        # The reset procedure's probe: a seeded table found empty was truncated.
        seeded = execute(
            connection, f"SELECT id, name FROM {TABLES} WHERE baseline_rows > 0 ORDER BY id"
        ).fetchall()
        if not seeded:
            return []
        probes = SQL(", ").join(
            SQL("IF(EXISTS (SELECT 1 FROM {}), NULL, {})").format(str(n), Value(int(i)))
            for i, n in seeded
        )
        found = execute(connection, SQL("SELECT CONCAT_WS(',', {})").format(probes)).scalar()
        return [int(i) for i in str(found or "").split(",") if i]

    def layer_tables(self, connection: Connection) -> dict[str, tuple[int, int]]:
        # By name only: information_schema lists them without opening any table.
        found = {}
        for (name,) in execute(
            connection,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME LIKE 'cleandb\\_b%\\_%'",
        ):
            match = LAYER_SHADOW.fullmatch(str(name))
            if match:
                found[str(name)] = (int(match[1]), int(match[2]))
        return found

    def own_objects(self, connection: Connection) -> list[tuple[str, str]]:
        found = [
            ("TRIGGER", str(name))
            for (name,) in execute(
                connection,
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()",
            )
        ]
        found += [
            (str(kind), str(name))
            for name, kind in execute(
                connection,
                "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = DATABASE()",
            )
        ]
        kinds = {"VIEW": "VIEW", "SEQUENCE": "SEQUENCE"}
        found += [
            (kinds.get(str(kind), "TABLE"), str(name))
            for name, kind in execute(
                connection,
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()",
            )
        ]
        return [(kind, name) for kind, name in found if self.own_table(name)]

    def resetter(self, connection: Connection, restart_ids: bool = True) -> Callable[[], int]:
        call = driver_call(connection, f"CALL cleandb_reset({'TRUE' if restart_ids else 'FALSE'})")

        def reset() -> int:
            return int(call() or 0)

        return reset

    def wrap_error(self, exc: Exception, database: str) -> Exception | None:
        if error_number(exc) == BINLOG_ERROR:
            return CleanDBError(
                f"alembic-cleandb could not create triggers in database {database!r}: the server "
                "has binary logging enabled and this user lacks SUPER (MySQL error 1419). Fix: "
                "`SET GLOBAL log_bin_trust_function_creators = 1` (or start the test server with "
                "--log-bin-trust-function-creators=1, or with --skip-log-bin), then run the "
                "migration again."
            )
        return None

    # -- whole test databases -----------------------------------------------------
    exists_sql = SQL("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}")
    create_sql = SQL("CREATE DATABASE IF NOT EXISTS {}")
    version_tables_sql: ClassVar[str] = (
        "SELECT NULL, TABLE_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'version_num' ORDER BY 2"
    )

    def copy(self, base: URL, copy: URL, allowed: str | None = None) -> None:
        """``copy`` as an image of ``base``, which the plugin has just reset: the copy's
        baseline, marks and tickets are the base's, so no re-install (and no re-snapshot) is
        needed, only :func:`~alembic_cleandb.adopt`. Everything is read first, through one
        connection to the base; the copy's tables are created by :data:`COPY_CONNECTIONS`
        connections at once, its triggers by one."""
        name = self.database(copy)
        with autocommit_connection(base) as src:
            charset, collation = execute(
                src,
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()",
            ).one()
            plan = _CopyPlan.read(src)
            try:
                execute(
                    src,
                    SQL("CREATE DATABASE {} CHARACTER SET {} COLLATE {}").format(
                        name, SQL(_word(charset)), SQL(_word(collation))
                    ),
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
            try:
                execute(c, SQL("DROP DATABASE IF EXISTS {}").format(self.database(url)))
            except sa.exc.DBAPIError as exc:
                if error_number(exc) == 1010 and "Directory not empty" in message(exc):
                    raise ConfigurationError(
                        f"alembic-cleandb: cannot drop {safe_url(url)!r}: {message(exc)}. MariaDB "
                        "sometimes leaves a stray '<table>.TRG-' file (a trigger file's backup) in "
                        "the database's directory when CREATE TRIGGERs run at once; its tables are "
                        "gone. Delete the files left in that directory of the server's datadir "
                        "(SELECT @@datadir), then DROP DATABASE again."
                    ) from None
                raise


#: Up to this many tables, :meth:`MySQLBackend.table_states` reads information_schema by name.
LOOKUP_TABLES = 20


def _named(column: str, names: Sequence[str]) -> SQL | Composable:
    """``AND column IN (names)`` for a few tables (a scoped baseline's push), so that
    information_schema opens only those; nothing (the whole schema, in one pass) for more."""
    if len(names) > LOOKUP_TABLES:
        return SQL("")
    return SQL(f" AND {column} IN ({{}})").format(SQL(", ").join(Value(n) for n in names))


def _word(value: object) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(value)):
        raise ConfigurationError(f"alembic-cleandb: unexpected character set name {value!r}")
    return str(value)


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
        plan = cls(str(execute(src, "SELECT DATABASE()").scalar()))
        columns: dict[str, list[str]] = {}
        for table, column, extra in execute(
            src,
            "SELECT TABLE_NAME, COLUMN_NAME, EXTRA FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
        ):
            if not generated_column(str(extra)):
                columns.setdefault(str(table), []).append(str(column))
        for table, kind in execute(
            src,
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
        ):
            table = str(table)
            if kind == "VIEW":
                ddl = execute(src, SQL("SHOW CREATE VIEW {}").format(table)).one()[1]
                plan.views.append((table, _DEFINER.sub("", str(ddl))))
                continue
            cols = SQL(", ").join(columns.get(table, []))
            insert = SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                table, cols, cols, Identifier(plan.database, table)
            )
            plan.tables.append(
                [
                    str(execute(src, SQL("SHOW CREATE TABLE {}").format(table)).one()[1]),
                    inline(insert, src.dialect),
                ]
            )
        by_table: dict[str, list[str]] = {}
        for trigger, table in execute(
            src,
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() "
            "ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER",
        ):
            row = execute(src, SQL("SHOW CREATE TRIGGER {}").format(str(trigger))).one()
            by_table.setdefault(str(table), []).extend(
                [_sql_mode(row[1]), _DEFINER.sub("", str(row[2]))]
            )
        plan.triggers = list(by_table.values())
        for routine, kind in execute(
            src,
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME",
        ):
            if kind not in ("PROCEDURE", "FUNCTION"):
                continue
            row = execute(src, SQL("SHOW CREATE {} {}").format(SQL(kind), str(routine))).one()
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
            # (and rows whose AUTO_INCREMENT key is 0 keep it, as mysqldump restores them)
            run(
                "SET SESSION foreign_key_checks = 0, sql_mode = "
                "CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')"
            )
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
