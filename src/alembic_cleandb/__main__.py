"""Command line: ``python -m alembic_cleandb init DIR`` and ``python -m alembic_cleandb demo``."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import alembic_cleandb
from alembic_cleandb._guard import temporary_env


def template_directory() -> Path:
    """The Alembic environment template (``migrations_template/`` in the source tree)."""
    packaged = Path(str(resources.files("alembic_cleandb"))) / "template"
    if (packaged / "env.py").is_file():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "migrations_template"
    if (source_tree / "env.py").is_file():
        return source_tree
    raise SystemExit("alembic-cleandb: the migrations template is missing from this install")


#: The template's env.py for async drivers (``init --async``); dropped from sync environments.
ASYNC_ENV = "env_async.py"


def init(
    directory: str, config_file: str, stdout: TextIO | None = None, async_: bool = False
) -> None:
    """Create an Alembic environment wired with the cleandb hook (like ``alembic init``;
    ``async_``: like ``alembic init -t async``, for asyncpg, aiosqlite, asyncmy, ...)."""
    said = io.StringIO()
    template = str(template_directory())
    with contextlib.redirect_stdout(said):  # (Alembic's init writes to sys.stdout itself)
        command.init(Config(config_file, stdout=said), directory, template=template)
    # Alembic lists every template file it copied; env_async.py never stays under that name.
    kept = [line for line in said.getvalue().splitlines(True) if ASYNC_ENV not in line]
    (stdout or sys.stdout).writelines(kept)
    target = Path(directory)
    if async_:
        (target / ASYNC_ENV).replace(target / "env.py")
    else:
        (target / ASYNC_ENV).unlink()


DEMO_MIGRATION = '''"""demo schema: a seeded lookup table and an orders table"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    status = op.create_table(
        "status",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20), nullable=False),
    )
    op.bulk_insert(status, [{"id": 1, "name": "new"}, {"id": 2, "name": "paid"}])
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status_id", sa.Integer, sa.ForeignKey("status.id")),
    )


def downgrade():
    op.drop_table("orders")
    op.drop_table("status")
'''


def demo() -> None:
    """Show a reset at work on a throw-away SQLite database."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'demo_test.db'}"
        config_file = str(root / "alembic.ini")
        with contextlib.redirect_stdout(io.StringIO()):
            init(str(root / "migrations"), config_file)
        (root / "migrations" / "versions" / "0001_demo.py").write_text(DEMO_MIGRATION)
        config = Config(config_file, ini_section="cleandb", stdout=io.StringIO())
        config.set_main_option("sqlalchemy.url", url)
        print("$ alembic -n cleandb upgrade heads   # migrations + tracking", flush=True)
        # The template's env.py prefers DATABASE_URL: the demo migrates its own database only.
        with temporary_env("DATABASE_URL", url):
            command.upgrade(config, "heads")
        engine = sa.create_engine(url)

        def show(title: str) -> None:
            with engine.connect() as c:
                orders = c.execute(sa.text("SELECT id, status_id FROM orders")).all()
                status = c.execute(sa.text("SELECT id, name FROM status")).all()
            print(f"{title:<38} orders={orders} status={status}", flush=True)

        show("after migrations (baseline):")
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO orders (status_id) VALUES (1), (2)"))
            c.execute(sa.text("UPDATE status SET name = 'PAID!' WHERE id = 2"))
        show("a test wrote:")
        reset = alembic_cleandb.clean(url)
        print(f"$ alembic_cleandb.clean(url)   # reset {reset} dirty tables", flush=True)
        show("after the reset:")
        with engine.begin() as c:
            new_id = c.execute(sa.text("INSERT INTO orders (status_id) VALUES (1) RETURNING id"))
            print(f"{'the next test inserts an order: id =':<38} {new_id.scalar()}")
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alembic_cleandb")
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create an Alembic environment wired with cleandb")
    p_init.add_argument("directory")
    p_init.add_argument("-c", "--config", default="alembic.ini", help="ini file to write")
    p_init.add_argument(
        "--async",
        dest="async_",
        action="store_true",
        help="env.py for an async driver (asyncpg, aiosqlite, asyncmy...): alembic init -t async",
    )
    sub.add_parser("demo", help="show a reset on a throw-away SQLite database")
    args = parser.parse_args(argv)
    if args.command == "init":
        init(args.directory, args.config, async_=args.async_)
    else:
        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
