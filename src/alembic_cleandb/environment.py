"""What a user's ``env.py`` and test setup call: :func:`env_options` and :func:`enable`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import context as alembic_context
from alembic import util as alembic_util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from ._sql import execute
from .backends import backend_for
from .operations import executor

__all__ = ["env_options", "enable", "VERSIONS", "REVISION", "BRANCH"]

#: The packaged version location, in the ``package:path`` form Alembic accepts.
VERSIONS = "alembic_cleandb:versions"
#: The head revision of the ``cleandb`` branch (its first, ``cleandb_0001``, installs tracking;
#: each later one upgrades tracking of an older schema version).
REVISION = "cleandb_0005"
_FIRST = "cleandb_0001"
_ANY_REVISION = re.compile(r"cleandb_\d{4}")
BRANCH = "cleandb"
_OWN_PREFIX = "cleandb_"
_OWN_SCHEMA = "cleandb"
#: ``config.attributes`` key set by cleandb_migrate / migrate(): the database to migrate.
EXPECTED_URL = "cleandb_expected_url"

IncludeName = Callable[[Any, str, Any], bool]
IncludeObject = Callable[[Any, Any, str, bool, Any], bool]
OnVersionApply = Callable[..., None]


def _own(name: Any, type_: str) -> bool:
    if not isinstance(name, str):
        return False
    if type_ == "schema":
        return name == _OWN_SCHEMA
    return type_ == "table" and name.startswith(_OWN_PREFIX)


def _branch_visible(context: MigrationContext) -> bool:
    script = context.opts.get("script")
    if not isinstance(script, ScriptDirectory):
        return False
    try:
        return script.revision_map.get_revision(_FIRST) is not None
    except Exception:
        return False


@dataclass
class _Run:
    """The steps of one ``run_migrations()`` call, counted by the wrapped ``fn``."""

    total: int
    done: int = 0
    #: The database says "sync pending" (set once the tracking is there, cleared by the sync).
    marked: bool = False


_RUN = "_cleandb_run"  # attribute of the MigrationContext


def sync_after_step(context: MigrationContext) -> None:
    """Attach tracking to tables the migration steps created, and take their baseline.

    Online, when the run's steps are known (``env_options()`` wraps ``fn``), the sync runs
    once, after the last step: the dirty marks the steps left tell it which tables to
    re-baseline. Until then the database holds a "sync pending" mark, so a run that stops in
    the middle (a step failed) leaves a database the reset refuses, saying why, rather than
    a stale baseline. Unknown run length: after every step. Online it is a no-op (one
    catalog query) unless tracking is installed. Offline it only emits SQL when the cleandb
    branch is part of the run, so production scripts stay as they are.
    """
    if context.as_sql and not _branch_visible(context):
        return
    backend = backend_for(context.dialect.name)
    run = None if context.as_sql else getattr(context, _RUN, None)
    if isinstance(run, _Run):
        run.done += 1
        if run.done < run.total:
            if not run.marked:
                run.marked = backend.mark_sync_pending(executor(context))
            return
        delattr(context, _RUN)
    backend.sync(executor(context))


def _finish_pending_sync(context: MigrationContext) -> None:
    """A run with no step left to apply, on a database marked "sync pending": the previous
    run's steps all ran but its closing sync did not finish (e.g. the server refused a
    trigger). Running it now is what "finish the migration" means: attach what is missing,
    then take every table's baseline anew (which tables the steps wrote is not known any
    more; no test ran since, as the reset refuses a database marked so)."""
    if context.connection is None:
        return
    backend = backend_for(context.dialect.name)
    if backend.sync_pending(context.connection):
        # As a step's work is committed: without transactional DDL (SQLite, MySQL) Alembic
        # commits per step, and a run without steps would otherwise roll this back.
        with context.begin_transaction(_per_migration=True):
            backend.sync(executor(context))
            backend.set_baseline(context.connection)


def _database_of(connection: Any) -> tuple[str, str]:
    """(backend, database) the connection is really in; SQLite: the main file's path."""
    name = connection.dialect.name
    if name == "sqlite":
        rows = execute(connection, "PRAGMA database_list").fetchall()
        path = next((str(r[2]) for r in rows if r[1] == "main"), "")
        return "sqlite", os.path.realpath(path) if path else ""
    if name == "postgresql":
        return name, str(execute(connection, "SELECT current_database()").scalar())
    return "mysql", str(execute(connection, "SELECT DATABASE()").scalar())


