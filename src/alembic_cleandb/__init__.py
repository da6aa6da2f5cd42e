"""alembic-cleandb: keep a test database clean between tests.

An Alembic branch (``cleandb``) installs dirty tracking in a test database; after every test
the pytest plugin calls one database-side routine that resets only the tables that test wrote
to, back to the rows and sequence positions the migrations left.

Public API:

- :func:`env_options` — ``context.configure(..., **env_options())`` in ``env.py``;
- :func:`enable` — add the ``cleandb`` branch to an Alembic ``Config`` for test setup;
- :func:`migrate` — create and migrate a test database known only at run time, tracking
  included (``migrate(url, "alembic.ini")``);
- :func:`clean`, :func:`set_baseline`, :func:`sync`, :func:`adopt` — run-time calls;
- :class:`Cleaner` — an open connection whose ``reset()`` is the per-test call, and whose
  ``scope()`` (a :class:`Scope`) makes seed data the baseline until the scope ends;
- ``op.install_clean_tracking()`` / ``op.drop_clean_tracking()`` — registered by
  :func:`env_options` or ``import alembic_cleandb.operations``;
- :class:`CleanDBError` and its subclasses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .backends.base import SCHEMA_VERSION
from .cleaner import Cleaner, DatabaseInfo, Scope, adopt, clean, set_baseline, sync
from .errors import (
    CleanDBError,
    ConfigurationError,
    NotInstalledError,
    ResetError,
    UnsafeDatabaseError,
    VersionMismatchError,
)

if TYPE_CHECKING:
    from .environment import BRANCH, REVISION, VERSIONS, enable, env_options
    from .testing.migrate import migrate_url as migrate

__version__ = "0.1.0"

# The Alembic side (and Alembic itself, ~0.4 s to import) loads on first use, so that the
# pytest plugin, which every pytest run of the environment imports, stays light. Using any of
# these, as env.py does, also registers op.install_clean_tracking()/op.drop_clean_tracking().
_ALEMBIC_SIDE = {"BRANCH", "REVISION", "VERSIONS", "enable", "env_options"}


def __getattr__(name: str) -> Any:
    if name == "migrate":
        return importlib.import_module(".testing.migrate", __name__).migrate_url
    if name in _ALEMBIC_SIDE:
        return getattr(importlib.import_module(".environment", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BRANCH",
    "REVISION",
    "SCHEMA_VERSION",
    "VERSIONS",
    "Cleaner",
    "CleanDBError",
    "ConfigurationError",
    "DatabaseInfo",
    "NotInstalledError",
    "ResetError",
    "Scope",
    "UnsafeDatabaseError",
    "VersionMismatchError",
    "adopt",
    "clean",
    "enable",
    "env_options",
    "migrate",
    "set_baseline",
    "sync",
]
