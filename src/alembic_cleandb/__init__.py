"""alembic-cleandb: keep a test database clean between tests.

An Alembic branch (``cleandb``) installs dirty tracking in a test database; after every test
the pytest plugin calls one database-side routine that resets only the tables that test wrote
to, back to the rows and sequence positions the migrations left.

Public API:

- :func:`env_options` — ``context.configure(..., **env_options())`` in ``env.py``;
- :func:`enable` — add the ``cleandb`` branch to an Alembic ``Config`` for test setup;
- :func:`clean`, :func:`set_baseline`, :func:`sync`, :func:`adopt` — run-time calls;
- :class:`Cleaner` — an open connection whose ``reset()`` is the per-test call;
- ``op.install_clean_tracking()`` / ``op.drop_clean_tracking()`` — registered on import;
- :class:`CleanDBError` and its subclasses.
"""

from __future__ import annotations

from . import operations as _operations  # noqa: F401  (registers the Alembic operations)
from ._base import SCHEMA_VERSION
from .cleaner import Cleaner, DatabaseInfo, adopt, clean, set_baseline, sync
from .environment import BRANCH, REVISION, VERSIONS, enable, env_options
from .errors import (
    CleanDBError,
    ConfigurationError,
    NotInstalledError,
    ResetError,
    UnsafeDatabaseError,
    VersionMismatchError,
)

__version__ = "0.1.0"

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
    "UnsafeDatabaseError",
    "VersionMismatchError",
    "adopt",
    "clean",
    "enable",
    "env_options",
    "set_baseline",
    "sync",
]
