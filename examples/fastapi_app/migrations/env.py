"""env.py: Alembic's default (sync) template plus one line for alembic-cleandb."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

import alembic_cleandb
from todo.models import Base

config = context.config
url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        **alembic_cleandb.env_options(),  # the one line alembic-cleandb needs
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            **alembic_cleandb.env_options(),  # the one line alembic-cleandb needs
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
