"""PostgreSQL: every statement alembic-cleandb sends to PostgreSQL lives here.

Everything is plpgsql that discovers tables at run time, so the whole install also works in
offline (``--sql``) mode. Internal objects live in the schema ``cleandb``; the three public
routines (``cleandb_truncate()``, ``cleandb_sync()``, ``cleandb_set_baseline()``) are created in
the current schema so that ``SELECT cleandb_truncate()`` works as is.

Tracking: one statement-level trigger per table (``BEFORE INSERT OR UPDATE OR DELETE OR
TRUNCATE``: before, so that a statement that fails after taking sequence values has taken its
ticket too; ``ENABLE ALWAYS``, so that writes in replica mode are tracked) inserts the table's
oid into ``cleandb.dirty`` unless this session already marked that table since the last reset
(a session setting checked against an epoch, no read of the marks). The marking runs as the
installing role (``SECURITY DEFINER``, pinned ``search_path``), so any role that may write a
table is tracked. The marks are append-only rows without a unique index, so two writers never
wait for each other and a rollback only removes its own mark. Each new mark also takes a
ticket (``nextval('cleandb.tickets')``, which no rollback returns): when the reset finds fewer
marks than tickets, a writer rolled back - its rows are gone, but the sequence values it took
are not - so it compares every tracked sequence with its baseline.

Reset: one dynamic statement whose data-modifying CTEs delete what a test added, update rows
it changed and insert rows it removed, for every dirty table at once (``ONLY`` each table's own
rows, row literals cast to its schema-qualified row type). The reset's writes run in replica
mode (no application trigger, no foreign-key check or action) where the role may; the foreign
keys that join a tracked table and an untracked one are checked afterwards, row by row.
Sequences go back to their baseline positions with ``setval``. The fragments name their table
by oid, filled in at reset time, so a renamed table keeps working. All of it is one
transaction: a reset that fails or is interrupted changes nothing and keeps every mark.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import URL, Connection

from .._connect import safe_url
from .._guard import allowed_name
from .._sql import (
    SQL,
    Identifier,
    Literal,
    Value,
    display_name,
    driver_call,
    execute,
    inline,
    sqlstate,
)
from ..errors import ConfigurationError
from .base import (
    IDLE_IN_TRANSACTION,
    LOCK_TIMEOUT,
    MISSING_TABLE,
    SCHEMA_VERSION,
    UNIQUE_CLASH,
    Backend,
    ChangeSource,
    Executor,
    TrackingOptions,
    check_sync_target,
    create_failed,
    layers_open_error,
    query_start,
)

SCHEMA = "cleandb"
PREFIX = "cleandb_"
TRIGGER = "cleandb_mark"
EVENT_TRIGGER = "cleandb_ddl"
#: Exists while a migration run has steps done and its closing sync still to come.
PENDING = "cleandb.sync_pending"


_DIALECT = PGDialect()  # type: ignore[no-untyped-call]


def literal(value: str | tuple[str, ...] | None) -> str:
    """A PostgreSQL literal (standard_conforming_strings): a string, ``text[]`` or NULL."""
    return inline(Literal(value), _DIALECT)


def text_array(values: tuple[str, ...]) -> str:
    return literal(values)


def _guard(action: str, allowed: str | None) -> str:
    return f"""DO $cleandb$
BEGIN
  IF position('test' in lower(current_database())) = 0
     AND current_database() IS DISTINCT FROM {literal(allowed)} THEN
    RAISE EXCEPTION USING
      MESSAGE = format('alembic-cleandb refuses to {action} database %s: its name does not '
                       'contain ''test''. Nothing was changed.', quote_literal(current_database())),
      HINT = 'Point the URL at a test database, or allow this one explicitly with '
             'CLEANDB_ALLOW_DATABASE=<exact name> (when the SQL is generated).';
  END IF;
