"""The MySQL family's faster reset and cheaper triggers (issue 3): what is emitted for MariaDB
and for MySQL 8 (no server for the latter here), and on MariaDB what the new paths do."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

import alembic_cleandb
from alembic_cleandb.backends import _clientside, mysql
from conftest import alembic_config
from dbutil import connect, execute, insert, rows
from golden import assert_matches_golden, render

SEED = [
    (1, "new", "New"),
    (2, "paid", "Paid"),
    (3, "shipped", "Shipped"),
    (4, "cancelled", "Cancelled"),
]
MARIADB = pytest.mark.parametrize("backend", ["mariadb"], indirect=True)


def backend(sequence: bool) -> mysql.MySQLBackend:
    b = mysql.MySQLBackend()
    b.sequence = sequence
    return b


def first_select(body: str) -> str:
    """The procedure's first query: everything up to the fast exit."""
    start = body.index("SELECT ", body.index("SET @cleandb_table = NULL"))
    return body[start : body.index("LEAVE proc")]


FLAVOURS = pytest.mark.parametrize(
    ("flavour", "sequence"), [("mariadb", True), ("mysql8", False)], ids=["mariadb", "mysql8"]
)


@FLAVOURS
def test_every_statement_matches_its_golden_file(flavour: str, sequence: bool) -> None:
    """Everything the MySQL family's tracking emits that is not read from a server, whole:
    bookkeeping tables, the three triggers of a table whose name needs quoting, the reset
    procedure (with seeded tables and without) and the statements around it at sync
    (uninstall reads what to drop from the catalog). MySQL 8 cannot run here:
    tests/golden/mysql8.sql is its coverage."""
    b = backend(sequence)
    b._nontransactional = {"`my``isam`"}
    emitted: list[tuple[str, str]] = [("bookkeeping", sql) for sql in b.bookkeeping_statements()]
    for kind, event in _clientside.KINDS:
        emitted.append((f"trigger {kind}", b.trigger_ddl("`we``ird`", 9, kind, event)))
    for seeded, fresh in (([(3, "`lookup`"), (9, "`we``ird`")], True), ([], False)):
        sent: list[str] = []
        b.after_sync(sent.append, seeded, fresh)  # type: ignore[arg-type]
        label = f"sync, seeded {[name for _, name in seeded]}, fresh={fresh}"
        emitted.extend((label, sql) for sql in sent)
    # a table empty at baseline with its counter past 1 (a TRUNCATE fires no trigger: probed),
    # and non-transactional tables (their marks move from cleandb_dirty_nt first)
    body = mysql._procedure(
        [(3, "`lookup`")], sequence, counters=[(5, "in`voice", 1000)], nontransactional=True
    )
    emitted.append(("reset procedure with counter probes and non-transactional marks", body))
    emitted.append(("trigger i, MyISAM table", b.trigger_ddl("`my``isam`", 7, "i", "INSERT")))
    if sequence:  # MariaDB: the application's SEQUENCE objects, probed and restarted
        body = mysql._procedure([], sequence, sequences=[("`invoice no`", 1000), ("`s`", -5)])
        emitted.append(("reset procedure with sequences `invoice no` and `s`", body))
    assert_matches_golden(f"{flavour}.sql", render(emitted))


@pytest.mark.parametrize("sequence", [True, False])
def test_one_first_select_decides_and_nothing_is_written_before_the_fast_exit(
    sequence: bool,
) -> None:
    body = mysql._procedure([(3, "`lookup`"), (9, "`we``ird`")], sequence=sequence)
    head = body[body.index("SET @cleandb_table = NULL") : body.index("LEAVE proc")]
    head = "\n".join(line.split("--")[0] for line in head.splitlines())  # code, no comments
    # the read, the no-configuration case, the result
    assert head.count("SELECT ") - head.count("(SELECT ") == 3
    for write in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "ALTER", "foreign_key_checks = 0"):
        assert write not in head
    assert "EXISTS (SELECT 1 FROM cleandb_dirty)" in head
    assert "c.database_name = DATABASE()" in head
    assert "IF(EXISTS (SELECT 1 FROM `we``ird`), NULL, 9)" in head
    assert "IF(EXISTS (SELECT 1 FROM `lookup`), NULL, 3)" in head
    assert "IF v_next = v_seen AND NOT v_marks AND NOT v_done" in head


