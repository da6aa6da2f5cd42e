"""``cleandb_migrate``: create the test database if missing, then ``upgrade heads`` with the
``cleandb`` branch enabled, once per run, before any test (and before worker copies)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from .._connect import normalize_url, safe_url
from .._guard import temporary_env
from .._sql import message
from ..backends import backend_for_url
from ..environment import enable
from ..errors import ConfigurationError

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
    config = Config(str(ini), ini_section=section or "alembic")
    if section and not config.file_config.has_section(section):
        raise ConfigurationError(
            f"alembic-cleandb: {str(ini)!r} has no [{section}] section (cleandb_migrate)"
        )
    enable(config)
    # env.py gets the URL with the driver alembic-cleandb uses (postgresql:// -> +psycopg).
    full = normalize_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", full.replace("%", "%%"))
    config.attributes["url"] = full
    try:
        with temporary_env(url_env, url):
            command.upgrade(config, "heads")
    except (CommandError, DBAPIError) as exc:
        reason = message(exc)
        raise ConfigurationError(
            f"alembic-cleandb: migrating {safe_url(url)!r} with {str(ini)!r} failed: {reason}"
        ) from exc