END
$cleandb$"""


_TABLES = f"""CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS cleandb.config (
  schema_version integer NOT NULL,
  database name NOT NULL,
  routine_schema name NOT NULL,
  schemas text[] NOT NULL,
  excluded text[] NOT NULL,
  fk_open boolean NOT NULL DEFAULT false,
  crossing oid[] NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS cleandb.tables (
  relid regclass PRIMARY KEY,
  unit regclass NOT NULL,
  baseline text[],
  ctes text
);
CREATE TABLE IF NOT EXISTS cleandb.sequences (
  unit regclass NOT NULL,
  seq regclass NOT NULL,
  last_value bigint NOT NULL,
  is_called boolean NOT NULL,
  PRIMARY KEY (unit, seq)
);
CREATE TABLE IF NOT EXISTS cleandb.layers (depth integer PRIMARY KEY);
CREATE TABLE IF NOT EXISTS cleandb.layer_tables (
  depth integer NOT NULL,
  unit regclass NOT NULL,
  baseline text[],
  ctes text,
  PRIMARY KEY (depth, unit)
);
CREATE TABLE IF NOT EXISTS cleandb.layer_sequences (
  depth integer NOT NULL,
  unit regclass NOT NULL,
  seq regclass NOT NULL,
  last_value bigint NOT NULL,
  is_called boolean NOT NULL,
  PRIMARY KEY (depth, unit, seq)
);
CREATE TABLE IF NOT EXISTS cleandb.dirty (relid oid NOT NULL);
CREATE INDEX IF NOT EXISTS dirty_relid ON cleandb.dirty (relid);
CREATE SEQUENCE IF NOT EXISTS cleandb.tickets;
CREATE SEQUENCE IF NOT EXISTS cleandb.drift;
CREATE SEQUENCE IF NOT EXISTS cleandb.epoch;
SELECT setval('cleandb.epoch', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
GRANT USAGE ON SCHEMA cleandb TO PUBLIC;
GRANT SELECT ON SEQUENCE cleandb.epoch, cleandb.tickets, cleandb.drift TO PUBLIC;
GRANT SELECT ON cleandb.dirty, cleandb.config, cleandb.layers TO PUBLIC"""
# (Any role that may write a tracked table must be able to mark it: the mark trigger runs as
# the writer, reads the epoch and calls cleandb.mark_table(), which runs as the installing role
# (SECURITY DEFINER). The other grants let a role that is not the installer reach the reset's
# own clear refusal instead of a bare "permission denied". Nothing else is readable.)


def _config(options: TrackingOptions) -> str:
    schemas = text_array(options.schemas) if options.schemas else "ARRAY[current_schema()]"
    return f"""DELETE FROM cleandb.config;
INSERT INTO cleandb.config (schema_version, database, routine_schema, schemas, excluded)
VALUES ({SCHEMA_VERSION}, current_database(), current_schema(), {schemas},
        {text_array(options.excluded())})"""


# The trigger never reads the marks (a read would make writers of one table conflict under
# SERIALIZABLE, and costs a query per statement). Instead each session remembers, in a
# session-level setting cleandb.m<oid>, the epoch in which it committed a mark for that table;
# the epoch is the last value of the sequence cleandb.epoch, which every reset and every sync
# advances (they are what delete marks) and whose start is taken from the clock at install,
# so a remembered epoch is only ever current while this session's mark is still there. A
# pooled connection that carries the setting into the next test therefore marks again, and a
# rollback (of the transaction or of a savepoint) reverts the setting with the mark it made.
#
# Measured (PostgreSQL 15, 500 single-row INSERTs in one transaction, 23 us each untracked):
# calling this function from a statement trigger costs about 1 us, these checks 1 us more; a
# WHEN condition on the trigger would cost more than both (the executor compiles it again for
# every statement: 4 us for WHEN (false), 13-20 us for one that reads settings).
_EPOCH = "coalesce(pg_catalog.pg_sequence_last_value('cleandb.epoch')::text, '')"
# plpgsql compiles a trigger function once per session *and table* (and plans each of its
# expressions again then), so the trigger itself holds only the already-marked check; the
# marking lives in cleandb.mark_table(), compiled once per session. Measured (PostgreSQL 15):
# the first statement of a session on a table cost 0.11-0.14 ms more than the next ones with
# everything in the trigger, 0.05-0.08 ms with this split - paid by the reset's connection too
# (the reset's own statements fire the triggers, which stand down) - and the per-statement
# cost stays the same (calling mark_table() for every statement instead would add 30%).
#
# mark_table() runs as the role that installed tracking (SECURITY DEFINER), so an application
# role with only DML grants on its tables can mark them; its search_path is pinned and every
# name in it qualified. The trigger itself runs as the writer and needs only what PUBLIC is
# granted (USAGE on the schema, SELECT on the epoch, EXECUTE on the two functions); it stays
# SECURITY INVOKER, as a SET clause on it would cost every statement a configuration save and
# restore. The mark trigger fires in every session_replication_role (ENABLE ALWAYS), so the
# reset's own statements (in replica mode) stand down through cleandb.resetting.
_MARK_TABLE = f"""CREATE OR REPLACE FUNCTION cleandb.mark_table(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $cleandb$
DECLARE
  epoch text := {_EPOCH};
BEGIN
  IF pg_catalog.current_setting('cleandb.resetting', true) IS NOT DISTINCT FROM 'on'
     OR pg_catalog.current_setting('cleandb.m' || rel, true) IS NOT DISTINCT FROM epoch THEN
    RETURN;
  END IF;
  INSERT INTO cleandb.dirty (relid) VALUES (rel);
  PERFORM pg_catalog.nextval('cleandb.tickets'::pg_catalog.regclass),
    pg_catalog.set_config('cleandb.m' || rel, epoch, false);
END
$cleandb$"""
_MARK = f"""CREATE OR REPLACE FUNCTION cleandb.mark() RETURNS trigger LANGUAGE plpgsql AS $cleandb$
BEGIN
  IF pg_catalog.current_setting('cleandb.m' || TG_RELID, true) IS DISTINCT FROM {_EPOCH} THEN
    IF pg_catalog.current_setting('cleandb.resetting', true) IS DISTINCT FROM 'on' THEN
      PERFORM cleandb.mark_table(TG_RELID);
    END IF;
  END IF;
  RETURN NULL;
END
$cleandb$"""
_MARK_GRANT = "GRANT EXECUTE ON FUNCTION cleandb.mark_table(oid), cleandb.mark() TO PUBLIC"

_CANDIDATES = """CREATE OR REPLACE FUNCTION cleandb.candidates() RETURNS SETOF regclass
LANGUAGE sql STABLE AS $cleandb$
  SELECT c.oid::regclass
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, cleandb.config g
  WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
    AND n.nspname = ANY (g.schemas) AND n.nspname <> 'cleandb'
    AND NOT c.relname = ANY (g.excluded)
$cleandb$"""

# The foreign keys that join a tracked table and an untracked one (a table excluded from
# tracking, or in a schema that is not tracked): the reset's writes run with foreign-key checks
# and actions off (replica mode), so after its statement it checks exactly these constraints
# for the dirty units (see cleandb.reset()). Taken again by every sync and by the DDL event
# trigger. (Constraints of partitions cloned from their parent's are checked through the
# parent's.)
_CROSSING = """SELECT c.oid FROM pg_constraint c WHERE c.contype = 'f' AND c.conparentid = 0
      AND EXISTS (SELECT FROM cleandb.tables t WHERE t.relid = c.conrelid)
          <> EXISTS (SELECT FROM cleandb.tables t WHERE t.relid = c.confrelid)"""
_CHECK_FKS = f"""CREATE OR REPLACE FUNCTION cleandb.check_fks(rel regclass) RETURNS void
LANGUAGE plpgsql AS $cleandb$
BEGIN
  IF rel IS NULL THEN  -- every constraint (a sync)
    UPDATE cleandb.config SET crossing = coalesce((SELECT array_agg(x.oid ORDER BY x.oid) FROM ({_CROSSING}) x), '{{}}');
  ELSE  -- one table just created or altered: the constraints known, and those naming it
    UPDATE cleandb.config g SET crossing = coalesce((SELECT array_agg(x.oid ORDER BY x.oid) FROM (
      {_CROSSING} AND (c.oid = ANY (g.crossing) OR c.conrelid = rel OR c.confrelid = rel)) x), '{{}}');
  END IF;
  UPDATE cleandb.config SET fk_open = cardinality(crossing) > 0;
END
$cleandb$"""

# Baseline of one unit (a table, or the root of a partitioned table): its rows as row
# literals, the positions of its sequences, and the CTE fragment that restores it. The
# fragment is a format() template: %1$s stands for the table's schema-qualified name (the
# reset fills it in from the oid), every other % is doubled. A whole row is always spelled
# alias.* (a bare alias means a column of that name if the table has one), row literals are
# cast to the qualified row type (an unqualified `line` or `point` is a built-in type), and
# ONLY keeps an inheritance parent's rows apart from its children's (a partitioned table's
# rows are its partitions', read through the root).
_SNAPSHOT = """CREATE OR REPLACE FUNCTION cleandb.snapshot(u regclass) RETURNS void
LANGUAGE plpgsql SET row_security = off AS $cleandb$
DECLARE
  rows text[];
  alias text := 'c' || u::oid;
  tbl text := '%1$s';
  only_ text := CASE WHEN (SELECT relkind FROM pg_class WHERE oid = u) = 'p' THEN '' ELSE 'ONLY ' END;
  cols text; bcols text; setcols text; bsetcols text; keymatch text; frag text;
BEGIN
  EXECUTE format('SELECT array_agg(x.*::text) FROM %s%s AS x', only_, u) INTO rows;

  DELETE FROM cleandb.sequences WHERE unit = u;
  INSERT INTO cleandb.sequences (unit, seq, last_value, is_called)
  SELECT u, s.seq, p.last_value, p.is_called
  FROM (SELECT d.objid::regclass AS seq FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = u AND d.deptype IN ('a', 'i')
        UNION
        SELECT d.refobjid::regclass FROM pg_attrdef ad
        JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                        AND d.refclassid = 'pg_class'::regclass
        WHERE ad.adrelid = u) s
  JOIN pg_sequence q ON q.seqrelid = s.seq, cleandb.position(s.seq) p;

  -- Every column but generated ones is restored, key columns too: a key equal to the
  -- baseline's but not identical (citext in another case, numeric 1.0 and 1.00) is put back
  -- byte for byte.
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
         string_agg(format('(b.x).%I', a.attname), ', ' ORDER BY a.attnum),
         string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attidentity <> 'a'),
         string_agg(format('(b.x).%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attidentity <> 'a'),
         string_agg(format('(b.x).%1$I = cur.%1$I', a.attname), ' AND ' ORDER BY a.attnum)
           FILTER (WHERE a.attnum = ANY (i.indkey))
  INTO cols, bcols, setcols, bsetcols, keymatch
  FROM pg_attribute a
  LEFT JOIN pg_index i ON i.indrelid = u AND i.indisprimary
  WHERE a.attrelid = u AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  cols := replace(cols, '%', '%%'); bcols := replace(bcols, '%', '%%');
  setcols := replace(setcols, '%', '%%'); bsetcols := replace(bsetcols, '%', '%%');
  keymatch := replace(keymatch, '%', '%%');

  -- Within the unit the order is delete, then update, then insert - each step reads the
  -- previous one's output, which makes it run first - so a unique value a test moved to
  -- another row is free again before a baseline row takes it back.
  IF rows IS NULL THEN
    frag := format('%I AS (DELETE FROM %s%s)', alias || 'd', only_, tbl);
  ELSE
    frag := format('%I AS (SELECT l, l::%s AS x FROM unnest((SELECT baseline FROM cleandb.tables '
                   'WHERE relid = %s::oid)) AS l)', alias || 'b', tbl, u::oid);
    IF keymatch IS NULL THEN
      frag := frag || format(', %I AS (DELETE FROM %s%s RETURNING 1)', alias || 'd', only_, tbl)
                   || format(', %I AS (INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %I b '
                             'WHERE (SELECT count(*) FROM %I) >= 0)',
                             alias || 'i', tbl, cols, bcols, alias || 'b', alias || 'd');
    ELSE
      frag := frag
        || format(', %I AS (DELETE FROM %s%s AS cur WHERE NOT EXISTS (SELECT FROM %I b WHERE %s) '
                  'RETURNING 1)', alias || 'd', only_, tbl, alias || 'b', keymatch)
        || CASE WHEN setcols IS NULL THEN
             format(', %I AS (SELECT count(*) FROM %I)', alias || 'u', alias || 'd') ELSE
             format(', %I AS (UPDATE %s%s AS cur SET (%s) = ROW(%s) FROM %I b WHERE %s '
                    'AND cur.*::text <> b.l AND (SELECT count(*) FROM %I) >= 0 RETURNING 1)',
                    alias || 'u', only_, tbl, setcols, bsetcols, alias || 'b', keymatch, alias || 'd') END
        || format(', %I AS (INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %I b '
                  'WHERE NOT EXISTS (SELECT FROM %s%s AS cur WHERE %s) '
                  'AND (SELECT count(*) FROM %I) >= 0)',
                  alias || 'i', tbl, cols, bcols, alias || 'b', only_, tbl, keymatch, alias || 'u');
    END IF;
  END IF;

  UPDATE cleandb.tables SET baseline = rows, ctes = frag WHERE relid = u;
END
$cleandb$"""

# The position of a sequence, as its own row says (pg_sequence_last_value() cannot tell where
# a sequence restarted with ALTER SEQUENCE ... RESTART WITH n will start).
_POSITION = """CREATE OR REPLACE FUNCTION cleandb.position(sq regclass, OUT last_value bigint,
  OUT is_called boolean) LANGUAGE plpgsql AS $cleandb$
BEGIN
  EXECUTE format('SELECT last_value, is_called FROM %s', sq) INTO last_value, is_called;
END
$cleandb$"""

# Sequences in a tracked schema that no column owns or takes its default from (a test may
# advance one with an explicit nextval() in its INSERT): their positions are kept under the
# unit cleandb.sequences (a table that is never tracked) and restored by every reset that
# finds them moved. Found again by every sync.
_FREE_SEQUENCES = """CREATE OR REPLACE FUNCTION cleandb.free_sequences() RETURNS void
LANGUAGE plpgsql AS $cleandb$
BEGIN
  DELETE FROM cleandb.sequences WHERE unit = 'cleandb.sequences'::regclass;
  INSERT INTO cleandb.sequences (unit, seq, last_value, is_called)
  SELECT 'cleandb.sequences'::regclass, c.oid::regclass, p.last_value, p.is_called
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, cleandb.config g,
       cleandb.position(c.oid::regclass) p
  WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND n.nspname = ANY (g.schemas)
    AND n.nspname <> 'cleandb'
    AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
                      AND d.classid = 'pg_attrdef'::regclass);
  -- Every other tracked sequence takes its current position as its baseline too: a migration
  -- step may have moved it (setval, ALTER SEQUENCE ... RESTART) without writing its table,
  -- and a sequence that several tables share has one position, whichever unit holds it.
  UPDATE cleandb.sequences s
  SET (last_value, is_called) = (SELECT p.last_value, p.is_called FROM cleandb.position(s.seq) p)
  WHERE s.unit <> 'cleandb.sequences'::regclass;
END
$cleandb$"""

# Row-level security that applies to the installing role (FORCE ROW LEVEL SECURITY, or a table
# another role owns) would make the baseline and the reset see only some rows: refused, naming
# the table and the ways out, unless the role bypasses it (a superuser, or BYPASSRLS).
_RLS_CHECK = """IF EXISTS (SELECT FROM pg_class c WHERE c.oid = rel AND c.relrowsecurity
             AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')))
     AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION USING
      ERRCODE = 'insufficient_privilege',
      MESSAGE = format('alembic-cleandb cannot track table %s: it has row-level security '
                       '(FORCE ROW LEVEL SECURITY, or another owner) that applies to role %s, so '
                       'its baseline and every reset would see only some of its rows. Nothing '
                       'was changed.', rel, quote_ident(current_user)),
      HINT = 'Install (and reset) as a role that bypasses row-level security (a superuser, or '
             'ALTER ROLE ... BYPASSRLS), or leave the table untracked: '
             'op.install_clean_tracking(exclude=[...]).';
  END IF;"""

# The trigger fires in every session_replication_role (ENABLE ALWAYS: a fixture loader that
# runs in replica mode is tracked too). Its ALTER TABLE would run the DDL event trigger again
# for this table: cleandb.attaching tells that one to stand down.
_ATTACH = f"""CREATE OR REPLACE FUNCTION cleandb.attach(rel regclass) RETURNS void
LANGUAGE plpgsql AS $cleandb$
DECLARE
  root regclass := coalesce(pg_partition_root(rel), rel);
BEGIN
  {_RLS_CHECK}
  INSERT INTO cleandb.tables (relid, unit) VALUES (rel, root)
  ON CONFLICT (relid) DO UPDATE SET unit = excluded.unit;
  IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = rel AND tgname = '{TRIGGER}'
                 AND tgenabled = 'A') THEN
    PERFORM set_config('cleandb.attaching', 'on', true);
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = rel AND tgname = '{TRIGGER}') THEN
      EXECUTE format('CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE '
                     'ON %s FOR EACH STATEMENT EXECUTE FUNCTION cleandb.mark()', rel);
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER {TRIGGER}', rel);
    PERFORM set_config('cleandb.attaching', 'off', true);
  END IF;
  IF root = rel THEN
    PERFORM cleandb.snapshot(rel);
  END IF;
END
$cleandb$"""

# Attach new tables; re-take the baseline of the units that may have changed: new ones,
# seeded ones, and those the migrations wrote to (or every unit, for set_baseline).
# Forget dropped tables, attach new ones (taking their baseline); existing baselines and the
# marks stay as they are (what cleandb_sync(), for tables created outside migrations, does).
_ATTACH_NEW = """CREATE OR REPLACE FUNCTION cleandb.attach_new() RETURNS integer
LANGUAGE plpgsql AS $cleandb$
DECLARE
  r regclass;
  attached integer := 0;
BEGIN
  DELETE FROM cleandb.tables t WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid);
  DELETE FROM cleandb.sequences s
  WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = s.seq)
     OR (s.unit <> 'cleandb.sequences'::regclass
         AND NOT EXISTS (SELECT FROM cleandb.tables t WHERE t.relid = s.unit));
  FOR r IN SELECT x FROM cleandb.candidates() AS x
           WHERE NOT EXISTS (SELECT FROM cleandb.tables t WHERE t.relid = x)
           ORDER BY x::oid LOOP
    PERFORM cleandb.attach(r);
    attached := attached + 1;
  END LOOP;
  PERFORM cleandb.check_fks(NULL);
  RETURN attached;
