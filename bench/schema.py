"""Generated benchmark schemas: N tables, bigint identity keys, ~20% with a FK, a few seeded.

Table i (1-based) is ``t0001``..; every fifth table (i % 5 == 0) has a nullable
``parent_id`` referencing an earlier table chosen by a seeded RNG; ``max(2, N // 25)``
tables spread over the schema get SEED_ROWS rows each (the "rows that migrations seeded").
Writes in the benchmark leave ``parent_id`` NULL, so every strategy can empty any table.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import sqlalchemy as sa

SEED_ROWS = 10


@dataclass(frozen=True)
class Schema:
    n: int
    metadata: sa.MetaData
    names: list[str]  # creation order (parents before children)
    seeded: dict[str, int]  # table -> seeded row count
    fk_tables: list[str]

    def plain_tables(self) -> list[str]:
        """Tables with neither a FK nor seed rows (write-side benchmark targets)."""
        return [t for t in self.names if t not in self.seeded and t not in self.fk_tables]


#: The write benchmark's untracked table: a twin of the write table in the tracked database,
#: excluded from tracking at install (see run.py ``run_write``).
UNTRACKED = "w_untracked"


def untracked_twin(schema: Schema) -> sa.Table:
    """A copy of the write table (the last plain table) named :data:`UNTRACKED`."""
    source = schema.metadata.tables[schema.plain_tables()[-1]]
    return source.to_metadata(sa.MetaData(), name=UNTRACKED)


def table_name(i: int) -> str:
    return "t%04d" % i


def build_schema(n: int, seed: int = 1) -> Schema:
    rng = random.Random(seed * 1_000_003 + n)
    md = sa.MetaData()
    names: list[str] = []
    fk_tables: list[str] = []
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    for i in range(1, n + 1):
        name = table_name(i)
        cols: list[sa.Column] = [
            sa.Column("id", id_type, sa.Identity(), primary_key=True),
            sa.Column("label", sa.String(40), nullable=False),
            sa.Column("val", sa.Integer, nullable=False),
        ]
        if i % 5 == 0:
            parent = names[rng.randrange(len(names))]
            cols.append(
                sa.Column("parent_id", sa.BigInteger, sa.ForeignKey(parent + ".id"), nullable=True)
            )
            fk_tables.append(name)
        sa.Table(name, md, *cols, sqlite_autoincrement=True)
        names.append(name)
    n_seeded = max(2, n // 25)
    step = max(1, n // n_seeded)
    seeded = {names[j]: SEED_ROWS for j in range(1, n, step)[:n_seeded]}
    return Schema(n=n, metadata=md, names=names, seeded=seeded, fk_tables=fk_tables)


def create_schema(engine: sa.Engine, schema: Schema) -> None:
    """CREATE all tables and insert the seed rows (what "the migrations" leave behind)."""
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for name, count in schema.seeded.items():
            table = schema.metadata.tables[name]
            conn.execute(table.insert(), [{"label": "seed%d" % j, "val": j} for j in range(count)])
