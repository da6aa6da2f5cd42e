"""``cleandb_migrate``: create the test database if missing, then ``upgrade heads`` with the
``cleandb`` branch enabled, once per run, before any test (and before worker copies)."""

from __future__ import annotations

import configparser
import os
import traceback
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from .._connect import app_url, normalize_url, safe_url
from .._guard import temporary_env
from ..backends import backend_for_url
from ..environment import EXPECTED_URL, enable
from ..errors import CleanDBError, ConfigurationError

__all__ = ["parse_target", "migrate", "migrate_url", "EXPECTED_URL"]


def parse_target(value: str, base: Path) -> tuple[Path, str | None]:
    """``alembic.ini`` or ``alembic.ini:section`` → (absolute path, section)."""
    path, section = value, None
    head, sep, tail = value.rpartition(":")
    if sep and len(head) > 1 and tail and "/" not in tail and "\\" not in tail:
        path, section = head, tail
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = base / resolved
    return resolved, section


def migrate(url: str, ini: Path, section: str | None, url_env: str | None = None) -> None:
    """Create the database behind ``url`` if it is missing, then migrate it to every head.

    ``env.py`` learns the URL from ``sqlalchemy.url`` (set on the config), from
    ``config.attributes["url"]``, and from the ``url_env`` environment variable if named.
    """
    if not ini.is_file():
        raise ConfigurationError(
            f"alembic-cleandb: cleandb_migrate names {str(ini)!r}, which is not a file. Point "
            "it at your alembic.ini (optionally ':section'), relative to the pytest ini file."
        )
    admin = backend_for_url(url)
    parsed = make_url(url)
    if not admin.exists(parsed):
        admin.create_empty(parsed)
    try:
        config = Config(str(ini), ini_section=section or "alembic")
        if section and not config.file_config.has_section(section):
            raise ConfigurationError(
                f"alembic-cleandb: {str(ini)!r} has no [{section}] section (cleandb_migrate)"
            )
    except configparser.Error as exc:
        raise ConfigurationError(
            f"alembic-cleandb: {str(ini)!r} (cleandb_migrate) is not a valid ini file: "
            f"{_first_line(exc)}. Fix the file, or point cleandb_migrate at your alembic.ini"
        ) from None
    if config.get_main_option("script_location") is None and (ini.parent / "env.py").is_file():
        # Flask-Migrate's layout: migrations/alembic.ini, beside env.py, with no
        # script_location (`flask db` sets it to the folder).
        config.set_main_option("script_location", str(ini.parent).replace("%", "%%"))
    _upgrade(url, config, str(ini), ini.parent, url_env)


def _upgrade(url: str, config: Config, ini: str, root: Path, url_env: str | None) -> None:
    # env.py gets the URL as written (an async driver kept, for an async env.py); a plain
    # postgresql:// or mysql:// gets the driver the extras install (+psycopg, +pymysql).
    full = app_url(url).render_as_string(hide_password=False)
    where = f"migrating {safe_url(url)!r} with {ini!r}"
    try:
        enable(config)
        config.set_main_option("sqlalchemy.url", full.replace("%", "%%"))
        config.attributes["url"] = full
        config.attributes[EXPECTED_URL] = full  # env_options() checks env.py connects there
        with temporary_env(url_env, url):
            command.upgrade(config, "heads")
    except CleanDBError:
        raise
    except (CommandError, DBAPIError) as exc:
        raise ConfigurationError(f"alembic-cleandb: {where} failed: {_first_line(exc)}") from exc
    except Exception as exc:  # raised by the project's env.py or a migration
        raise ConfigurationError(
            f"alembic-cleandb: {where} failed: {type(exc).__name__}: {_first_line(exc)}"
            f"{_project_frame(exc, root)}. Fix it there; `alembic -n cleandb upgrade "
            "heads` (or the section you use) shows the whole traceback"
        ) from exc


def migrate_url(
    url: str | URL,
    config: str | os.PathLike[str] | Config = "alembic.ini",
    *,
    section: str | None = None,
    url_env: str | None = None,
) -> str:
    """Create the test database behind ``url`` if missing, run every migration on it with
    the ``cleandb`` branch (tracking) enabled, and return ``url`` as a string.

    For a database known only at run time (pytest-postgresql, testcontainers, a copy)::

        @pytest.fixture(scope="session")
        def cleandb_urls(postgresql_noproc):
            return [alembic_cleandb.migrate(url_of(postgresql_noproc), "alembic.ini")]

    ``config`` is an ``alembic.ini`` path (relative to the working directory; a Flask-Migrate
    ``migrations/alembic.ini`` works too) or an Alembic ``Config``; ``section`` picks an ini
    section (default ``[alembic]``; the branch is added either way). env.py learns the URL
    from ``sqlalchemy.url``, ``config.attributes["url"]`` and, if ``url_env`` names one, that
    environment variable (set while migrating). An env.py wired with ``env_options()`` that
    connects to another database is stopped before any migration runs. Refuses a database
    whose name lacks ``test`` like every other entry point. Errors:
    :class:`~alembic_cleandb.ConfigurationError`.
    """
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    normalize_url(text)  # a clear error for a malformed URL
    if isinstance(config, Config):
        admin = backend_for_url(text)
        parsed = make_url(text)
        if not admin.exists(parsed):
            admin.create_empty(parsed)
        where = config.config_file_name or "the Alembic config"
        _upgrade(text, config, str(where), Path(str(where)).resolve().parent, url_env)
    else:
        ini = Path(config).expanduser().resolve()
        if not ini.is_file():
            raise ConfigurationError(
                f"alembic-cleandb: migrate() was given {str(ini)!r}, which is not a file. Pass "
                "the path of your alembic.ini (or an alembic.config.Config)."
            )
        migrate(text, ini, section, url_env)
    return text


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _project_frame(exc: BaseException, root: Path) -> str:
    """`` (at path:line)`` of the innermost traceback frame in the project's own files."""
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(root) and "site-packages" not in path.parts:
            found = f" (at {frame.filename}:{frame.lineno})"
    return found
