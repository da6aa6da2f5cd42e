"""Real-world PostgreSQL schemas (issue 12, items 1-8): every feature a production migration
history contains resets exactly, or tracking refuses naming the table and the way out.

Each test builds its schema with real Alembic migrations written into ``tmp_path`` (the
packaged ``cleandb`` branch enabled as a test setup would), on a real server.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import alembic_cleandb
from alembic_cleandb import Cleaner, ResetError
from conftest import ROOT, Databases, server_engine
from dbutil import connect, dump, execute, q, rows


class Migrations:
    """An Alembic environment in a temporary directory: each step() is one revision that runs
    the given SQL statements; the cleandb branch is enabled as in a test setup."""

    def __init__(self, directory: Path, url: str) -> None:
        self.dir = directory
        self.url = url
        (directory / "versions").mkdir(parents=True)
        for name in ("env.py", "script.py.mako"):
            shutil.copy(ROOT / "tests" / "migrations" / name, directory / name)
        self.revisions: list[str] = []

    def step(self, *statements: str) -> str:
        revision = f"s{len(self.revisions) + 1:03d}"
        down = repr(self.revisions[-1]) if self.revisions else "None"
        (self.dir / "versions" / f"{revision}.py").write_text(
            f'"""Step {revision}."""\n\n'
            "from alembic import op\n\n"
            f"revision = {revision!r}\ndown_revision = {down}\n"
            "branch_labels = None\ndepends_on = None\n"
            f"STATEMENTS = {list(statements)!r}\n\n\n"
            "def upgrade() -> None:\n"
            "    for statement in STATEMENTS:\n"
            "        op.execute(statement)\n\n\n"
            "def downgrade() -> None:\n"
            "    pass\n"
        )
        self.revisions.append(revision)
        return revision

    def config(self, url: str | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.dir))
        config.attributes["url"] = url or self.url
        return alembic_cleandb.enable(config)

    def upgrade(self, target: str = "heads", url: str | None = None) -> None:
        command.upgrade(self.config(url), target)


@pytest.fixture
def roles() -> Iterator[list[str]]:
    """Roles a test creates (prefix pgschema_); dropped after the test's databases."""
    created: list[str] = []
    yield created
    admin = server_engine("postgresql")
    with admin.connect() as c:
        for name in created:
            c.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
    admin.dispose()


@pytest.fixture
def databases(tmp_path: Path, roles: list[str]) -> Iterator[Databases]:
    dbs = Databases("postgresql", tmp_path)
    yield dbs
    dbs.drop_all()


@pytest.fixture
def pg(databases: Databases) -> str:
    return databases.create()


@pytest.fixture
def migrations(pg: str, tmp_path: Path) -> Migrations:
    return Migrations(tmp_path / "migrations", pg)


def scalar(url: str, statement: str, **params: Any) -> Any:
    with connect(url) as c:
        return c.execute(sa.text(statement), params).scalar()


def fetch(url: str, statement: str) -> list[tuple[Any, ...]]:
    with connect(url) as c:
        return [tuple(r) for r in c.execute(sa.text(statement))]


