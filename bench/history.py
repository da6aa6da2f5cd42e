"""A generated Alembic migration history (for bench/migrate_bench.py and the tests).

``write_history(root, steps)`` writes ``root/env.py`` (wired with ``env_options()``,
``transaction_per_migration`` from ``config.attributes``; ``sync_every_step`` drops the step
count so the hook syncs after every step, as before 2026-12-03) and ``root/versions/`` with a linear
chain of ``steps`` revisions. The steps cycle through what applications do: every fifth creates
a table, every tenth inserts two seed rows into a table an earlier step created, the others add
a column or an index to an existing table. ``fail_at`` makes that step raise after its work.
Table names need quoting (``Item-3``).
"""

from __future__ import annotations

from pathlib import Path

ENV = '''"""env.py of a generated history, wired with alembic-cleandb's hook."""

from alembic import context
from sqlalchemy import create_engine, pool

import alembic_cleandb

config = context.config


def run() -> None:
    options = alembic_cleandb.env_options()
    if config.attributes.get("sync_every_step"):  # the hook as it was: no step count known
        options.pop("fn", None)
    engine = create_engine(config.attributes["url"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            transaction_per_migration=bool(config.attributes.get("per_migration")),
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
'''

STEP = '''"""generated step {i}"""

import sqlalchemy as sa
from alembic import op

revision = "s{i:04d}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def table(i: int) -> str:
    return f"Item-{i}"


def step_body(i: int, fail: bool = False) -> str:
    """Step ``i`` (1-based) of the history."""
    created = [j for j in range(1, i) if j % 5 == 1]  # tables created by earlier steps
    if i % 5 == 1:
        lines = [
            f"    op.create_table({table(i)!r}, sa.Column('id', sa.Integer, primary_key=True),",
            "                    sa.Column('name', sa.String(50)))",
        ]
    elif i % 10 == 0 and created:
        t = table(created[-1])
        lines = [
            f"    t = sa.table({t!r}, sa.column('name', sa.String))",
            f"    op.bulk_insert(t, [{{'name': 'seed-{i}-a'}}, {{'name': 'seed-{i}-b'}}])",
        ]
    elif created and i % 2 == 0:
        t = table(created[(i // 2) % len(created)])
        lines = [f"    op.add_column({t!r}, sa.Column('c{i}', sa.Integer))"]
    elif created:
        t = table(created[(i // 3) % len(created)])
        lines = [f"    op.create_index('ix_{i}', {t!r}, ['name'])"]
    else:
        lines = ["    pass"]
    if fail:
        lines.append(f"    raise RuntimeError('step {i} fails on purpose')")
    return "\n".join(lines)


def write_history(root: Path, steps: int, fail_at: int | None = None) -> Path:
    """Write the environment and ``steps`` revisions under ``root``; returns ``root``."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "env.py").write_text(ENV)
    for i in range(1, steps + 1):
        down = f"s{i - 1:04d}" if i > 1 else None
        body = step_body(i, fail=i == fail_at)
        (versions / f"s{i:04d}.py").write_text(STEP.format(i=i, down=down, body=body))
    return root


def expected(steps: int) -> dict[str, list[str]]:
    """Each table the history creates, with the seed names it holds after ``steps`` steps."""
    tables: dict[str, list[str]] = {}
    for i in range(1, steps + 1):
        created = [j for j in range(1, i) if j % 5 == 1]
        if i % 5 == 1:
            tables[table(i)] = []
        elif i % 10 == 0 and created:
            tables[table(created[-1])] += [f"seed-{i}-a", f"seed-{i}-b"]
    return tables