END
$cleandb$"""

# Layers open (scoped baselines, see cleandb.push_baseline()): a sync would take the scopes'
# seed rows as the baseline and the layers' saved baselines would no longer match the tables,
# so it refuses (a migration step's transaction is rolled back with it).
_LAYERS_OPEN = """IF EXISTS (SELECT FROM cleandb.layers) THEN
    RAISE EXCEPTION USING
      ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('alembic-cleandb: cannot take a new baseline in database %s: %s scoped '
                       'baseline(s) are open (cleandb_scope / Cleaner.scope(), or a run killed '
                       'inside one); nothing was changed', quote_literal(current_database()),
                       (SELECT count(*) FROM cleandb.layers)),
      HINT = 'End the scopes first: Cleaner(url).pop_baseline() once per open scope (a pytest '
             'run with the plugin ends those a killed run left open when it starts).';
  END IF;"""
_SYNC = f"""CREATE OR REPLACE FUNCTION cleandb.sync(everything boolean) RETURNS integer
LANGUAGE plpgsql AS $cleandb$
DECLARE
  r regclass;
  attached integer;
BEGIN
  {_LAYERS_OPEN}
  attached := cleandb.attach_new();
  FOR r IN SELECT DISTINCT t.unit FROM cleandb.tables t
           WHERE everything OR t.baseline IS NOT NULL OR t.ctes IS NULL
              OR t.relid IN (SELECT d.relid FROM cleandb.dirty d) LOOP
    IF r = (SELECT unit FROM cleandb.tables WHERE relid = r) THEN
      PERFORM cleandb.snapshot(r);
    END IF;
  END LOOP;
  PERFORM cleandb.free_sequences();
  DELETE FROM cleandb.dirty;
  PERFORM nextval('cleandb.epoch'), setval('cleandb.tickets', 1, false);  -- (see cleandb.reset())
  -- Fresh statistics keep the reset's plans on the indexes (a never-analyzed table is
  -- estimated at thousands of rows, which makes the planner hash-join whole tables).
  ANALYZE cleandb.tables, cleandb.sequences, cleandb.dirty;
  RETURN attached;