def marks(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM cleandb.dirty"))


def new_role(roles: list[str], kind: str, options: str = "") -> str:
    name = f"pgschema_{kind}_{uuid.uuid4().hex[:8]}"
    admin = server_engine("postgresql")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE ROLE {name} LOGIN NOSUPERUSER {options}")
    admin.dispose()
    roles.append(name)
    return name


def as_role(url: str, role: str) -> str:
    return sa.make_url(url).set(username=role).render_as_string(hide_password=False)


# -- 1. least-privilege application roles ------------------------------------------------------


def test_an_application_role_with_only_dml_grants_writes_and_is_tracked(
    pg: str, migrations: Migrations, roles: list[str]
) -> None:
    """Migrations and the install run as the owner; the application connects as a role that may
    only SELECT/INSERT/UPDATE/DELETE its tables and use their sequences. Its writes work and are
    tracked; the reset runs as the installing role, and the application role's own attempt is
    refused with a message that says so (its marks are kept)."""
    migrations.step(
        "CREATE TABLE account (id serial PRIMARY KEY, name text NOT NULL)",
        "CREATE TABLE plan (id int PRIMARY KEY, label text NOT NULL)",
        "INSERT INTO plan VALUES (1, 'free'), (2, 'pro')",
    )
    migrations.upgrade()
    app = new_role(roles, "app")
    execute(
        pg,
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app}",
    )
    # the mark function runs as the installer, with a pinned search_path
    with connect(pg) as c:
        secdef, config = c.execute(
            sa.text(
                "SELECT p.prosecdef, p.proconfig FROM pg_proc p JOIN pg_namespace n "
                "ON n.oid = p.pronamespace WHERE n.nspname = 'cleandb' AND p.proname = 'mark_table'"
            )
        ).one()
    assert secdef is True and config == ["search_path=pg_catalog, pg_temp"]
    baseline = dump(pg)
    app_url = as_role(pg, app)
    execute(
        app_url,
        "INSERT INTO account (name) VALUES ('a'), ('b')",
        "UPDATE plan SET label = 'changed' WHERE id = 2",
        "DELETE FROM plan WHERE id = 1",
    )
    # the application role may not read the tracking's own tables
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        scalar(app_url, "SELECT count(*) FROM cleandb.tables")
    with pytest.raises(ResetError, match="must run as the role that installed tracking"):
        alembic_cleandb.clean(app_url)
    assert marks(pg) == 2
    assert alembic_cleandb.clean(pg) == 2
    assert dump(pg) == baseline
    assert scalar(app_url, "INSERT INTO account (name) VALUES ('c') RETURNING id") == 1
    assert alembic_cleandb.clean(pg) == 1


# -- 2. any column and table name --------------------------------------------------------------

BUILTIN_TYPE_NAMES = ("line", "point", "path", "circle", "money", "text", "json")


def test_tables_named_like_builtin_types_and_columns_named_like_the_resets_aliases(
    pg: str, migrations: Migrations
) -> None:
    statements = []
    for name in BUILTIN_TYPE_NAMES:
        statements += [
            f'CREATE TABLE "{name}" (id int PRIMARY KEY, v text)',
            f"INSERT INTO \"{name}\" VALUES (1, 'seed {name}'), (2, 'other')",
        ]
    statements += [
        "CREATE TABLE aliases (id int PRIMARY KEY, x text, l text, b text, cur text, u text)",
        "INSERT INTO aliases VALUES (1, 'x', 'l', 'b', 'cur', 'u')",
        "CREATE TABLE keyless (x int, l int)",
        "INSERT INTO keyless VALUES (1, 2)",
    ]
    migrations.step(*statements)
    migrations.upgrade()
    baseline = dump(pg)
    for _ in range(2):  # (a reset that fails keeps failing: do it twice)
        writes = []
        for name in (*BUILTIN_TYPE_NAMES, "aliases"):
            writes += [
                f'UPDATE "{name}" SET id = id + 10 WHERE id = 2',
                f'INSERT INTO "{name}" (id) VALUES (3)',
                f'UPDATE "{name}" SET {"v" if name != "aliases" else "x"} = NULL WHERE id = 1',
            ]
        writes += ["INSERT INTO keyless VALUES (3, 4)", "UPDATE keyless SET x = 0 WHERE l = 2"]
        execute(pg, *writes)
        assert alembic_cleandb.clean(pg) == len(BUILTIN_TYPE_NAMES) + 2
        assert dump(pg) == baseline


# -- 3. counter positions set by migrations ----------------------------------------------------