@pytest.mark.parametrize("sequence", [True, False])
def test_one_commit_besides_the_ddl(sequence: bool) -> None:
    """Seeded copies, mark deletions and the ticket position wait for one transaction; the
    DDL finds nothing pending (no commit of its own) unless it must wait for a lock: then
    the pending steps go first, and its implicit commit commits them. Right after a table's
    own statements go the marks this connection holds on it (none, unless an application's
    trigger wrote it during this reset): nothing to commit in the usual case; those written
    later stay for the next pass, as the final deletion spares this connection's marks."""
    body = mysql._procedure([(3, "`lookup`")], sequence=sequence)
    # the pending steps' transaction, and a seeded table restored in place whose counter
    # moved: its rows in a transaction that the counter's ALTER then commits
    assert body.count("START TRANSACTION;") == 2
    start = body.index("START TRANSACTION;\nWHILE v_later IS NOT NULL DO")
    in_place = body.index("START TRANSACTION;")
    assert in_place < body.index("SET v_seeded = 0, v_ddl = v_counter, v_counter = NULL;") < start
    pending = body[start : body.index("LEAVE tables;", start)]
    final = "DELETE FROM cleandb_dirty WHERE tid IN (', v_finished, ') AND conn <> CONNECTION_ID()"
    assert final in pending
    assert "PREPARE cleandb_stmt FROM @cleandb_sql;" in pending  # the DELETE + copy
    # a seeded table's marks right after its DELETE + copy, in the same transaction
    assert pending.index("EXECUTE cleandb_stmt;") < pending.index(
        "DELETE FROM cleandb_dirty WHERE tid = v_fid;"
    )
    ddl = body.index("SET @cleandb_sql = v_ddl;")
    own = "DELETE FROM cleandb_dirty WHERE tid = v_id AND conn = CONNECTION_ID();"
    assert ddl < body.index(own)
    assert body.index("OPEN cur;") < start < body.index("CLOSE cur;")
    tail = body[body.index("CLOSE cur;") :]
    assert tail.index("UPDATE cleandb_config SET tickets = v_next") < tail.index("COMMIT;")
    assert "ROLLBACK;" in body[: body.index("RESIGNAL")]  # a failure keeps every pending mark
    attempt = body[body.index("IF v_later IS NOT NULL OR v_finished IS NOT NULL THEN") :]
    attempt = attempt[: attempt.index("IF v_last OR v_busy THEN")]
    if sequence:  # MariaDB tries the DDL without waiting; busy: the pending steps first
        assert "DECLARE EXIT HANDLER FOR 1205 SET v_busy = 1;" in attempt
        assert "SET @cleandb_sql = v_nowait" in attempt
        assert "SET v_nowait = CONCAT(v_ddl, ' NOWAIT');" in body  # TRUNCATE TABLE t NOWAIT
        alter = "'` NOWAIT AUTO_INCREMENT = ', v_base);"  # ALTER TABLE t NOWAIT AUTO_INCREMENT
        assert alter in body
        # tried again while InnoDB's background statistics update holds the table a moment
        assert f"UNTIL NOT v_busy OR v_tries >= {mysql.NOWAIT_ATTEMPTS} END REPEAT;" in attempt
        assert attempt.index("PREPARE cleandb_stmt") < attempt.index("REPEAT")
    else:  # MySQL 8 has no NOWAIT for DDL: the pending steps go first every time
        assert "NOWAIT" not in body
        assert "SET v_busy = 1;" in attempt


@pytest.mark.parametrize("sequence", [True, False])
def test_marks_a_trigger_left_during_the_reset_get_another_pass(sequence: bool) -> None:
    """After a pass, a mark of the reset's own connection can only come from an application's
    trigger (each table's own marks went right after its statements): the reset runs the
    tables loop again, at most MAX_PASSES times, then says so; the ticket position is stored
    once, by the first pass's commit."""
    body = mysql._procedure([(3, "`lookup`")], sequence=sequence)
    passes = body[body.index("passes: LOOP") : body.index("END LOOP;\nELSE\nUPDATE cleandb_config")]
    # (the pass's own commit: the first after the tables loop; a table truncated because of
    # its own DELETE triggers commits its copied rows inside the loop)
    close = passes.index("CLOSE cur;")
    commit = passes.index("COMMIT;", close)
    assert passes.index("OPEN cur;") < close
    check = "SELECT EXISTS (SELECT 1 FROM cleandb_dirty WHERE conn = CONNECTION_ID()) INTO v_again;"
    assert commit < passes.index(check) < passes.index("LEAVE passes;")
    # (and whether counters may be past their baselines: restart_ids, tests/test_restart_ids.py)
    assert "IF v_pass = 0 THEN\nUPDATE cleandb_config SET tickets = v_next, drifted" in passes
    assert f"IF v_pass >= {_clientside.MAX_PASSES} THEN" in passes
    signal = passes[passes.index("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =") :]
    message = signal[signal.index("\n'") + 2 : signal.index("';")]
    assert len(message) <= 128  # MESSAGE_TEXT's limit
    assert "triggers keep writing tracked tables" in message


