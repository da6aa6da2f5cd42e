"""Adapter for alembic-cleandb: the only place that knows its API. Fix here when it changes.

- install: ``Operations(MigrationContext.configure(conn)).install_clean_tracking(exclude=...)``
           + commit
- drop:    ``Operations(...).drop_clean_tracking()`` + commit
- reset:   PostgreSQL ``SELECT cleandb_truncate()``, MariaDB ``CALL cleandb_truncate()``
           (raw DBAPI connection), SQLite ``alembic_cleandb.Cleaner(url).reset()``
- pytest:  pytest11 entry point ``alembic_cleandb.pytest_plugin`` configured by the ini
           option ``cleandb_urls``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from typing import Any

import sqlalchemy as sa

REPO_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

_state: dict[str, Any] = {}


def load() -> tuple[Any | None, str]:
    """Import alembic_cleandb; returns (module or None, a one-line note)."""
    if "mod" in _state:
        return _state["mod"], _state["note"]
    mod, note = None, ""
    try:
        importlib.import_module("alembic_cleandb.operations")  # registers the Alembic ops
        mod = importlib.import_module("alembic_cleandb")
        note = "installed"
    except Exception as exc:  # not installed yet, or half-written
        first = f"{type(exc).__name__}: {exc}"
        if REPO_SRC not in sys.path and os.path.isdir(os.path.join(REPO_SRC, "alembic_cleandb")):
            sys.path.insert(0, REPO_SRC)
            sys.modules.pop("alembic_cleandb", None)
            try:
                importlib.import_module("alembic_cleandb.operations")
                mod = importlib.import_module("alembic_cleandb")
                note = "imported from src/ (not pip-installed; pytest plugin unavailable)"
            except Exception as exc2:
                note = f"not importable: {type(exc2).__name__}: {exc2}"
        else:
            note = "not importable: " + first
    _state["mod"], _state["note"] = mod, note
    return mod, note


def unavailable_reason() -> str | None:
    mod, note = load()
    if mod is None:
        return "alembic_cleandb " + note
    from alembic.operations import Operations

    if not hasattr(Operations, "install_clean_tracking"):
        return "alembic_cleandb imported but op.install_clean_tracking is not registered yet"
    return None


def _run_op(engine: sa.Engine, name: str, **kw: Any) -> None:
    """Run one of our Alembic operations (install/drop) on ``engine`` and commit."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    load()
    with engine.connect() as conn:
        getattr(Operations(MigrationContext.configure(conn)), name)(**kw)
        conn.commit()


def install(engine: sa.Engine, exclude: tuple[str, ...] = ()) -> None:
    _run_op(engine, "install_clean_tracking", exclude=list(exclude))


def drop(engine: sa.Engine) -> None:
    _run_op(engine, "drop_clean_tracking")


def reset(backend_name: str, dbapi_conn: Any) -> None:
    """One post-test reset on a raw DBAPI connection in autocommit mode (PostgreSQL, MariaDB)."""
    cur = dbapi_conn.cursor()
    try:
        if backend_name == "postgresql":
            cur.execute("SELECT cleandb_truncate()")
            cur.fetchall()
        elif backend_name == "mariadb":
            cur.execute("CALL cleandb_truncate()")
            while cur.nextset():
                pass
        else:
            raise ValueError("use make_resetter() for " + backend_name)
    finally:
        cur.close()


class Resetter:
    """The per-test reset of one database, opened once (as the pytest fixture does).

    PostgreSQL/MariaDB: the routine called on a raw DBAPI connection. SQLite has no stored
    routines: ``alembic_cleandb.Cleaner(url).reset()``, which is what the plugin's per-test
    fixture calls (``alembic_cleandb.clean(url)`` would also re-open and re-check the
    database on every call).
    """

    def __init__(self, backend: Any, db: str) -> None:
        self.backend_name = backend.name
        self._conn: Any = None
        self._cleaner: Any = None
        self.via = "routine on raw DBAPI connection"
        url = backend.sa_url(db).render_as_string(hide_password=False)
        if backend.name == "sqlite":
            mod, _ = load()
            self._cleaner = mod.Cleaner(url)
            self.via = "Cleaner(url).reset()"
            return
        self._conn = backend.connect(db)
        try:  # the routine may live in a schema off the search path: then ask the library
            reset(self.backend_name, self._conn)
        except Exception:
            self._conn.close()
            self._conn = None
            mod, _ = load()
            self._cleaner = mod.Cleaner(url)
            self.via = "Cleaner(url).reset() (unqualified routine call failed)"

    def __call__(self) -> None:
        if self._cleaner is not None:
            self._cleaner.reset()
        else:
            reset(self.backend_name, self._conn)

    def close(self) -> None:
        if self._cleaner is not None:
            self._cleaner.close()
        if self._conn is not None:
            self._conn.close()


# ------------------------------------------------------------------ pytest plugin
PLUGIN_MODULE = "alembic_cleandb.pytest_plugin"


def plugin_unavailable_reason() -> str | None:
    """None when the pytest11 entry point is installed in this interpreter's environment."""
    try:
        eps = importlib.metadata.entry_points(group="pytest11")
    except Exception as exc:  # pragma: no cover
        return f"cannot read entry points: {exc}"
    if not any(ep.value == PLUGIN_MODULE for ep in eps):
        return "alembic-cleandb is not pip-installed (no pytest11 entry point)"
    try:
        importlib.import_module(PLUGIN_MODULE)
    except Exception as exc:
        return f"{PLUGIN_MODULE} not importable: {type(exc).__name__}: {exc}"
    return None


def plugin_args() -> list[str]:
    """pytest arguments that load our plugin (plugin autoload is off in every suite run)."""
    return ["-p", PLUGIN_MODULE]


def plugin_ini_lines(sa_url: str) -> list[str]:
    """Lines for the [pytest] section of the generated suite that enable our plugin."""
    return ["cleandb_urls = " + sa_url]