def test_counter_positions_set_by_later_migrations_are_the_baseline(
    pg: str, migrations: Migrations
) -> None:
    """After tracking is installed, a migration step setval()s one table's sequence (invoice
    numbers from 1000), restarts another with ALTER SEQUENCE ... RESTART, and seeds one of two
    tables that share a sequence; a sequence tied to no table is advanced by a test's explicit
    nextval(). Each reset puts every one back where the migrations left it."""
    migrations.step(
        "CREATE TABLE invoice (id serial PRIMARY KEY, v text)",
        "CREATE TABLE ticket (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)",
        "CREATE SEQUENCE shared_seq",
        "CREATE TABLE book (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), v text)",
        "CREATE TABLE film (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), v text)",
        "CREATE SEQUENCE order_number",
        'CREATE TABLE "order" (id int PRIMARY KEY, number bigint NOT NULL)',
    )
    migrations.upgrade("s001")
    migrations.upgrade("cleandb@head")
    migrations.step(
        "SELECT setval(pg_get_serial_sequence('invoice', 'id'), 999)",
        "ALTER SEQUENCE ticket_id_seq RESTART WITH 500",
        "INSERT INTO book (v) VALUES ('seed 1'), ('seed 2')",
        "SELECT setval('order_number', 41)",
    )
    migrations.upgrade("heads")

    def round_trip() -> tuple[Any, ...]:
        return (
            scalar(pg, "INSERT INTO invoice (v) VALUES ('x') RETURNING id"),
            scalar(pg, "INSERT INTO ticket (v) VALUES ('x') RETURNING id"),
            scalar(pg, "INSERT INTO film (v) VALUES ('x') RETURNING id"),
            scalar(
                pg,
                "INSERT INTO \"order\" VALUES (1, nextval('order_number')) RETURNING number",
            ),
        )

    assert round_trip() == (1000, 500, 3, 42)
    assert alembic_cleandb.clean(pg) == 4
    assert round_trip() == (1000, 500, 3, 42)
    assert alembic_cleandb.clean(pg) == 4
    # only film was written: the shared sequence goes back to where book's seed rows left it
    execute(pg, "INSERT INTO film (v) VALUES ('y'), ('z')")
    assert alembic_cleandb.clean(pg) == 1
    assert scalar(pg, "INSERT INTO book (v) VALUES ('new') RETURNING id") == 3
    assert alembic_cleandb.clean(pg) == 1
    assert rows(pg, "book") == [(1, "seed 1"), (2, "seed 2")]


# -- 4. foreign keys from untracked tables ----------------------------------------------------

_AUDIT = (
    "CREATE TABLE audit (id serial PRIMARY KEY, what text)",
    "CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'audit is append-only'; END $$",
    "CREATE TRIGGER append_only BEFORE DELETE OR UPDATE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION append_only()",
)


def test_a_foreign_key_from_an_untracked_table_changes_nothing_else(
    pg: str, migrations: Migrations
) -> None:
    """ext is not a tracked schema. Its foreign keys must not turn the application's triggers
    and foreign-key actions back on for the reset: an append-only audit table still resets, and
    ON DELETE CASCADE from ext does not empty it when a keyless tracked table is restored."""
    migrations.step(
        *_AUDIT,
        "CREATE TABLE country (code text NOT NULL UNIQUE, name text)",  # no primary key
        "INSERT INTO country VALUES ('fr', 'France'), ('de', 'Germany')",
        "CREATE SCHEMA ext",
        "CREATE TABLE ext.address (street text, "
        "country text REFERENCES public.country (code) ON DELETE CASCADE)",
        "INSERT INTO ext.address VALUES ('rue 1', 'fr'), ('str 2', 'de')",
    )
    migrations.upgrade()
    baseline = dump(pg)
    execute(pg, "INSERT INTO audit (what) VALUES ('x')", "UPDATE country SET name = 'FR'")
    assert alembic_cleandb.clean(pg) == 2
    assert dump(pg) == baseline
    assert fetch(pg, "SELECT * FROM ext.address ORDER BY 1") == [("rue 1", "fr"), ("str 2", "de")]
    assert marks(pg) == 0


