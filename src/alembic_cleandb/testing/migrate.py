"""``cleandb_migrate``: create the test database if missing, then ``upgrade heads`` with the
``cleandb`` branch enabled, once per run, before any test (and before worker copies)."""

from __future__ import annotations

import configparser
import traceback
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from .._connect import app_url, safe_url
from .._guard import temporary_env
from ..backends import backend_for_url
from ..environment import enable
from ..errors import CleanDBError, ConfigurationError

__all__ = ["parse_target", "migrate"]


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
    # env.py gets the URL as written (an async driver kept, for an async env.py); a plain
    # postgresql:// or mysql:// gets the driver the extras install (+psycopg, +pymysql).
    full = app_url(url).render_as_string(hide_password=False)
    where = f"migrating {safe_url(url)!r} with {str(ini)!r}"
    try:
        enable(config)
        config.set_main_option("sqlalchemy.url", full.replace("%", "%%"))
        config.attributes["url"] = full
        with temporary_env(url_env, url):
            command.upgrade(config, "heads")
    except CleanDBError:
        raise
    except (CommandError, DBAPIError) as exc:
        raise ConfigurationError(f"alembic-cleandb: {where} failed: {_first_line(exc)}") from exc
    except Exception as exc:  # raised by the project's env.py or a migration
        raise ConfigurationError(
            f"alembic-cleandb: {where} failed: {type(exc).__name__}: {_first_line(exc)}"
            f"{_project_frame(exc, ini.parent)}. Fix it there; `alembic -n cleandb upgrade "
            "heads` (or the section you use) shows the whole traceback"
        ) from exc


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