def _expected_database(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database or ""
        return "sqlite", os.path.realpath(path) if path and path != ":memory:" else ""
    return ("mysql" if backend == "mariadb" else backend), parsed.database or ""


def check_target_database(context: MigrationContext, expected: str) -> None:
    """Before any step: the database env.py connected to is the one we were asked to migrate
    (cleandb_migrate / migrate()), not one env.py found elsewhere (e.g. its own DATABASE_URL)."""
    connection = context.connection
    if connection is None or context.as_sql:
        return
    want = _expected_database(expected)
    got = _database_of(connection)
    if want[1] and got != want:
        raise alembic_util.CommandError(
            f"alembic-cleandb: env.py connected to database {got[1]!r}, not to the test "
            f"database {want[1]!r} it was asked to migrate; no migration step ran. env.py must "
            f"take its URL from config.get_main_option('sqlalchemy.url') (set to the test "
            f"database), or from the environment variable named by cleandb_url_env (e.g. "
            f"cleandb_url_env = DATABASE_URL, which the plugin sets before migrating)"
        )


def _wrap_fn(fn: Callable[..., Any], expected: str | None = None) -> Callable[..., Any]:
    """``fn`` of the environment: checks, under cleandb_migrate / migrate(), that env.py
    connected to the database it was asked to migrate; counts the steps of the run;
    explains, when a database holds the cleandb revision but the config lacks the branch,
    how to fix it."""
    checked: list[bool] = []

    def wrapped(rev: Any, context: Any) -> Any:
        if expected and not checked:
            check_target_database(context, expected)
            checked.append(True)
        try:
            steps = fn(rev, context)
        except alembic_util.CommandError as exc:
            found = _ANY_REVISION.search(str(exc))
            if found is None:
                raise
            raise alembic_util.CommandError(
                f"{exc}. This database has alembic-cleandb's test tracking installed (revision "
                f"{found.group()!r} of the {BRANCH!r} branch), but this Alembic config does not "
                f"include that branch. Use the test config: `alembic -n cleandb ...`, or "
                f"`alembic_cleandb.enable(config)` in code; with Flask-Migrate, "
                f"`FLASK_TESTING=1 flask db upgrade heads` with a @migrate.configure callback "
                f"that calls alembic_cleandb.enable(config) when app.testing (docs/recipes.md). "
                f"To remove tracking from this database: "
                f"`alembic -n cleandb downgrade cleandb@base`."
            ) from exc
        if isinstance(context, MigrationContext) and not context.as_sql:
            steps = list(steps)
            setattr(context, _RUN, _Run(len(steps)))
            if not steps:
                _finish_pending_sync(context)
        return steps

    return wrapped


def env_options(
    *,
    include_name: IncludeName | None = None,
    include_object: IncludeObject | None = None,
    on_version_apply: OnVersionApply | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``context.configure(...)`` in ``env.py``.

    ``context.configure(connection=connection, target_metadata=metadata, **env_options())``

    - keeps cleandb's own objects (the ``cleandb`` schema, ``cleandb_*`` tables) out of
      autogenerate and ``alembic check``;
    - after the last migration step of a run, attaches tracking to new tables and re-takes
      the baseline of tables the steps wrote to (only where tracking is installed);
    - explains, when a database holds the cleandb revision but the config lacks the branch,
      how to fix it.

    Pass your own hooks here rather than to ``configure``: they are chained (yours run first).
    """

    def _include_name(name: Any, type_: str, parent_names: Any) -> bool:
        if _own(name, type_):
            return False
        return include_name(name, type_, parent_names) if include_name else True

    def _include_object(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
        if _own(name, type_):
            return False
        if type_ == "table" and _own(getattr(obj, "schema", None), "schema"):
            return False
        if include_object is not None:
            return include_object(obj, name, type_, reflected, compare_to)
        return True

    def _on_version_apply(*, ctx: MigrationContext, **kw: Any) -> None:
        if on_version_apply is not None:
            on_version_apply(ctx=ctx, **kw)
        sync_after_step(ctx)

    config = getattr(alembic_context, "config", None)
    if isinstance(config, Config):
        _check_cleandb_section(config)
    options: dict[str, Any] = {
        "include_name": _include_name,
        "include_object": _include_object,
        "on_version_apply": _on_version_apply,
    }
    environment = getattr(alembic_context, "_proxy", None)
    fn = getattr(environment, "context_opts", {}).get("fn")
    if fn is not None:
        attributes = getattr(getattr(environment, "config", None), "attributes", {})
        options["fn"] = _wrap_fn(fn, attributes.get(EXPECTED_URL))
    return options


_SEPARATOR_FIX = (
    "Alembic splits version_locations with path_separator (version_path_separator before "
    "Alembic 1.16); with `os` the ':' of the package form `alembic_cleandb:versions` splits "
    "it, and a path with a space stays whole. Set `path_separator = space` (Alembic < 1.16: "
    "`version_path_separator = space`, or leave it out) in that section, or `newline` with one "
    "location per line"
)

# Alembic >= 1.16 has Config.get_version_locations_list() and reads path_separator; older
# versions split version_locations themselves, on version_path_separator (or spaces/commas).
_MODERN = hasattr(Config, "get_version_locations_list")
_LEGACY_SEPARATORS = {None: None, "space": " ", "os": os.pathsep, ":": ":", ";": ";"}


def _version_locations(config: Config) -> list[str]:
    """The config's version locations, split the way this Alembic version splits them."""
    if _MODERN:
        return list(config.get_version_locations_list() or [])
    raw = config.get_main_option("version_locations")
    if not raw:
        return []
    separator = _LEGACY_SEPARATORS.get(config.get_main_option("version_path_separator"), " ")
    if separator is None:
        return [x for x in re.split(r", *|(?: +)", raw) if x]
    return [x.strip() for x in raw.split(separator) if x.strip()]


def _location_exists(location: str) -> bool:
    try:
        return Path(alembic_util.coerce_resource_to_filename(location)).is_dir()
    except Exception:  # a package that cannot be imported
        return False


def check_locations(config: Config) -> None:
    """Refuse version locations that do not exist: a wrong separator setting (``path_separator
    = os`` with a package form, or a path with a space) makes Alembic skip them silently, and
    ``upgrade heads`` then applies nothing."""
    missing = [loc for loc in _version_locations(config) if not _location_exists(loc)]
    if missing:
        section = config.config_ini_section
        raise alembic_util.CommandError(
            f"alembic-cleandb: version location(s) {', '.join(map(repr, missing))} of "
            f"[{section}] do not exist, so Alembic would skip them and apply nothing. "
            f"{_SEPARATOR_FIX}."
        )


def _check_cleandb_section(config: Config) -> None:
    """In env.py: a section that names the packaged branch must load it (``alembic -n cleandb
    upgrade heads`` with ``path_separator = os`` would otherwise apply nothing, exit 0)."""
    raw = config.get_main_option("version_locations") or ""
    if "alembic_cleandb" not in raw:
        return
    check_locations(config)
    if VERSIONS not in _version_locations(config):
        raise alembic_util.CommandError(
            f"alembic-cleandb: version_locations of [{config.config_ini_section}] names "
            f"alembic_cleandb, but not as the one location {VERSIONS!r}, so the cleandb "
            f"branch is not loaded. {_SEPARATOR_FIX}."
        )


def enable(config: Config) -> Config:
    """Add the packaged ``cleandb`` branch to ``config`` (for test setup) and return it.

    ``command.upgrade(alembic_cleandb.enable(Config("alembic.ini")), "cleandb@head")``

    Keeps the config's own version locations and ``prepend_sys_path``; idempotent. Raises
    ``CommandError`` when a version location does not exist (a wrong ``path_separator``).
    """
    check_locations(config)
    locations = _version_locations(config)
    if not locations:
        script_location = config.get_main_option("script_location")
        if script_location is None:
            raise alembic_util.CommandError(
                "alembic-cleandb: the Alembic config has no script_location; enable() needs "
                "the config your env.py uses"
            )
        base = Path(alembic_util.coerce_resource_to_filename(script_location))  # str < 1.16
        locations = [str(base / "versions")]
    if VERSIONS in locations:
        return config
    if not _MODERN:  # no "newline" separator before 1.16; ";" is in no path we know of
        config.set_main_option("version_path_separator", ";")
        legacy = ";".join([*locations, VERSIONS]).replace("%", "%%")
        config.set_main_option("version_locations", legacy)
        return config
    prepend = config.get_prepend_sys_paths_list() or []

    def joined(paths: list[str]) -> str:
        return "\n".join(paths).replace("%", "%%")

    config.set_main_option("path_separator", "newline")
    config.set_main_option("version_locations", joined([*locations, VERSIONS]))
    if prepend:
        config.set_main_option("prepend_sys_path", joined(prepend))
    return config