def test_references_to_and_from_untracked_tables_are_checked_precisely(
    pg: str, migrations: Migrations
) -> None:
    """The reset refuses - keeping its marks - exactly when a row of an untracked table
    references a row it removes, or a row it restores references an untracked row a test
    deleted; otherwise it runs with checks off."""
    migrations.step(
        "CREATE TABLE customer (id serial PRIMARY KEY, name text)",
        "INSERT INTO customer (name) VALUES ('seed')",
        "CREATE SCHEMA ext",
        "CREATE TABLE ext.note (id serial PRIMARY KEY, "
        "customer_id int REFERENCES public.customer ON DELETE CASCADE)",
        "INSERT INTO ext.note (customer_id) VALUES (1)",
        "CREATE TABLE ext.region (id int PRIMARY KEY)",
        "INSERT INTO ext.region VALUES (1), (2)",
        "CREATE TABLE shop (id int PRIMARY KEY, region_id int REFERENCES ext.region)",
        "INSERT INTO shop VALUES (1, 1)",
    )
    migrations.upgrade()
    baseline = dump(pg)
    # a row of ext.note references a customer the reset would remove: refused
    with connect(pg) as c:
        new = c.execute(sa.text("INSERT INTO customer (name) VALUES ('new') RETURNING id")).scalar()
        c.execute(sa.text("INSERT INTO ext.note (customer_id) VALUES (:c)"), {"c": new})
    with pytest.raises(ResetError) as info:
        alembic_cleandb.clean(pg)
    message = str(info.value)
    assert "ext.note" in message and "customer" in message and "foreign key" in message
    assert "not tracked" in message
    assert scalar(pg, "SELECT count(*) FROM customer") == 2 and marks(pg) == 1
    execute(pg, "DELETE FROM ext.note WHERE customer_id = :c", c=new)
    assert alembic_cleandb.clean(pg) == 1
    assert dump(pg) == baseline
    assert scalar(pg, "SELECT count(*) FROM ext.note") == 1  # (no cascade: the seed note stays)
    # a restored row of shop would reference an ext.region row a test deleted: refused
    execute(pg, "DELETE FROM shop", "DELETE FROM ext.region WHERE id = 1")
    with pytest.raises(ResetError, match=r"shop.*ext\.region"):
        alembic_cleandb.clean(pg)
    execute(pg, "INSERT INTO ext.region VALUES (1)")
    assert alembic_cleandb.clean(pg) == 1
    assert dump(pg) == baseline


# -- 5. table inheritance ---------------------------------------------------------------------


def test_inheritance_parent_and_child_each_restore_their_own_rows(
    pg: str, migrations: Migrations
) -> None:
    migrations.step(
        "CREATE TABLE animal (id int PRIMARY KEY, name text)",
        "CREATE TABLE dog (breed text) INHERITS (animal)",
        "INSERT INTO animal VALUES (1, 'generic')",
        "INSERT INTO dog VALUES (2, 'rex', 'lab')",
    )
    migrations.upgrade()
    only_animal = "SELECT id, name FROM ONLY animal ORDER BY id"

    def state() -> tuple[Any, Any]:
        with connect(pg) as c:
            return (
                c.execute(sa.text(only_animal)).all(),
                c.execute(sa.text("SELECT * FROM dog")).all(),
            )

    baseline = state()
    assert baseline == ([(1, "generic")], [(2, "rex", "lab")])
    execute(pg, "INSERT INTO animal VALUES (3, 'cat')", "INSERT INTO dog VALUES (4, 'fido', 'pug')")
    assert alembic_cleandb.clean(pg) == 2
    assert state() == baseline
    execute(pg, "UPDATE animal SET name = 'renamed'")  # through the parent: reaches dog's rows
    assert alembic_cleandb.clean(pg) == 2
    assert state() == baseline
    execute(pg, "DELETE FROM animal")
    assert alembic_cleandb.clean(pg) == 2
    assert state() == baseline


