"""The pytest plugin (entry point ``pytest11: cleandb``).

After every test it calls the database-side reset routine once per configured database.
Configure the databases with the ini option ``cleandb_urls``, ``--cleandb-url``, the
environment variable ``CLEANDB_URLS``, or by overriding the session fixture ``cleandb_urls``
in ``conftest.py``. With no database configured the plugin does nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from ._connect import normalize_url, safe_url
from .cleaner import DEFAULT_LOCK_TIMEOUT, Cleaner
from .errors import CleanDBError, ResetError

ENV_URLS = "CLEANDB_URLS"
ON_FAILURE = ("fail", "exit")


@dataclass(frozen=True)
class Option:
    name: str  # ini name; the command-line flag is derived from it
    help: str
    default: str = ""
    kind: str = "string"  # ini type: string, linelist, bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-").replace("urls", "url")


OPTIONS = (
    Option(
        "cleandb_urls",
        "Database URL(s) to reset after every test (postgresql://, mysql://, mariadb://, "
        "sqlite:///...). The flag may be repeated; CLEANDB_URLS (comma-separated) is read too.",
        kind="linelist",
    ),
    Option(
        "cleandb_lock_timeout",
        "Seconds the reset waits for a lock held by another session before failing "
        f"(default {DEFAULT_LOCK_TIMEOUT:g}).",
        default=str(DEFAULT_LOCK_TIMEOUT),
    ),
    Option(
        "cleandb_on_failure",
        "What a failed reset does: 'fail' fails that test's teardown and keeps going "
        "(default); 'exit' stops the run.",
        default="fail",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Every cleandb setting, resolved once: command line > environment > ini file."""

    urls: tuple[str, ...]
    lock_timeout: float
    on_failure: str

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        __tracebackhide__ = True

        def value(name: str) -> object:
            cli = config.getoption(name)
            return cli if cli not in (None, []) else config.getini(name)

        cli_urls = config.getoption("cleandb_urls") or []
        env_urls = [u for u in re.split(r"[,\s]+", os.environ.get(ENV_URLS, "")) if u]
        urls = list(cli_urls) or env_urls or list(config.getini("cleandb_urls") or [])
        for url in urls:
            try:
                normalize_url(url)
            except CleanDBError as exc:
                raise pytest.UsageError(str(exc)) from None
        try:
            lock_timeout = float(str(value("cleandb_lock_timeout")))
            if lock_timeout <= 0:
                raise ValueError
        except ValueError:
            raise pytest.UsageError(
                "cleandb_lock_timeout must be a positive number of seconds, e.g. 5"
            ) from None
        on_failure = str(value("cleandb_on_failure"))
        if on_failure not in ON_FAILURE:
            raise pytest.UsageError(
                f"cleandb_on_failure must be one of {', '.join(ON_FAILURE)}, not {on_failure!r}"
            )
        return cls(tuple(urls), lock_timeout, on_failure)


settings_key = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleandb", "alembic-cleandb: reset the test database after each test")
    for option in OPTIONS:
        default: object = [] if option.kind == "linelist" else option.default
        parser.addini(option.name, option.help, type=option.kind, default=default)  # type: ignore[arg-type]
        if option.kind == "linelist":
            group.addoption(option.flag, dest=option.name, action="append", help=option.help)
        else:
            group.addoption(option.flag, dest=option.name, default=None, help=option.help)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[settings_key] = Settings.from_config(config)
    config.addinivalue_line(
        "markers", "cleandb_skip: do not reset the databases after this test (it writes none)"
    )


@pytest.fixture(scope="session")
def cleandb_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved cleandb settings."""
    return pytestconfig.stash[settings_key]


@pytest.fixture(scope="session")
def cleandb_urls(cleandb_settings: Settings) -> Sequence[str]:
    """The URLs of the databases to reset. Override this session fixture in ``conftest.py``
    to compute them (for instance from a fixture that creates the database and migrates it).
    """
    return list(cleandb_settings.urls)


@pytest.fixture(scope="session")
def cleandb_cleaners(
    cleandb_urls: Sequence[str], cleandb_settings: Settings
) -> Iterator[list[Cleaner]]:
    """One open :class:`~alembic_cleandb.Cleaner` per configured database.

    Opening checks each database (test name, tracking installed) and resets it once, so a
    run that follows a killed one starts from the baseline too.
    """
    __tracebackhide__ = True
    cleaners: list[Cleaner] = []
    try:
        for url in cleandb_urls:
            try:
                cleaner = Cleaner(url, lock_timeout=cleandb_settings.lock_timeout)
            except CleanDBError as exc:
                pytest.exit(f"{exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            cleaners.append(cleaner)
            cleaner.reset()
        yield cleaners
    finally:
        for cleaner in cleaners:
            cleaner.close()


def _reset_all(cleaners: Sequence[Cleaner], settings: Settings) -> None:
    __tracebackhide__ = True
    errors = []
    for cleaner in cleaners:
        try:
            cleaner.reset()
        except ResetError as exc:
            errors.append(str(exc))
    if errors:
        message = "\n".join(errors)
        if settings.on_failure == "exit":
            pytest.exit(message, returncode=pytest.ExitCode.TESTS_FAILED)
        pytest.fail(message, pytrace=False)


@pytest.fixture
def cleandb_clean_before(cleandb_cleaners: list[Cleaner], cleandb_settings: Settings) -> None:
    """Request this in a test that must also start from the baseline (the reset after every
    test normally guarantees it; this covers writes made outside tests, e.g. by fixtures)."""
    _reset_all(cleandb_cleaners, cleandb_settings)


@pytest.fixture(autouse=True)
def _cleandb_reset(request: pytest.FixtureRequest, cleandb_settings: Settings) -> Iterator[None]:
    """After every test: one call of the reset routine per database."""
    if request.node.get_closest_marker("cleandb_skip") is not None:
        yield
        return
    cleaners: list[Cleaner] = request.getfixturevalue("cleandb_cleaners")
    yield
    if cleaners:
        _reset_all(cleaners, cleandb_settings)


def describe(urls: Sequence[str]) -> str:
    return ", ".join(safe_url(u) for u in urls)