def test_seeded_statements_alter_only_when_the_copy_misses_the_counter() -> None:
    b = mysql.MySQLBackend()
    lands = _clientside.TableState("t", rows=3, counter=4, columns=("id",), restored_counter=4)
    assert b.statements("`t`", "`cleandb_b1`", "`id`", lands) == (
        "DELETE FROM `t`",
        "INSERT INTO `t` (`id`) SELECT `id` FROM `cleandb_b1`",
        None,
    )
    gap = _clientside.TableState("t", rows=3, counter=9, columns=("id",), restored_counter=4)
    alter = b.statements("`t`", "`cleandb_b1`", "`id`", gap)[2]
    assert alter == "ALTER TABLE `t` AUTO_INCREMENT = 9"


# -- on MariaDB ---------------------------------------------------------------------------


def tickets(url: str) -> tuple[int, int]:
    with connect(url) as c:
        return tuple(  # type: ignore[return-value]
            c.execute(
                sa.text(
                    "SELECT s.next_not_cached_value, c.tickets "
                    "FROM cleandb_ticket_seq s, cleandb_config c"
                )
            ).one()
        )


@MARIADB
def test_mariadb_install_creates_the_sequence_and_uninstall_drops_it(migrated: str) -> None:
    position, stored = tickets(migrated)
    assert position == stored
    insert(migrated, "user", name="a")
    assert tickets(migrated) == (position + 1, stored)
    assert alembic_cleandb.clean(migrated) == 1
    assert tickets(migrated) == (position + 1, position + 1)
    command.downgrade(alembic_config(migrated), "cleandb@base")
    with connect(migrated) as c:
        kinds = c.execute(
            sa.text(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME LIKE 'cleandb%'"
            )
        ).fetchall()
    assert kinds == []


@MARIADB
def test_seeded_table_whose_copy_misses_the_counter_gets_it_back(migrated: str) -> None:
    # A baseline whose counter is past the highest key: the copy alone would land on 5.
    execute(migrated, "INSERT INTO lookup_status (code, label) VALUES ('x', 'X')")
    execute(migrated, "DELETE FROM lookup_status WHERE code = 'x'")
    alembic_cleandb.set_baseline(migrated)
    insert(migrated, "lookup_status", code="later", label="Later")
    assert alembic_cleandb.clean(migrated) == 1
    assert rows(migrated, "lookup_status") == SEED
    assert insert(migrated, "lookup_status", code="later", label="Later") == 6


@MARIADB
def test_seeded_table_reset_by_truncate_and_copy_restarts_at_the_baseline(migrated: str) -> None:
    for _ in range(2):
        insert(migrated, "lookup_status", code="a", label="A")
        insert(migrated, "user", name="b")
        execute(migrated, "UPDATE lookup_status SET label = 'changed' WHERE id = 1")
        assert alembic_cleandb.clean(migrated) == 2
        assert rows(migrated, "lookup_status") == SEED
        assert rows(migrated, "user") == []
    assert insert(migrated, "lookup_status", code="later", label="Later") == 5
    assert insert(migrated, "user", name="c") == 1


@MARIADB
def test_a_failure_in_a_seeded_copy_keeps_the_marks_of_what_it_did_not_reset(
    migrated: str,
) -> None:
    """A seeded table that only lost a row is reset by DELETE + copy in the pending
    transaction; when that fails (here: a row lock held by an open transaction), its marks
    are kept, while a table truncated before it may keep its marks too (reset again)."""
    insert(migrated, "user", name="a")
    execute(migrated, "DELETE FROM lookup_status WHERE id = 4")
    engine = sa.create_engine(migrated, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as holder:
            holder.execute(sa.text("SELECT * FROM lookup_status WHERE id = 1 FOR UPDATE"))
            with pytest.raises(alembic_cleandb.ResetError, match="Lock wait timeout"):
                alembic_cleandb.clean(migrated, lock_timeout=1)
            holder.rollback()
    finally:
        engine.dispose()
    with connect(migrated) as c:
        marked = {
            str(n)
            for (n,) in c.execute(
                sa.text(
                    "SELECT DISTINCT t.name FROM cleandb_dirty d "
                    "JOIN cleandb_tables t ON t.id = d.tid"
                )
            )
        }
    assert "lookup_status" in marked
    assert "user" in marked or rows(migrated, "user") == []  # not reached yet, or reset
    assert alembic_cleandb.clean(migrated) >= 1
    assert rows(migrated, "lookup_status") == SEED
    assert insert(migrated, "user", name="b") == 1
