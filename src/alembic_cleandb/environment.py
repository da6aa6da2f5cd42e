"""What a user's ``env.py`` and test setup call: :func:`env_options` and :func:`enable`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alembic import context as alembic_context
from alembic import util as alembic_util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .backends import backend_for
from .operations import executor

__all__ = ["env_options", "enable", "VERSIONS", "REVISION", "BRANCH"]

#: The packaged version location, in the ``package:path`` form Alembic accepts.
VERSIONS = "alembic_cleandb:versions"
#: The head revision of the ``cleandb`` branch (its first, ``cleandb_0001``, installs tracking;
#: each later one upgrades tracking of an older schema version).
REVISION = "cleandb_0002"
_FIRST = "cleandb_0001"
_ANY_REVISION = re.compile(r"cleandb_\d{4}")
BRANCH = "cleandb"
_OWN_PREFIX = "cleandb_"
_OWN_SCHEMA = "cleandb"

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


def _wrap_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` of the environment: counts the steps of the run; explains, when a database
    holds the cleandb revision but the config lacks the branch, how to fix it."""

    def wrapped(rev: Any, context: Any) -> Any:
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
                f"`alembic_cleandb.enable(config)` in code. To remove tracking from this "
                f"database: `alembic -n cleandb downgrade cleandb@base`."
            ) from exc
        if isinstance(context, MigrationContext) and not context.as_sql:
            steps = list(steps)
            setattr(context, _RUN, _Run(len(steps)))
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

    options: dict[str, Any] = {
        "include_name": _include_name,
        "include_object": _include_object,
        "on_version_apply": _on_version_apply,
    }
    environment = getattr(alembic_context, "_proxy", None)
    fn = getattr(environment, "context_opts", {}).get("fn")
    if fn is not None:
        options["fn"] = _wrap_fn(fn)
    return options


def enable(config: Config) -> Config:
    """Add the packaged ``cleandb`` branch to ``config`` (for test setup) and return it.

    ``command.upgrade(alembic_cleandb.enable(Config("alembic.ini")), "cleandb@head")``

    Keeps the config's own version locations and ``prepend_sys_path``; idempotent.
    """
    locations = config.get_version_locations_list()
    if not locations:
        script_location = config.get_main_option("script_location")
        if script_location is None:
            raise alembic_util.CommandError(
                "alembic-cleandb: the Alembic config has no script_location; enable() needs "
                "the config your env.py uses"
            )
        base = alembic_util.coerce_resource_to_filename(script_location)
        locations = [str(base / "versions")]
    if VERSIONS in locations:
        return config
    prepend = config.get_prepend_sys_paths_list() or []

    def joined(paths: list[str]) -> str:
        return "\n".join(paths).replace("%", "%%")

    config.set_main_option("path_separator", "newline")
    config.set_main_option("version_locations", joined([*locations, VERSIONS]))
    if prepend:
        config.set_main_option("prepend_sys_path", joined(prepend))
    return config
