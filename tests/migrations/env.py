"""env.py of the repository's example migrations, wired with alembic-cleandb's hook."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

import alembic_cleandb

config = context.config
url = (
    config.attributes.get("url")
    or context.get_x_argument(as_dictionary=True).get("url")
    or os.environ.get("DATABASE_URL")
    or config.get_main_option("sqlalchemy.url")
)
target_metadata = None


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        literal_binds=True,
        **alembic_cleandb.env_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=config.attributes.get("target_metadata"),
            **alembic_cleandb.env_options(),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=config.attributes.get("target_metadata"),
            **alembic_cleandb.env_options(),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