# -- 6. writes in replica mode ----------------------------------------------------------------


def test_writes_made_in_replica_mode_are_tracked(pg: str, migrations: Migrations) -> None:
    """Bulk fixture loaders write with session_replication_role = replica: tracked too. The
    reset's own writes (in replica mode) leave no mark."""
    migrations.step(
        "CREATE TABLE item (id serial PRIMARY KEY, v text)",
        "CREATE TABLE kind (id int PRIMARY KEY, v text)",
        "INSERT INTO kind VALUES (1, 'seed')",
    )
    migrations.upgrade()
    baseline = dump(pg)
    with connect(pg) as c:
        c.execute(sa.text("SET session_replication_role = replica"))
        c.execute(sa.text("INSERT INTO item (v) VALUES ('loaded')"))
        c.execute(sa.text("UPDATE kind SET v = 'loaded'"))
    assert alembic_cleandb.clean(pg) == 2
    assert dump(pg) == baseline
    assert marks(pg) == 0
    with Cleaner(pg) as cleaner:
        execute(pg, "INSERT INTO item (v) VALUES ('x')")
        assert cleaner.reset() == 1
        assert marks(pg) == 0
        assert cleaner.reset() == 0


# -- 7. row-level security --------------------------------------------------------------------


def test_forced_row_level_security_is_refused_at_install_unless_the_role_bypasses_it(
    pg: str, migrations: Migrations, roles: list[str]
) -> None:
    owner = new_role(roles, "owner")
    with connect(pg) as c:
        database = q(c, str(sa.make_url(pg).database))
        c.execute(sa.text(f"ALTER DATABASE {database} OWNER TO {owner}"))
        c.execute(sa.text(f"ALTER SCHEMA public OWNER TO {owner}"))
    owner_url = as_role(pg, owner)
    migrations.step(
        "CREATE TABLE secret (id int PRIMARY KEY, tenant text)",
        "INSERT INTO secret VALUES (1, 'a'), (2, 'b')",
        "ALTER TABLE secret ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE secret FORCE ROW LEVEL SECURITY",
        "CREATE POLICY only_a ON secret USING (tenant = 'a')",
    )
    migrations.upgrade("s001", url=owner_url)
    with pytest.raises(Exception) as info:
        migrations.upgrade("cleandb@head", url=owner_url)
    message = str(info.value)
    assert "cannot track table secret" in message and "row-level security" in message
    assert "BYPASSRLS" in message and "exclude" in message
    assert scalar(pg, "SELECT to_regnamespace('cleandb')") is None  # nothing was left behind
    # the way out: a role that bypasses row-level security reads (and restores) every row
    execute(pg, f"ALTER ROLE {owner} BYPASSRLS")
    migrations.upgrade("cleandb@head", url=owner_url)
    execute(owner_url, "DELETE FROM secret", "INSERT INTO secret VALUES (3, 'c')")
    assert alembic_cleandb.clean(owner_url) == 1
    assert rows(pg, "secret") == [(1, "a"), (2, "b")]


# -- 8. keys equal but not identical ----------------------------------------------------------


def test_keys_equal_but_not_identical_are_restored_byte_for_byte(
    pg: str, migrations: Migrations
) -> None:
    migrations.step(
        "CREATE EXTENSION IF NOT EXISTS citext",
        "CREATE TABLE tag (name citext PRIMARY KEY, uses int)",
        "INSERT INTO tag VALUES ('Python', 1)",
        "CREATE TABLE price (amount numeric PRIMARY KEY, label text)",
        "INSERT INTO price VALUES (1.0, 'one')",
    )
    migrations.upgrade()
    execute(pg, "UPDATE tag SET name = 'PYTHON'", "UPDATE price SET amount = 1.00")
    assert alembic_cleandb.clean(pg) == 2
    assert scalar(pg, "SELECT name::text FROM tag") == "Python"
    assert scalar(pg, "SELECT amount::text FROM price") == "1.0"
