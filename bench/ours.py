"""Adapter for alembic-cleandb: the only place that knows its API. Fix here when it changes.

- install: ``Operations(MigrationContext.configure(conn)).install_clean_tracking(exclude=...)``
           + commit
- drop:    ``Operations(...).drop_clean_tracking()`` + commit
- reset:   ``alembic_cleandb.Cleaner(url).reset()`` (PostgreSQL ``SELECT cleandb_truncate()``,
           MariaDB ``CALL cleandb_reset(TRUE)``, what ``CALL cleandb_truncate()`` calls, on its
           raw DBAPI connection; ``restart_ids=False``: ``SELECT cleandb_truncate(false)``,
           ``CALL cleandb_reset(FALSE)``)
- pytest:  pytest11 entry point ``alembic_cleandb.testing.plugin`` configured by the ini
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


class Resetter:
    """The per-test reset of one database, opened once, as the pytest plugin does:
    ``alembic_cleandb.Cleaner(url)`` and its ``reset()`` after every test (on PostgreSQL and
    MariaDB that calls the database-side routine on the Cleaner's raw DBAPI connection; the
    Cleaner also configures that connection, e.g. PostgreSQL's replica mode for the reset's
    own writes, which a bare ``SELECT cleandb_truncate()`` on a fresh connection would not
    have). SQLite has no stored routines: the Cleaner resets from Python.
    """

    def __init__(self, backend: Any, db: str, restart_ids: bool = True) -> None:
        self.backend_name = backend.name
        mod, _ = load()
        url = backend.sa_url(db).render_as_string(hide_password=False)
        # (restart_ids passed only when False: code from before the option has no such argument)
        self._cleaner = mod.Cleaner(url) if restart_ids else mod.Cleaner(url, restart_ids=False)
        self.via = "Cleaner(url).reset(), as the plugin's per-test fixture"

    def __call__(self) -> None:
        self._cleaner.reset()

    def close(self) -> None:
        self._cleaner.close()


# ------------------------------------------------------------------ pytest plugin
PLUGIN_MODULE = "alembic_cleandb.testing.plugin"


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


def plugin_ini_lines(sa_url: str, restart_ids: str = "always") -> list[str]:
    """Lines for the [pytest] section of the generated suite that enable our plugin."""
    lines = ["cleandb_urls = " + sa_url]
    if restart_ids != "always":
        lines.append("cleandb_restart_ids = " + restart_ids)
    return lines
