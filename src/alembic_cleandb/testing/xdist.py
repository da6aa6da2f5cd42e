"""One database per pytest-xdist worker: names, creation from the base database, removal.

The controller process prepares every copy before the workers start (they get its URL through
``workerinput``), so no worker ever connects to the base database: PostgreSQL copies a
database only while nobody is connected to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from .._connect import connect, create_engine, safe_url
from .._guard import allowed_name, is_test_database
from ..backends import Backend, backend_for, backend_for_url
from ..backends.base import quote
from ..errors import CleanDBError, ConfigurationError

__all__ = ["WORKER_DBS", "worker_url", "prepare", "drop", "allowance", "fingerprint"]

#: ``recreate``: fresh copies every run, dropped at its end. ``reuse``: kept after the run and
#: reused by the next one while their alembic heads and tracking version match the base's.
WORKER_DBS = ("recreate", "reuse")


def worker_url(url: str, worker_id: str) -> str:
    """The URL of ``worker_id``'s copy of ``url``: database ``<name>_<worker_id>`` (SQLite:
    file ``<stem>_<worker_id><suffix>``). The driver and query keep the form the user wrote."""
    parsed = make_url(url)
    copy = backend_for_url(parsed).copy_url(parsed, worker_id)
    return copy.render_as_string(hide_password=False)


def _name(url: str) -> str:
    return backend_for_url(url).guard_name(make_url(url))


def allowance(base: str, copy: str) -> str | None:
    """The guard's allowance for ``copy`` (its name), passed as ``allowed_database``: set when
    the user allowed ``base`` explicitly (its name lacks ``test``) — allowing a database allows
    its copies. ``None`` when the copy needs none."""
    if _name(base) != allowed_name() or is_test_database(_name(copy)):
        return None
    return _name(copy)


def prepare_one(
    base: str, worker_id: str, mode: str, base_print: str | None, allow: str | None
) -> str:
    """Create (or, in ``reuse`` mode, keep) ``worker_id``'s copy of ``base``; its URL.

    ``allow``: the copy's name, for the guard, when the user allowed the base explicitly. It
    is an argument all the way down, never the process environment, so that copies can be
    made by several threads at once.
    """
    copy = worker_url(base, worker_id)
    admin = backend_for_url(base)
    if mode == "reuse" and base_print is not None and fingerprint(copy) == base_print:
        return copy
    try:
        if admin.exists(make_url(copy)):
            admin.drop(make_url(copy))
        admin.copy(make_url(base), make_url(copy), allow)
    except CleanDBError:
        raise
    except Exception as exc:  # SQLAlchemy's, or the driver's own from a raw cursor
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigurationError(
            f"alembic-cleandb: cannot copy {safe_url(base)!r} to {safe_url(copy)!r} for "
            f"pytest-xdist worker {worker_id}: {reason}"
        ) from exc
    return copy


def prepare(bases: Sequence[str], worker_ids: Sequence[str], mode: str) -> dict[str, list[str]]:
    """Every worker's copies of every base, made in parallel: ``{worker_id: [url, ...]}``."""
    prints = [fingerprint(b) if mode == "reuse" else None for b in bases]
    jobs = [(w, i) for w in worker_ids for i in range(len(bases))]
    result: dict[str, list[str]] = {w: [""] * len(bases) for w in worker_ids}
    if not jobs:
        return result
    allow = {(w, i): allowance(bases[i], worker_url(bases[i], w)) for w, i in jobs}
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        futures = {
            pool.submit(prepare_one, bases[i], w, mode, prints[i], allow[w, i]): (w, i)
            for w, i in jobs
        }
        errors = []
        for future, (w, i) in futures.items():
            try:
                result[w][i] = future.result()
            except Exception as exc:
                errors.append(exc)
    if errors:  # leave no half-made set behind (a failed copy may exist too)
        with suppress(Exception):  # what made a copy fail may stop its removal: report that
            drop([worker_url(bases[i], w) for w, i in jobs])
        raise errors[0]
    return result


def drop(urls: Sequence[str]) -> None:
    """Drop the copies ``urls``, in parallel; every drop is tried, the first error raised."""
    todo = [u for u in urls if u]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
        futures = [pool.submit(lambda u: backend_for_url(u).drop(make_url(u)), u) for u in todo]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]


def fingerprint(url: str | URL) -> str | None:
    """What a reusable copy must share with its base: alembic heads and tracking version.

    ``None`` when the database does not exist or cannot be read.
    """
    engine = create_engine(url)
    try:
        try:
            connection = connect(engine)
        except CleanDBError:  # no such database (or server): nothing to reuse
            return None
        with connection:
            try:
                backend = backend_for(connection.dialect.name)
                version = backend.installed_version(connection)
                heads = alembic_heads(connection, backend)
            except sa.exc.DBAPIError:
                return None
        return f"tracking={version};alembic={','.join(heads)}"
    finally:
        engine.dispose()


def alembic_heads(connection: Connection, backend: Backend) -> list[str]:
    """The revisions in the database's Alembic version table, sorted.

    A custom ``version_table`` (and ``version_table_schema``) is found by its ``version_num``
    column; among several such tables, the one holding a cleandb revision wins, then
    ``alembic_version``.
    """
    tables: dict[str, list[str]] = {}
    for schema, table in connection.exec_driver_sql(backend.version_tables_sql):
        name = quote(connection, str(table))
        if schema is not None:
            name = f"{quote(connection, str(schema))}.{name}"
        rows = connection.exec_driver_sql(f"SELECT version_num FROM {name}")
        heads = sorted(str(r[0]) for r in rows)
        if any(h.startswith("cleandb_") for h in heads):
            return heads
        tables[str(table)] = heads
    if "alembic_version" in tables:
        return tables["alembic_version"]
    return next(iter(tables.values()), [])
