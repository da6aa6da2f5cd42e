"""One database per pytest-xdist worker: names, creation from the base database, removal.

The controller process prepares every copy before the workers start (they get its URL through
``workerinput``), so no worker ever connects to the base database: PostgreSQL copies a
database only while nobody is connected to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .._connect import safe_url
from .._guard import ALLOW_ENV, allowed_name, is_test_database, temporary_env
from .._sql import message
from ..backends._admin import admin_for, fingerprint
from ..errors import ConfigurationError

__all__ = ["WORKER_DBS", "worker_url", "prepare", "drop", "allowance"]

#: ``recreate``: fresh copies every run, dropped at its end. ``reuse``: kept after the run and
#: reused by the next one while their alembic heads and tracking version match the base's.
WORKER_DBS = ("recreate", "reuse")

_allow_lock = threading.Lock()


def worker_url(url: str, worker_id: str) -> str:
    """The URL of ``worker_id``'s copy of ``url``: database ``<name>_<worker_id>`` (SQLite:
    file ``<stem>_<worker_id><suffix>``). The driver and query keep the form the user wrote."""
    parsed = make_url(url)
    copy = admin_for(parsed).copy_url(parsed, worker_id)
    return copy.render_as_string(hide_password=False)


def _name(url: str) -> str:
    return admin_for(url).guard_name(make_url(url))


def allowance(base: str, copy: str) -> str | None:
    """The name ``CLEANDB_ALLOW_DATABASE`` must hold for ``copy``: set when the user allowed
    ``base`` explicitly (its name lacks ``test``) — allowing a database allows its copies."""
    if _name(base) != allowed_name() or is_test_database(_name(copy)):
        return None
    return _name(copy)


@contextmanager
def _allowing(name: str | None) -> Iterator[None]:
    with _allow_lock, temporary_env(ALLOW_ENV if name is not None else None, name):
        yield


def prepare_one(
    base: str, worker_id: str, mode: str, base_print: str | None, allow: str | None
) -> str:
    """Create (or, in ``reuse`` mode, keep) ``worker_id``'s copy of ``base``; its URL.

    ``allow``: the copy's name, for the guard, when the user allowed the base explicitly.
    """
    copy = worker_url(base, worker_id)
    admin = admin_for(base)
    with _allowing(allow):
        if mode == "reuse" and base_print is not None and fingerprint(copy) == base_print:
            return copy
        try:
            if admin.exists(make_url(copy)):
                admin.drop(make_url(copy))
            admin.copy(make_url(base), make_url(copy))
        except SQLAlchemyError as exc:
            reason = message(exc)
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
    # Decided before the threads start: _allowing() changes the environment while it runs.
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
        drop([worker_url(bases[i], w) for w, i in jobs])
        raise errors[0]
    return result


def drop(urls: Sequence[str]) -> None:
    for url in urls:
        if url:
            admin_for(url).drop(make_url(url))