END
$cleandb$"""

# DDL run outside Alembic (a CREATE TABLE in a test, say): attach new tables at once, and
# refresh the fragments of altered tables that hold no test data yet.
_ON_DDL = """CREATE OR REPLACE FUNCTION cleandb.on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $cleandb$
DECLARE
  r regclass;
BEGIN
  IF current_setting('cleandb.deferred', true) = 'on' THEN
    RETURN;  -- a migration run in this session: its last step syncs everything at once
  END IF;
  IF current_setting('cleandb.attaching', true) IS NOT DISTINCT FROM 'on' THEN
    RETURN;  -- (cleandb.attach()'s own ALTER TABLE)
  END IF;
  FOR r IN SELECT DISTINCT e.objid::regclass FROM pg_event_trigger_ddl_commands() e
           WHERE e.classid = 'pg_class'::regclass AND e.object_type = 'table' LOOP
    IF r IN (SELECT x FROM cleandb.candidates() AS x) THEN
      IF NOT EXISTS (SELECT FROM cleandb.tables WHERE relid = r) THEN
        PERFORM cleandb.attach(r);
      ELSIF r = (SELECT unit FROM cleandb.tables WHERE relid = r)
            AND NOT EXISTS (SELECT FROM cleandb.dirty WHERE relid = r) THEN
        PERFORM cleandb.snapshot(r);
      END IF;
    END IF;
    PERFORM cleandb.check_fks(r);  -- (an untracked table's foreign keys count too)
  END LOOP;
END
$cleandb$"""

_EVENT_TRIGGER = f"""DO $cleandb$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = '{EVENT_TRIGGER}') THEN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
      CREATE EVENT TRIGGER {EVENT_TRIGGER} ON ddl_command_end
        WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
        EXECUTE FUNCTION cleandb.on_ddl();
    ELSE
      RAISE NOTICE 'alembic-cleandb: role % is not a superuser, so tables created outside '
                   'Alembic migrations are not tracked until cleandb_sync() runs', current_user;
    END IF;
  END IF;
END
$cleandb$"""

_WRONG_DATABASE = """RAISE EXCEPTION USING
      MESSAGE = format('alembic-cleandb: tracking in database %s was installed in database %s; '
                       'refusing to reset a database it was not installed in',
                       quote_literal(current_database()),
                       (SELECT quote_literal(database) FROM cleandb.config)),
      HINT = 'If this database is a copy made for tests, adopt it with '
             'alembic_cleandb.adopt(url); otherwise reinstall tracking.';"""
_CHECK_DATABASE = f"""IF NOT EXISTS (SELECT FROM cleandb.config WHERE database = current_database()) THEN
    {_WRONG_DATABASE}
  END IF;"""

# Whether this session may turn triggers off for its own statements (session_replication_role
# = replica): a superuser, or a role granted SET on the parameter (PostgreSQL 15 and later; a
# branch not taken is never parsed, so older servers never see has_parameter_privilege).
_SUPERUSER = "current_setting('is_superuser') = 'on'"
_GRANTED = "has_parameter_privilege('session_replication_role', 'SET')"  # PostgreSQL 15+
_MAY_SKIP_TRIGGERS = f"""CREATE OR REPLACE FUNCTION cleandb.may_skip_triggers() RETURNS boolean
LANGUAGE plpgsql STABLE AS $cleandb$
BEGIN
  IF {_SUPERUSER} THEN
    RETURN true;
  ELSIF current_setting('server_version_num')::integer >= 150000 THEN
    RETURN {_GRANTED};
  END IF;
  RETURN false;
END
$cleandb$"""

# The reset writes every tracked table and the marks: it runs as the role that installed
# tracking (or a member of it). Any other role may write tracked tables, and is tracked, but
# its reset is refused with this message rather than a bare "permission denied".
_REQUIRE_INSTALLER = """IF NOT has_table_privilege('cleandb.dirty', 'DELETE') THEN
    RAISE EXCEPTION USING
      ERRCODE = 'insufficient_privilege',
      MESSAGE = format('alembic-cleandb: role %s may not reset database %s: the reset must run '
                       'as the role that installed tracking (%s) or a member of it; nothing was '
                       'reset and the marks are kept. Give the reset (cleandb_urls, Cleaner(url)) '
                       'the URL of the role that ran the migrations: the application may keep '
                       'its own role, whose writes are tracked', quote_ident(current_user),
                       quote_literal(current_database()),
                       (SELECT quote_ident(nspowner::regrole::text) FROM pg_namespace
                        WHERE nspname = 'cleandb')),
      HINT = 'Reset as the role that ran the migrations.';
  END IF;"""

# The foreign keys that join a dirty unit (or one of its partitions) and an untracked table,
# checked after the reset's statement, which ran with checks off: a row that references a row
# that is not there is refused (the whole reset is undone and the marks stay), naming both
# tables, the constraint and the row. Only where an untracked table really references a row
# the reset removed (or a restored row references an untracked row a test deleted).
_CHECK_REFERENCES = """CREATE OR REPLACE FUNCTION cleandb.check_references(units regclass[]) RETURNS void
LANGUAGE plpgsql AS $cleandb$
DECLARE
  k record;
  nonnull text; same text; bad text;
BEGIN
  FOR k IN SELECT c.oid, c.conname, c.conrelid::regclass AS child, c.confrelid::regclass AS parent,
                  (SELECT relkind FROM pg_class WHERE oid = c.conrelid) AS childkind,
                  (SELECT relkind FROM pg_class WHERE oid = c.confrelid) AS parentkind
           FROM cleandb.config g, pg_constraint c
           WHERE c.oid = ANY (g.crossing)
             AND ((SELECT t.unit FROM cleandb.tables t WHERE t.relid = c.conrelid) = ANY (units)
                  OR (SELECT t.unit FROM cleandb.tables t WHERE t.relid = c.confrelid) = ANY (units)) LOOP
    SELECT string_agg(format('r.%I IS NOT NULL', a.attname), ' AND '),
           string_agg(format('p.%I = r.%I', pa.attname, a.attname), ' AND ')
    INTO nonnull, same
    FROM pg_constraint c, unnest(c.conkey, c.confkey) AS x (ck, pk)
    JOIN pg_attribute a ON a.attrelid = k.child AND a.attnum = x.ck
    JOIN pg_attribute pa ON pa.attrelid = k.parent AND pa.attnum = x.pk
    WHERE c.oid = k.oid;
    EXECUTE format('SELECT r.*::text FROM %s%s AS r WHERE %s AND NOT EXISTS '
                   '(SELECT FROM %s%s AS p WHERE %s) LIMIT 1',
                   CASE WHEN k.childkind = 'p' THEN '' ELSE 'ONLY ' END, k.child, nonnull,
                   CASE WHEN k.parentkind = 'p' THEN '' ELSE 'ONLY ' END, k.parent, same)
    INTO bad;
    IF bad IS NOT NULL THEN
      RAISE EXCEPTION USING
        ERRCODE = 'foreign_key_violation',
        MESSAGE = format('alembic-cleandb: the reset would leave a dangling reference: row %s '
                         'of table %s references a row of table %s that is not there after the '
                         'reset (foreign key %I), and one of the two tables is not tracked '
                         '(excluded, or in a schema that is not tracked), so the reset does not '
                         'restore it. Nothing was reset; the marks are kept: delete or change '
                         'that row in the test, or track both tables',
                         bad, k.child, k.parent, k.conname),
        HINT = 'Delete or change that row in the test, or track both tables.';
    END IF;
  END LOOP;
END
$cleandb$"""

# The units (tables, partitioned roots) of the marked tables: a statement on an inheritance
# parent (not a partitioned table) may have changed rows of its children (UPDATE and DELETE
# reach them, and only the parent's trigger fires), so they count as written too.
_MARKED_UNITS = """IF EXISTS (SELECT FROM pg_inherits i WHERE i.inhparent = ANY (marked::oid[])) THEN
    WITH RECURSIVE h (rel) AS (SELECT unnest(marked) UNION
                               SELECT i.inhrelid::regclass FROM pg_inherits i JOIN h ON i.inhparent = h.rel)
    SELECT array_agg(h.rel) INTO marked FROM h;
  END IF;
  SELECT array_agg(DISTINCT t.unit) INTO units FROM cleandb.tables t
  WHERE t.relid = ANY (marked) AND (SELECT true FROM pg_class c WHERE c.oid = t.unit);"""

# The reset: one probe when nothing is dirty (no mark, no ticket taken); otherwise one query
# that takes exactly the marks seen now (a mark committed while the reset runs stays for the
# next one) and gathers the fragments, one dynamic statement that resets every dirty unit, and
# one that restores its sequences - and, when fewer marks than tickets were found (a writer
# rolled back after taking sequence values), every tracked sequence that moved. While it runs, the
# mark triggers stand down (cleandb.resetting, transaction-local), so the reset leaves no marks
# of its own (the flag is set before the dynamic statement, whose BEFORE triggers fire first,
# and cleared at the end). Its commit does not wait for the WAL flush (synchronous_commit off for this
# transaction only): were the server to crash before the flush, the reset and the removal of
# the marks would be lost together, and the next reset would do the job again. Fragments name
# their table by oid (format), so renamed tables keep working; dropped ones are skipped.
# Its bookkeeping queries keep one generic plan per session (plan_cache_mode): re-planning
# them for every array of oids cost more than running them (~0.1 ms of a 0.6 ms reset).
# cleandb.dirty fills and empties every test: until autovacuum comes by (once a minute at
# most) its heap holds every mark deleted since, so the nothing-written probe reads the
# index (min(relid): one index probe; dead entries are flagged the first time they are met)
# rather than scanning that heap.
_RESET = f"""CREATE OR REPLACE FUNCTION cleandb.reset(restart_ids boolean) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET row_security = off AS $cleandb$
DECLARE
  issued bigint := coalesce(pg_sequence_last_value('cleandb.tickets'), 0);
  marks bigint;
  marked regclass[];
  units regclass[];
  q text;
  fk_open boolean;
  role text := current_setting('session_replication_role');
BEGIN
  -- (cleandb_truncate() has already probed for anything to do)
  {_REQUIRE_INSTALLER}
  -- Arrays and = ANY keep every step on an index whatever the planner believes about the size
  -- of cleandb.dirty (its statistics are always stale: it fills and empties every test); the
  -- pg_class probes are scalar subqueries, looked up per row, never a hash of all relations.
  -- The database guard is read by the same statement (an exception undoes the DELETE).
  WITH d AS (DELETE FROM cleandb.dirty RETURNING relid)
  SELECT count(*), array_agg(relid::regclass),
         (SELECT c.fk_open FROM cleandb.config c WHERE c.database = current_database())
  INTO marks, marked, fk_open FROM d;
  IF fk_open IS NULL THEN
    {_WRONG_DATABASE}
  END IF;
  -- A new epoch, only now that the marks to take are fixed (that statement's snapshot): from
  -- here on every session marks again (see cleandb.mark()). A session that saw the new epoch
  -- commits its mark after that snapshot, so this reset cannot take it; one that saw the old
  -- epoch has its mark taken but remembers the old epoch, and marks again.
  PERFORM nextval('cleandb.epoch'), set_config('cleandb.resetting', 'on', true),
    set_config('synchronous_commit', 'off', true);
  {_MARKED_UNITS}
  -- (each fragment names its table schema-qualified, from its oid: a renamed table still works,
  -- and a table named like a built-in type is never taken for that type)
  SELECT string_agg((SELECT format(t.ctes, (SELECT format('%I.%I', n.nspname, c.relname)
                                            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                            WHERE c.oid = u))
                     FROM cleandb.tables t WHERE t.relid = u), ', ')
  INTO q FROM unnest(units) AS u;
  -- No trigger fires for the reset's own writes when the role may say so (replica mode): an
  -- application's trigger (an audit log, a counter) would otherwise write rows that no reset
  -- ever removes, a foreign-key action would reach tables no test wrote, and the
  -- foreign-key checks cost more than the rest of the reset (the rows of tracked tables go
  -- back to a baseline that satisfied them; where a foreign key joins a tracked table and an
  -- untracked one, cleandb.check_references() checks exactly those rows afterwards). The
  -- Cleaner's connection (the pytest plugin's) is in replica mode already. Another connection
  -- switches only when a dirty unit has triggers of its own or a foreign key to or from an
  -- untracked table, for this transaction only: the switch makes the session re-plan every
  -- cached statement (twice), about 0.6 ms.
  IF role <> 'replica' THEN  -- (a condition of its own: the query below costs 30 us)
    IF (fk_open
        OR EXISTS (SELECT FROM (SELECT u FROM unnest(units) AS u  -- (and their partitions)
                                UNION ALL SELECT p.relid FROM unnest(units) AS u, pg_partition_tree(u) AS p)
                               AS r (rel) JOIN pg_trigger g ON g.tgrelid = r.rel
                   WHERE NOT g.tgisinternal AND g.tgname <> '{TRIGGER}'))
       AND cleandb.may_skip_triggers() THEN
      PERFORM set_config('session_replication_role', 'replica', true);
    END IF;
  END IF;
  IF q IS NOT NULL THEN
    EXECUTE 'WITH ' || q || ' SELECT NULL';
  END IF;
  IF fk_open THEN
    PERFORM cleandb.check_references(units);
  END IF;
  -- setval is not transactional: only once the rows are back (a reset that fails before this
  -- point has changed nothing at all).
  PERFORM setval('cleandb.tickets', 1, false), set_config('cleandb.resetting', 'off', true);
  IF current_setting('session_replication_role') <> role THEN
    PERFORM set_config('session_replication_role', role, true);
  END IF;
  IF NOT restart_ids THEN
    -- Rows only: every sequence keeps counting - but never below its baseline, which a test
    -- that restarted one (TRUNCATE ... RESTART IDENTITY, ALTER SEQUENCE ... RESTART) would
    -- leave below the restored rows' keys. cleandb.drift remembers that sequences may now be
    -- past their baselines without a mark, for the next reset that restarts them.
    PERFORM setval(s.seq, s.last_value, s.is_called)
    FROM cleandb.sequences s, cleandb.position(s.seq) p
    WHERE s.unit = ANY (units) AND (SELECT true FROM pg_class c WHERE c.oid = s.seq)
      AND p.last_value + p.is_called::int < s.last_value + s.is_called::int;
    IF pg_sequence_last_value('cleandb.drift') IS NULL THEN
      PERFORM setval('cleandb.drift', 1, true);
    END IF;
  ELSIF marks = issued AND pg_sequence_last_value('cleandb.drift') IS NULL THEN
    -- the usual case: the dirty units' sequences, by index, and the sequences tied to no
    -- table that moved (cleandb.free_sequences())
    PERFORM setval(s.seq, s.last_value, s.is_called) FROM cleandb.sequences s
    WHERE s.unit = ANY (units || 'cleandb.sequences'::regclass)
      AND (SELECT true FROM pg_class c WHERE c.oid = s.seq)
      AND (s.unit <> 'cleandb.sequences'::regclass
           OR pg_sequence_last_value(s.seq) IS DISTINCT FROM CASE WHEN s.is_called THEN s.last_value END);
  ELSE  -- a writer rolled back, or resets that kept counting came before: also every
    -- tracked sequence that moved
    PERFORM setval(s.seq, s.last_value, s.is_called) FROM cleandb.sequences s
    WHERE (s.unit = ANY (units)
           OR pg_sequence_last_value(s.seq) IS DISTINCT FROM CASE WHEN s.is_called THEN s.last_value END)
      AND EXISTS (SELECT FROM pg_class c WHERE c.oid = s.seq);
    IF pg_sequence_last_value('cleandb.drift') IS NOT NULL THEN
      PERFORM setval('cleandb.drift', 1, false);
    END IF;
  END IF;
  RETURN coalesce(cardinality(units), 0);
END
$cleandb$"""

# Scoped baselines (layers). push_baseline(): the units marked now take their current rows
# and sequence positions as their baseline (cleandb.snapshot()), the baseline they had is kept
# in layer_tables/layer_sequences under the new depth, and their marks are taken as a reset
# takes them (a new epoch, so that every session marks again). Sequences tied to no table that
# moved are kept the same way. pop_baseline(): the innermost layer's baselines go back, its
# units are marked (with a ticket each, as a writer's mark has) and cleandb.reset() resets them
# with every other marked unit. Each is one function call, one transaction; both cost in
# proportion to the units the layer holds, never to the tables tracked. The per-test reset is
# untouched: it always restores cleandb.tables, the innermost baseline.
_PUSH = f"""CREATE OR REPLACE FUNCTION cleandb.push_baseline() RETURNS integer
LANGUAGE plpgsql SET row_security = off AS $cleandb$
DECLARE
  issued bigint := coalesce(pg_sequence_last_value('cleandb.tickets'), 0);
  marks bigint;
  marked regclass[];
  units regclass[];
  u regclass;
  d integer;
BEGIN
  {_REQUIRE_INSTALLER}
  {_CHECK_DATABASE}
  WITH m AS (DELETE FROM cleandb.dirty RETURNING relid)
  SELECT count(*), array_agg(relid::regclass) INTO marks, marked FROM m;
  PERFORM nextval('cleandb.epoch');  -- (see cleandb.reset())
  {_MARKED_UNITS}
  d := coalesce((SELECT max(depth) FROM cleandb.layers), 0) + 1;
  INSERT INTO cleandb.layers (depth) VALUES (d);
  INSERT INTO cleandb.layer_tables (depth, unit, baseline, ctes)
  SELECT d, t.relid, t.baseline, t.ctes FROM cleandb.tables t WHERE t.relid = ANY (units);
  INSERT INTO cleandb.layer_sequences (depth, unit, seq, last_value, is_called)
  SELECT d, s.unit, s.seq, s.last_value, s.is_called FROM cleandb.sequences s
  WHERE s.unit = ANY (units)
     OR (s.unit = 'cleandb.sequences'::regclass AND (SELECT true FROM pg_class c WHERE c.oid = s.seq)
         AND pg_sequence_last_value(s.seq) IS DISTINCT FROM CASE WHEN s.is_called THEN s.last_value END);
  FOR u IN SELECT x FROM unnest(units) AS x LOOP
    PERFORM cleandb.snapshot(u);
  END LOOP;
  UPDATE cleandb.sequences s SET (last_value, is_called) = (SELECT p.last_value, p.is_called FROM cleandb.position(s.seq) p)
  FROM cleandb.layer_sequences l
  WHERE l.depth = d AND l.unit = 'cleandb.sequences'::regclass AND s.unit = l.unit AND s.seq = l.seq;
  IF marks = issued THEN  -- (otherwise a writer rolled back: the next reset checks every sequence)
    PERFORM setval('cleandb.tickets', 1, false);
  END IF;
  RETURN d;
END
$cleandb$"""

# -1: no layer to pop (the caller says how to fix it).
_POP = f"""CREATE OR REPLACE FUNCTION cleandb.pop_baseline() RETURNS integer
LANGUAGE plpgsql AS $cleandb$
DECLARE
  d integer := (SELECT max(depth) FROM cleandb.layers);
BEGIN
  {_REQUIRE_INSTALLER}
  {_CHECK_DATABASE}
  IF d IS NULL THEN
    RETURN -1;
  END IF;
  UPDATE cleandb.tables t SET baseline = l.baseline, ctes = l.ctes
  FROM cleandb.layer_tables l WHERE l.depth = d AND t.relid = l.unit;
  DELETE FROM cleandb.sequences s USING cleandb.layer_tables l
  WHERE l.depth = d AND s.unit = l.unit;
  INSERT INTO cleandb.sequences AS s (unit, seq, last_value, is_called)
  SELECT l.unit, l.seq, l.last_value, l.is_called FROM cleandb.layer_sequences l
  WHERE l.depth = d AND (SELECT true FROM pg_class c WHERE c.oid = l.seq)
    AND (l.unit = 'cleandb.sequences'::regclass OR EXISTS (SELECT FROM cleandb.tables t WHERE t.relid = l.unit))
  ON CONFLICT (unit, seq) DO UPDATE SET last_value = excluded.last_value, is_called = excluded.is_called;
  INSERT INTO cleandb.dirty (relid)  -- (a ticket per mark, as a writer's mark takes)
  SELECT l.unit FROM cleandb.layer_tables l WHERE l.depth = d AND nextval('cleandb.tickets') > 0;
  DELETE FROM cleandb.layer_tables WHERE depth = d;
  DELETE FROM cleandb.layer_sequences WHERE depth = d;
  DELETE FROM cleandb.layers WHERE depth = d;
  PERFORM cleandb.reset(true);  -- (the saved positions back: ending a scope restarts ids)
  RETURN d - 1;
END
$cleandb$"""

# The public entry point: the nothing-written probe alone (no ticket taken, no mark), which is
# what most tests need; the reset proper is cleandb.reset() (whose SET clause would cost the
# probe a configuration save and restore).
_TRUNCATE = """CREATE OR REPLACE FUNCTION cleandb_truncate(restart_ids boolean DEFAULT true)
RETURNS integer LANGUAGE plpgsql AS $cleandb$
BEGIN
  IF pg_sequence_last_value('cleandb.tickets') IS NULL
     AND (SELECT min(relid) FROM cleandb.dirty) IS NULL
     AND (NOT restart_ids OR pg_sequence_last_value('cleandb.drift') IS NULL) THEN
    RETURN 0;
  END IF;
  RETURN cleandb.reset(restart_ids);
END
$cleandb$"""

_SYNC_PUBLIC = f"""CREATE OR REPLACE FUNCTION cleandb_sync() RETURNS integer
LANGUAGE plpgsql AS $cleandb$
BEGIN
  {_CHECK_DATABASE}
  RETURN cleandb.attach_new();
END
$cleandb$"""

_SET_BASELINE = f"""CREATE OR REPLACE FUNCTION cleandb_set_baseline() RETURNS integer
LANGUAGE plpgsql AS $cleandb$
BEGIN
  {_CHECK_DATABASE}
  RETURN cleandb.sync(true);
END
$cleandb$"""

# Every object any version created, found in the catalog: triggers and event triggers that run
# a function of schema cleandb, the entry points named cleandb_* in the routine schema (and the
# current one), then every function and relation of schema cleandb, and the schema. Never
# CASCADE: an object of the application's that depends on one of these makes the drop fail
# instead of going with it.
_UNINSTALL = f"""DO $cleandb$
DECLARE
  r record;
  f regprocedure;
  routine_schemas name[] := ARRAY[current_schema()];
BEGIN
  IF to_regclass('{SCHEMA}.config') IS NOT NULL THEN
    routine_schemas := routine_schemas || ARRAY(SELECT routine_schema FROM {SCHEMA}.config);
  END IF;
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = ANY (routine_schemas) AND n.nspname <> '{SCHEMA}'
             AND starts_with(p.proname, '{PREFIX}') LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s', f);
  END LOOP;
  IF to_regnamespace('{SCHEMA}') IS NULL THEN
    RETURN;
  END IF;
  FOR r IN SELECT e.evtname FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid
           JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{SCHEMA}' LOOP
    EXECUTE format('DROP EVENT TRIGGER IF EXISTS %I', r.evtname);
  END LOOP;
  FOR r IN SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_trigger t
           JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = '{SCHEMA}' AND NOT t.tgisinternal LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', r.tgname, r.rel);
  END LOOP;
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = '{SCHEMA}' LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s', f);
  END LOOP;
  -- Views, then tables (with their indexes and owned sequences), then other sequences.
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('v', 'm', 'r', 'p', 'S')
           ORDER BY position(c.relkind IN 'vmrpS') LOOP
    EXECUTE format('DROP %s IF EXISTS {SCHEMA}.%I',
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  DROP SCHEMA {SCHEMA};
END
$cleandb$"""

_CHECK_VERSION = f"""IF (SELECT schema_version FROM cleandb.config) IS DISTINCT FROM {SCHEMA_VERSION} THEN
      RAISE EXCEPTION USING
        MESSAGE = format('alembic-cleandb: tracking in database %s has schema version %s, but '
                         'this library uses version {SCHEMA_VERSION}', quote_literal(current_database()),
                         (SELECT schema_version FROM cleandb.config)),
        HINT = 'Upgrade it online: alembic -n cleandb upgrade heads (an upgrade reads the '
               'installed version and options from the database, which --sql cannot).';
    END IF;"""

# After a migration step: a no-op unless tracking is installed (safe in any --sql script).
_SYNC_IF_INSTALLED = f"""DO $cleandb$
BEGIN
  IF to_regclass('cleandb.config') IS NOT NULL THEN
    {_CHECK_DATABASE}
    {_CHECK_VERSION}
    PERFORM cleandb.sync(false);
  END IF;
END
$cleandb$"""

# --sql mode: an upgrade reads the installed version and options, which only a server can do;
# the script stops with a clear message where an older version is installed.
_UPGRADE_OFFLINE = f"""DO $cleandb$
BEGIN
  IF to_regclass('cleandb.config') IS NOT NULL THEN
    {_CHECK_VERSION}
  END IF;
END
$cleandb$"""


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


def install_statements(options: TrackingOptions) -> list[str]:
    """Every statement of an install, in order (also what ``--sql`` prints)."""
    return [
        _guard("install tracking in", options.allowed_database),
        *_split(_TABLES),
        *_split(_config(options)),
        _MARK_TABLE,
        _MARK,
        _MARK_GRANT,
        _CANDIDATES,
        _POSITION,
        _SNAPSHOT,
        _FREE_SEQUENCES,
        _ATTACH,
        _CHECK_FKS,
        _ATTACH_NEW,
        _SYNC,
        _ON_DDL,
        _MAY_SKIP_TRIGGERS,
        _CHECK_REFERENCES,
        _RESET,
        _PUSH,
        _POP,
        _TRUNCATE,
        _SYNC_PUBLIC,
        _SET_BASELINE,
        _EVENT_TRIGGER,
        "SELECT cleandb.sync(false)",
    ]


def uninstall_statements() -> list[str]:
    return [_UNINSTALL]


class PostgreSQLBackend(Backend):
    names: ClassVar[tuple[str, ...]] = ("postgresql",)
    #: undefined_table, lock_not_available (lock_timeout), unique_violation
    ERROR_KINDS: ClassVar[dict[str, str]] = {
        "42P01": MISSING_TABLE,
        "55P03": LOCK_TIMEOUT,
        "23505": UNIQUE_CLASH,
    }

    def error_kind(self, exc: BaseException) -> str | None:
        return self.ERROR_KINDS.get(sqlstate(exc) or "")

    def configure_session(self, connection: Connection, lock_timeout: float) -> None:
        execute(connection, SQL("SET lock_timeout = {}").format(Literal(int(lock_timeout * 1000))))
        # This connection only resets: no trigger fires for its writes where the role may say
        # so (the same test as cleandb.may_skip_triggers(), which a database without tracking
        # lacks). cleandb.reset() turns them back on where a foreign key needs its checks.
        may = _SUPERUSER
        if (connection.dialect.server_version_info or (0,)) >= (15,):
            may += f" OR {_GRANTED}"
        execute(
            connection,
            f"SELECT set_config('session_replication_role', 'replica', false) WHERE {may}",
        )

    def install(self, ex: Executor, options: TrackingOptions) -> None:
        for sql in install_statements(options):
            ex(sql)

    def uninstall(self, ex: Executor) -> None:
        for sql in uninstall_statements():
            ex(sql)

    def sync(self, ex: Executor, after_migration: bool = True) -> None:
        if ex.connection is None:
            ex(_SYNC_IF_INSTALLED)
            return
        version = self.installed_version(ex.connection)
        if version is not None and version < SCHEMA_VERSION and after_migration:
            self.upgrade(ex, after_migration=True)  # a step ran before the branch's upgrade
        elif version is not None:
            check_sync_target(self, ex.connection, version)
            depth = self.baseline_depth(ex.connection) if after_migration else 0
            if depth:
                raise layers_open_error(
                    depth,
                    safe_url(ex.connection.engine.url),
                    "take a new baseline after a migration step in",
                )
            # After a migration step, tables it wrote to take a new baseline; otherwise (a
            # table created outside migrations) only new tables do, and the marks stay.
            ex("SELECT cleandb.sync(false)" if after_migration else "SELECT cleandb.attach_new()")
            if after_migration:
                ex(f"DROP TABLE IF EXISTS {PENDING}")
                ex("SELECT set_config('cleandb.deferred', '', false)")

    def mark_sync_pending(self, ex: Executor) -> bool:
        """Online, where tracking is installed: say "sync pending" until :meth:`sync` runs."""
        if ex.connection is None or self.installed_version(ex.connection) is None:
            return False
        ex(f"CREATE TABLE IF NOT EXISTS {PENDING} ()")
        # The event trigger leaves this session's DDL to the sync after the last step.
        ex("SELECT set_config('cleandb.deferred', 'on', false)")
        return True

    def sync_pending(self, connection: Connection) -> bool:
        found = execute(connection, f"SELECT to_regclass('{PENDING}')").scalar()
        return found is not None

    def installed_options(self, connection: Connection) -> TrackingOptions:
        schemas, excluded = execute(
            connection, "SELECT schemas, excluded FROM cleandb.config"
        ).one()
        return TrackingOptions(
            schemas=tuple(schemas), exclude=tuple(excluded), allowed_database=allowed_name()
        )

    def has_marks(self, connection: Connection) -> bool:
        return bool(execute(connection, "SELECT EXISTS (SELECT FROM cleandb.dirty)").scalar())

    def upgrade_offline(self, ex: Executor) -> None:
        ex(_UPGRADE_OFFLINE)

    def installed_database(self, connection: Connection) -> str | None:
        name = execute(connection, "SELECT database FROM cleandb.config").scalar()
        return None if name is None else str(name)

    def lock_details(self, exc: BaseException, connection: Connection) -> str:
        # A row-lock wait names its relation in the error context; a table-lock wait does not,
        # so the sessions holding stronger-than-read locks on tracked tables are listed too.
        orig = getattr(exc, "orig", exc)
        context = str(getattr(getattr(orig, "diag", None), "context", None) or "")
        match = re.search(r'in relation "((?:[^"]|"")*)"', context)
        waited = match.group(1).replace('""', '"') if match else None
        rows = list(
            execute(
                connection,
                SQL(
                    "SELECT DISTINCT ON (l.pid, l.relation) l.relation::regclass::text, l.mode, "
                    "a.pid, a.application_name, a.state, a.xact_start, a.query, "
                    "c.relname = {} AS waited, l.relation IN (SELECT relid FROM cleandb.dirty) "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "JOIN pg_class c ON c.oid = l.relation "
                    "JOIN cleandb.tables t ON t.relid = l.relation "
                    "WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() "
                    "AND l.mode <> 'AccessShareLock' "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "ORDER BY l.pid, l.relation"
                ).format(Value(waited)),
            )
        )
        rows.sort(key=lambda r: (not r[7], not r[8], str(r[5])))
        parts = []
        if waited is not None:
            quoted = display_name(connection.dialect, waited)
            parts.append(f"the reset was waiting for a lock on table {quoted}")
        # One entry per session, whatever the number of tables it holds locks on.
        by_pid: dict[Any, list[Any]] = {}
        for row in rows:
            by_pid.setdefault(row[2], []).append(row)
        sessions = []
        idle = False
        for pid, held in list(by_pid.items())[:5]:
            _, _, _, app, state, started, query, _, _ = held[0]
            idle = idle or state == "idle in transaction"
            tables = ", ".join(f"{table} ({mode})" for table, mode, *_ in held[:5])
            if len(held) > 5:
                tables += f" and {len(held) - 5} more"
            sessions.append(
                f"pid {pid} (application {app!r}, {state}, transaction started {started}, "
                f"holds locks on {tables}, last query {query_start(str(query or ''))!r}; end it "
                f"with SELECT pg_terminate_backend({pid}))"
            )
        if sessions:
            parts.append("sessions holding locks on tracked tables: " + "; ".join(sessions))
        if idle:
            parts.append(IDLE_IN_TRANSACTION)
        return "; ".join(parts)

    def set_baseline(self, connection: Connection) -> None:
        depth = self.baseline_depth(connection)
        if depth:
            raise layers_open_error(depth, safe_url(connection.engine.url), "set the baseline of")
        routine = self._routine(connection, "cleandb_set_baseline")
        execute(connection, SQL("SELECT {}()").format(routine))
        execute(connection, f"DROP TABLE IF EXISTS {PENDING}")

    def push_baseline(self, connection: Connection) -> int:
        return int(execute(connection, "SELECT cleandb.push_baseline()").scalar() or 0)

    def pop_baseline(self, connection: Connection) -> int:
        depth = int(execute(connection, "SELECT cleandb.pop_baseline()").scalar() or 0)
        if depth < 0:
            raise ConfigurationError(
                f"alembic-cleandb: no scoped baseline is open in "
                f"{safe_url(connection.engine.url)}, so there is none to end (every scope "
                "ends once: end it where it was started)"
            )
        return depth

    def baseline_depth(self, connection: Connection) -> int:
        return int(execute(connection, "SELECT count(*) FROM cleandb.layers").scalar() or 0)

    def adopt(self, connection: Connection) -> None:
        execute(connection, "UPDATE cleandb.config SET database = current_database()")

    def installed_version(self, connection: Connection) -> int | None:
        if execute(connection, "SELECT to_regclass('cleandb.config')").scalar() is None:
            return None
        version = execute(connection, "SELECT schema_version FROM cleandb.config").scalar()
        return 0 if version is None else int(version)

    def current_database(self, connection: Connection) -> str:
        return str(execute(connection, "SELECT current_database()").scalar())

    def resetter(self, connection: Connection, restart_ids: bool = True) -> Callable[[], int]:
        # (the default argument, true, spelled out only when it differs: the call stays the
        # one SELECT cleandb_truncate() every version sent)
        call = driver_call(
            connection,
            SQL("SELECT {}()" if restart_ids else "SELECT {}(false)").format(
                self._routine(connection, "cleandb_truncate")
            ),
        )

        def reset() -> int:
            return int(call() or 0)

        return reset

    def own_schema(self, name: str | None) -> bool:
        return name == SCHEMA

    _DISPLAY = (
        "CASE WHEN n.nspname = current_schema() THEN c.relname::text "
        "ELSE n.nspname || '.' || c.relname END"
    )

    def _names(self, connection: Connection, marks: str) -> list[str]:
        """Display names of the tables whose oid ``marks`` (``<table> x``, column ``x.relid``)
        lists; ``marks`` is one of the two fixed strings below, never user input."""
        return [
            str(r[0])
            for r in execute(
                connection,
                f"SELECT DISTINCT {self._DISPLAY} FROM {marks} "
                "JOIN pg_class c ON c.oid = x.relid JOIN pg_namespace n ON n.oid = c.relnamespace",
            )
        ]

    def dirty_tables(self, connection: Connection) -> list[str]:
        return self._names(connection, "cleandb.dirty x")

    def tracked_tables(self, connection: Connection) -> list[str]:
        return self._names(connection, "cleandb.tables x")

    def change_sources(self, connection: Connection) -> list[ChangeSource]:
        """Each dirty unit (a table, or a partitioned table's root) against the row literals
        of its baseline, compared as text under this session's settings (the baseline's are
        cast to the row type and back, so a time zone or date style set since the snapshot
        changes nothing). Generated columns are compared but not shown."""
        units = execute(
            connection,
            "SELECT DISTINCT t.unit::oid, n.nspname, c.relname, c.relkind = 'p', "
            f"{self._DISPLAY} FROM cleandb.dirty d JOIN cleandb.tables t ON t.relid = d.relid "
            "JOIN pg_class c ON c.oid = t.unit JOIN pg_namespace n ON n.oid = c.relnamespace "
            "ORDER BY 5",
        ).fetchall()
        sources = []
        for oid, schema, name, partitioned, display in units:
            found = execute(
                connection,
                SQL(
                    "SELECT a.attname, array_position(i.indkey::int2[], a.attnum) "
                    "FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid "
                    "AND i.indisprimary WHERE a.attrelid = {} AND a.attnum > 0 "
                    "AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum"
                ).format(Value(oid)),
            ).fetchall()
            columns = tuple(str(c) for c, _ in found)
            key = tuple(str(c) for c, p in sorted(found, key=lambda r: r[1] or 0) if p is not None)
            table = Identifier(str(schema), str(name))
            only = SQL("" if partitioned else "ONLY ")
            picked = SQL(", ").join(
                SQL("(cleandb_v.cleandb_r).{} AS {}").format(c, f"c{i}")
                for i, c in enumerate(columns)
            )
            differences = SQL(
                "SELECT {}, cleandb_v.cleandb_n, cleandb_v.cleandb_l AS cleandb_o FROM ("
                "SELECT cleandb_g.cleandb_l::{} AS cleandb_r, cleandb_g.* FROM ("
                "SELECT cleandb_l, sum(cleandb_s) AS cleandb_n FROM ("
                "SELECT cleandb_x.*::text AS cleandb_l, 1 AS cleandb_s FROM {}{} AS cleandb_x "
                "UNION ALL SELECT (cleandb_b::{})::text, -1 FROM unnest((SELECT baseline FROM "
                "cleandb.tables WHERE relid = {}::oid)) AS cleandb_b"
                ") cleandb_u GROUP BY cleandb_l HAVING sum(cleandb_s) <> 0) cleandb_g) cleandb_v"
            ).format(picked, table, only, table, table, Literal(int(oid)))
            sources.append(ChangeSource(str(display), columns, key, differences, ("cleandb_o",)))
        return sources

    @staticmethod
    def _routine(connection: Connection, name: str) -> Identifier:
        schema = execute(connection, "SELECT routine_schema FROM cleandb.config").scalar()
        return Identifier(str(schema), name)

    # -- whole test databases -----------------------------------------------------
    IN_USE: ClassVar[str] = (
        "55006"  # object_in_use: "source database ... is being accessed by other users"
    )

    maintenance: ClassVar[tuple[str | None, ...]] = ("postgres", "template1")
    version_tables_sql: ClassVar[str] = (
        "SELECT table_schema, table_name FROM information_schema.columns "
        "WHERE column_name = 'version_num' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    )
    exists_sql = SQL("SELECT 1 FROM pg_database WHERE datname = {}")
    create_sql = SQL("CREATE DATABASE {}")

    def copy(self, base: URL, copy: URL, allowed: str | None = None) -> None:
        name, template = self.database(copy), self.database(base)
        with self._server(base) as c:
            statement = SQL("CREATE DATABASE {} TEMPLATE {}").format(name, template)
            # Our own sessions on the base (the first reset, the fingerprint) are closed, but a
            # server process ends a little after its client left, and CREATE DATABASE then
            # sleeps in steps of 100 ms: wait for them in steps of 5 ms instead (at most 1 s).
            settle = time.monotonic() + 1
            while (
                time.monotonic() < settle
                and execute(
                    c,
                    SQL("SELECT 1 FROM pg_stat_activity WHERE datname = {} LIMIT 1").format(
                        Value(template)
                    ),
                ).first()
            ):
                time.sleep(0.005)
            deadline = time.monotonic() + 1  # PostgreSQL itself waits 5 s per attempt
            while True:
                try:
                    execute(c, statement)
                    break
                except sa.exc.DBAPIError as exc:
                    in_use = sqlstate(exc) == self.IN_USE
                    if in_use and time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    if in_use:
                        raise self._template_busy(c, base, template) from None
                    raise create_failed(copy, exc) from None
        self.adopt_copy(copy, allowed)

    @staticmethod
    def _template_busy(c: Connection, base: URL, template: str) -> ConfigurationError:
        sessions = execute(
            c,
            SQL(
                "SELECT pid, coalesce(nullif(application_name, ''), '?'), "
                "coalesce(client_addr::text, 'local') FROM pg_stat_activity WHERE datname = {}"
            ).format(Value(template)),
        ).fetchall()
        who = ", ".join(f"pid {p} ({app}, {addr})" for p, app, addr in sessions) or "none now"
        return ConfigurationError(
            f"alembic-cleandb: cannot copy {safe_url(base)!r} for a pytest-xdist worker: other "
            f"sessions are connected to it ({who}). PostgreSQL copies a database only while "
            "nobody is connected to it. Close those sessions (a GUI client, a running app, an "
            "engine your conftest opened at import time) and run again."
        )

    def drop(self, url: URL) -> None:
        with self._server(url) as c:
            version = c.dialect.server_version_info or (0,)
            force = SQL(" WITH (FORCE)" if version >= (13,) else "")
            if version < (13,):
                execute(
                    c,
                    SQL(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = {} AND pid <> pg_backend_pid()"
                    ).format(Value(self.database(url))),
                )
            execute(c, SQL("DROP DATABASE IF EXISTS {}{}").format(self.database(url), force))
