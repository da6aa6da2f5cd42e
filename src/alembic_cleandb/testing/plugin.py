"""The pytest plugin (entry point ``pytest11: cleandb``).

After every test it calls the database-side reset routine once per configured database.
Configure the databases with the ini option ``cleandb_urls``, ``--cleandb-url``, the
environment variable ``CLEANDB_URLS``, or by overriding the session fixture ``cleandb_urls``
in ``conftest.py``. With no database configured the plugin does nothing.

Under pytest-xdist (``-n 4``) every worker gets its own copy of each configured database,
``<name>_gw0``, ``<name>_gw1``, ..., made once per run by the controller process from the
configured (migrated, tracked) database; tests see the copy's URL through the ``cleandb_url``
and ``cleandb_urls`` fixtures and, with ``cleandb_url_env``, an environment variable. Nothing
in the configuration changes between ``-n 0`` and ``-n 4``.

Every setting is an ini option and a command-line option with the same help text (see
``OPTIONS``), resolved once into the frozen :class:`Settings`; run-time state lives in
``config.stash``.
"""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from .._connect import normalize_url, safe_url
from .._sql import message
from ..changes import DEFAULT_LIMIT, TableChanges, format_changes
from ..cleaner import DEFAULT_LOCK_TIMEOUT, Cleaner, DatabaseInfo, add_note
from ..errors import CleanDBError
from . import xdist as _xdist
from .report import Probe, Report, measure

__all__ = ["Option", "OPTIONS", "Settings", "worker_url"]

ENV_URLS = "CLEANDB_URLS"
ON_FAILURE = ("fail", "exit")
#: cleandb_restart_ids: its values, and what each means for Cleaner(restart_ids=...).
RESTART_IDS = {"always": True, "never": False}
SHOW_CHANGES = ("failed", "all", "never")
#: The title of the report section that lists what a test wrote ("teardown" in it: pytest
#: prints a teardown section of a test next to its failure).
CHANGES_SECTION = "cleandb: rows written (before the reset in teardown)"
worker_url = _xdist.worker_url


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
    Option(
        "cleandb_url_env",
        "Name of an environment variable (e.g. DATABASE_URL) that the plugin sets to the "
        "first database's URL - under pytest-xdist, the worker's copy - before any test or "
        "fixture runs, for application code that reads its database URL from the environment.",
    ),
    Option(
        "cleandb_worker_dbs",
        "pytest-xdist worker databases (<name>_gw0, ...): 'recreate' copies the configured "
        "database afresh for every run and drops the copies at its end (default); 'reuse' "
        "keeps them and reuses them while their alembic heads match the configured database.",
        default="recreate",
    ),
    Option(
        "cleandb_migrate",
        "Alembic config to bring each database up to date at the start of the run: "
        "'alembic.ini' or 'alembic.ini:section', relative to the pytest ini file. The plugin "
        "creates a missing test database, then runs 'upgrade heads' with the cleandb branch "
        "enabled. Empty (default): the databases must be migrated already.",
    ),
    Option(
        "cleandb_restart_ids",
        "Whether each reset also restarts the id counters of the tables it resets (sequences, "
        "AUTO_INCREMENT, sqlite_sequence): 'always' (default: a test's first insert gets the "
        "id the seed's next row would, so tests may assert on ids); 'never' (rows back to the "
        "baseline with DELETE and INSERT only, counters keep counting and never hand out an id "
        "twice - no DDL per table on MySQL/MariaDB, for suites that never assert on ids).",
        default="always",
    ),
    Option(
        "cleandb_show_changes",
        "Which tests' reports list the rows each wrote - added (+), removed (-) and changed "
        "(~, old -> new) per database and table, compared with the baseline before the reset: "
        f"'failed' (default; a test whose setup or call failed), 'all' (every test that wrote "
        f"something), 'never'. At most {DEFAULT_LIMIT} rows per table and kind.",
        default="failed",
    ),
    Option(
        "cleandb_report",
        "Print a report after the run: reset time in total and per test, the tables written "
        "most often, the tests that wrote the most tables, and writes to untracked tables.",
        kind="bool",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Every cleandb setting, resolved once: command line > environment > ini file."""

    urls: tuple[str, ...]
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    on_failure: str = "fail"
    url_env: str | None = None
    worker_dbs: str = "recreate"
    migrate: tuple[Path, str | None] | None = None
    report: bool = False
    restart_ids: bool = True
    show_changes: str = "failed"

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        __tracebackhide__ = True

        def value(name: str) -> Any:
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
        url_env = str(value("cleandb_url_env") or "").strip() or None
        if url_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", url_env):
            raise pytest.UsageError(
                f"cleandb_url_env must be an environment variable name such as DATABASE_URL, "
                f"not {url_env!r}"
            )
        if url_env is not None and not urls:
            raise pytest.UsageError(
                f"cleandb_url_env = {url_env} needs a configured database: set cleandb_urls "
                f"in the ini file, --cleandb-url, or {ENV_URLS}"
            )
        worker_dbs = str(value("cleandb_worker_dbs"))
        if worker_dbs not in _xdist.WORKER_DBS:
            raise pytest.UsageError(
                f"cleandb_worker_dbs must be one of {', '.join(_xdist.WORKER_DBS)}, "
                f"not {worker_dbs!r}"
            )
        migrate = None
        target = str(value("cleandb_migrate") or "").strip()
        if target:
            # Only here, and in pytest_sessionstart: .migrate imports Alembic (~0.4 s), which a
            # run that does not migrate never needs (this plugin loads in every pytest run).
            from .migrate import parse_target

            from_cli = bool(config.getoption("cleandb_migrate"))
            base = config.invocation_params.dir if from_cli else _ini_dir(config)
            migrate = parse_target(target, base)
            if not urls:
                raise pytest.UsageError(
                    "cleandb_migrate needs a configured database: set cleandb_urls in the ini "
                    f"file, --cleandb-url, or {ENV_URLS}"
                )
        report = bool(config.getoption("cleandb_report") or config.getini("cleandb_report"))
        restart_ids = str(value("cleandb_restart_ids") or "").strip()
        if restart_ids not in RESTART_IDS:
            raise pytest.UsageError(
                f"cleandb_restart_ids must be one of {', '.join(RESTART_IDS)}, "
                f"not {restart_ids!r}"
            )
        show_changes = str(value("cleandb_show_changes")).strip()
        if show_changes not in SHOW_CHANGES:
            raise pytest.UsageError(
                f"cleandb_show_changes must be one of {', '.join(SHOW_CHANGES)}, "
                f"not {show_changes!r}"
            )
        return cls(
            tuple(urls),
            lock_timeout,
            on_failure,
            url_env,
            worker_dbs,
            migrate,
            report,
            RESTART_IDS[restart_ids],
            show_changes,
        )


def _ini_dir(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


@dataclass
class _State:
    """Run-time state of this process (controller, worker, or the only process)."""

    settings: Settings
    #: This process's databases: the configured ones, or in a worker its copies.
    urls: list[str]
    worker_id: str | None = None
    infos: list[DatabaseInfo] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    #: Controller: worker id -> its copies' URLs.
    copies: dict[str, list[str]] = field(default_factory=dict)
    copy_seconds: float = 0.0
    #: Controller: the copies being made while the workers start.
    making: ThreadPoolExecutor | None = None
    made: Future[Any] | None = None
    #: Worker: copy URL -> the name the guard accepts for it (copies of an allowed base).
    allowed: dict[str, str | None] = field(default_factory=dict)
    report: Report | None = None
    #: cleandb_url_env's variable as it was before the session set it (None: it was unset).
    env_before: str | None = None
    #: The fixtures being set up now, innermost last (cleandb_scope() finds its requester).
    setting_up: list[pytest.FixtureRequest] = field(default_factory=list)
    #: Session start: (database, scoped baselines a killed run left open and that were ended).
    ended: list[tuple[str, int]] = field(default_factory=list)


settings_key = pytest.StashKey[Settings]()
state_key = pytest.StashKey[_State]()
record_key = pytest.StashKey[dict[str, Any]]()
#: Whether the test's setup or call failed (set by pytest_runtest_makereport).
failed_key = pytest.StashKey[bool]()
#: The text of the "rows written" section, for the teardown report.
changes_key = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleandb", "alembic-cleandb: reset the test database after each test")
    for option in OPTIONS:
        default: object = {"linelist": [], "bool": False}.get(option.kind, option.default)
        parser.addini(option.name, option.help, type=option.kind, default=default)  # type: ignore[arg-type]
        if option.kind == "linelist":
            group.addoption(option.flag, dest=option.name, action="append", help=option.help)
        elif option.kind == "bool":
            group.addoption(option.flag, dest=option.name, action="store_true", help=option.help)
        else:
            group.addoption(option.flag, dest=option.name, default=None, help=option.help)


def _workerinput(config: pytest.Config) -> dict[str, Any] | None:
    return getattr(config, "workerinput", None)


def _distributing(config: pytest.Config) -> bool:
    """True in an xdist controller that will start workers."""
    return config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    settings = Settings.from_config(config)
    config.stash[settings_key] = settings
    config.addinivalue_line(
        "markers",
        "cleandb_skip: do not reset the databases after this test (it writes to none of them)",
    )
    state = _State(settings, list(settings.urls))
    workerinput = _workerinput(config)
    if workerinput is not None and settings.urls:
        state.worker_id = str(workerinput["workerid"])
        copies = workerinput.get("cleandb_urls")
        state.urls = (
            list(copies)
            if copies
            else [_xdist.worker_url(u, state.worker_id) for u in settings.urls]
        )
        # The guard's allowance for copies of an explicitly allowed base: an argument of the
        # Cleaner, never written into os.environ.
        for base, copy in zip(settings.urls, state.urls):
            state.allowed[copy] = _xdist.allowance(base, copy)
    if settings.url_env and state.urls:
        state.env_before = os.environ.get(settings.url_env)
        os.environ[settings.url_env] = state.urls[0]
    if settings.report and workerinput is None:
        state.report = Report()
        config.pluginmanager.register(_ReportPlugin(state.report), "cleandb-report")
    config.stash[state_key] = state


def pytest_unconfigure(config: pytest.Config) -> None:
    """cleandb_url_env's variable back to what it was: a session run inside another process
    (pytester, an IDE's runner) must not leave the test database's URL behind in it."""
    state = config.stash.get(state_key, None)
    if state is None or not state.settings.url_env or not state.urls:
        return
    if state.env_before is None:
        os.environ.pop(state.settings.url_env, None)
    else:
        os.environ[state.settings.url_env] = state.env_before


def _usage_error(exc: CleanDBError) -> pytest.UsageError:
    return pytest.UsageError(str(exc))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Controller or only process: migrate if asked, check and reset each database, and
    under xdist copy each one per worker - all before any worker starts."""
    config = session.config
    state = config.stash[state_key]
    settings = state.settings
    if _workerinput(config) is not None or not settings.urls or config.option.collectonly:
        return
    try:
        if settings.migrate is not None:
            from .migrate import migrate  # imports Alembic: only when migrating (see above)

            for url in settings.urls:
                # Scopes a killed run left open end first: a migration step refuses to run
                # while they are open (its baseline would take their seed rows).
                _end_open_scopes_before_migrating(url, state)
                migrate(url, *settings.migrate, url_env=settings.url_env)
        for url in settings.urls:
            with Cleaner(
                url, lock_timeout=settings.lock_timeout, restart_ids=settings.restart_ids
            ) as cleaner:
                cleaner.reset()
                _end_open_scopes(cleaner, state)
                state.infos.append(cleaner.info)
        state.heads = [
            (_xdist.fingerprint(u) or "").rpartition("alembic=")[2] or "-" for u in settings.urls
        ]
        if state.report is not None:
            state.report.labels = [i.database for i in state.infos]
        if _distributing(config):
            # The copies are made while xdist starts the workers: their names are known now,
            # and no test (nor fixture) runs before every worker's collection is in, which
            # waits for them (pytest_xdist_node_collection_finished).
            ids = [f"gw{i}" for i in range(_worker_count(config))]
            state.copies = {w: [_xdist.worker_url(u, w) for u in settings.urls] for w in ids}
            state.making = ThreadPoolExecutor(max_workers=1)
            state.made = state.making.submit(
                _timed, state, _xdist.prepare, settings.urls, ids, settings.worker_dbs
            )
    except CleanDBError as exc:
        raise _usage_error(exc) from None
    except Exception as exc:  # never an INTERNALERROR: say what failed, on which database
        raise _unexpected(exc, settings.urls) from None


def _end_open_scopes(cleaner: Cleaner, state: _State) -> int:
    """End the scoped baselines a killed run left open (their seed rows are not the
    baseline): the run starts from the migrations' (or set_baseline()'s) rows, said in the
    header."""
    depth = cleaner.baseline_depth()
    for _ in range(depth):
        cleaner.pop_baseline()
    if depth:
        state.ended.append((cleaner.info.database, depth))
    return depth


def _end_open_scopes_before_migrating(url: str, state: _State) -> None:
    try:
        cleaner = Cleaner(url, lock_timeout=state.settings.lock_timeout)
    except Exception:  # not there, not migrated, older tracking: no scope can be open
        return
    with cleaner:
        _end_open_scopes(cleaner, state)


def _unexpected(exc: Exception, urls: Sequence[str]) -> pytest.UsageError:
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return pytest.UsageError(
        f"alembic-cleandb: preparing {describe(urls)} failed: {reason}. Check that the "
        "databases and files named there are reachable and writable, then run again"
    )


def _timed(state: _State, fn: Callable[..., Any], *args: Any) -> Any:
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        state.copy_seconds = time.perf_counter() - start


def _wait_for_copies(state: _State) -> None:
    """Controller: until the copies are made; their failure stops the run (usage error)."""
    made, state.made = state.made, None
    if made is None:
        return
    try:
        made.result()
    except CleanDBError as exc:
        state.copies = {}  # prepare() dropped what it had made
        # Said as pytest says every other usage error: xdist has started the workers by now,
        # where a UsageError would surface as an INTERNALERROR.
        sys.stderr.write(f"ERROR: {exc}\n")
        pytest.exit(
            "alembic-cleandb: the worker databases could not be made (see ERROR above)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    finally:
        if state.making is not None:
            state.making.shutdown()
            state.making = None


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    """xdist controller, before any test is scheduled: the workers' copies are ready."""
    _wait_for_copies(node.config.stash[state_key])


def _worker_count(config: pytest.Config) -> int:
    """How many workers xdist starts (``--tx 3*popen`` counts 3)."""
    count = 0
    for spec in config.getoption("tx") or []:
        times, star, _ = str(spec).partition("*")
        count += int(times) if star and times.isdigit() else 1
    return count


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand each worker its copies (a restarted worker gets new ones)."""
    state = node.config.stash[state_key]
    if not state.settings.urls:
        return
    worker_id = str(node.gateway.id)
    if worker_id not in state.copies:
        try:
            state.copies.update(
                _xdist.prepare(state.settings.urls, [worker_id], state.settings.worker_dbs)
            )
        except CleanDBError as exc:
            raise _usage_error(exc) from None
        except Exception as exc:
            raise _unexpected(exc, state.settings.urls) from None
    node.workerinput["cleandb_urls"] = state.copies[worker_id]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist controller, after the workers are gone: drop the copies unless reused."""
    state = session.config.stash.get(state_key, None)
    if state is None:
        return
    if state.made is not None:  # no worker finished its collection: wait before dropping
        try:
            state.made.result()
        except CleanDBError:
            state.copies = {}
        state.made = None
    if not state.copies or state.settings.worker_dbs != "recreate":
        return
    _xdist.drop([url for urls in state.copies.values() for url in urls])


def _where(info: DatabaseInfo, url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    host = parsed.host or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}/{info.database}"


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(state_key, None)
    if state is None or not state.infos:
        return []
    lines = []
    for info, url, heads in zip(state.infos, state.settings.urls, state.heads):
        lines.append(
            f"cleandb: {_where(info, url)} ({info.backend}, tracking schema "
            f"v{info.schema_version}, alembic {heads})"
        )
    for database, depth in state.ended:
        lines.append(
            f"cleandb: ended {depth} scoped baseline(s) left open in {database} by an earlier "
            "run (killed inside a cleandb_scope): it starts from the baseline they replaced"
        )
    if state.copies:
        workers = sorted(state.copies, key=lambda w: int(w[2:]) if w[2:].isdigit() else 0)
        names = ", ".join(make_url(u).database or "" for u in state.copies[workers[0]]).replace(
            workers[0], "gw*"
        )
        lines.append(
            f"cleandb: {len(workers)} worker databases ({names}; "
            f"{state.settings.worker_dbs}), made while the workers start"
        )
    return lines


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cleandb_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved cleandb settings."""
    return pytestconfig.stash[settings_key]


@pytest.fixture(scope="session")
def cleandb_urls(pytestconfig: pytest.Config) -> Sequence[str]:
    """The URLs of the databases to reset: the configured ones, or under pytest-xdist this
    worker's copies of them. Override this session fixture in ``conftest.py`` to compute them
    yourself (then per-worker copies are yours to make, too)."""
    return list(pytestconfig.stash[state_key].urls)


@pytest.fixture(scope="session")
def cleandb_url(cleandb_urls: Sequence[str]) -> str:
    """The URL of the first database to reset (under pytest-xdist: this worker's copy)."""
    __tracebackhide__ = True
    if not cleandb_urls:
        raise pytest.UsageError(
            "the cleandb_url fixture needs a configured database: set cleandb_urls in the ini "
            f"file, --cleandb-url, or {ENV_URLS}"
        )
    return cleandb_urls[0]


@pytest.fixture(scope="session")
def cleandb_cleaners(
    cleandb_urls: Sequence[str], cleandb_settings: Settings, pytestconfig: pytest.Config
) -> Iterator[list[Cleaner]]:
    """One open :class:`~alembic_cleandb.Cleaner` per configured database.

    Opening checks each database (test name, tracking installed) and resets it once, so a
    run that follows a killed one starts from the baseline too.
    """
    __tracebackhide__ = True
    cleaners: list[Cleaner] = []
    allowed = pytestconfig.stash[state_key].allowed
    try:
        for url in cleandb_urls:
            try:
                cleaner = Cleaner(
                    url,
                    lock_timeout=cleandb_settings.lock_timeout,
                    allowed_database=allowed.get(url),
                    restart_ids=cleandb_settings.restart_ids,
                )
            except CleanDBError as exc:
                pytest.exit(f"{exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            cleaners.append(cleaner)
            cleaner.reset()
            depth = cleaner.baseline_depth()  # (a reused worker copy of a killed run)
            if depth:
                for _ in range(depth):
                    cleaner.pop_baseline()
                warnings.warn(
                    pytest.PytestWarning(
                        f"alembic-cleandb: ended {depth} scoped baseline(s) left open in "
                        f"{cleaner.info.database} by an earlier run (killed inside a "
                        "cleandb_scope)"
                    ),
                    stacklevel=1,
                )
        yield cleaners
    finally:
        for cleaner in cleaners:
            cleaner.close()


@pytest.fixture(scope="session")
def _cleandb_probes(
    cleandb_cleaners: list[Cleaner], cleandb_urls: Sequence[str], cleandb_settings: Settings
) -> Iterator[list[Probe]]:
    """--cleandb-report only: a second connection per database that watches the writes."""
    probes = [Probe(url, cleandb_settings.lock_timeout) for url in cleandb_urls]
    yield probes
    for probe in probes:
        probe.close()


def _reset_all(
    cleaners: Sequence[Cleaner],
    settings: Settings,
    step: Callable[[Cleaner], object] = Cleaner.reset,
) -> None:
    """``step`` (the reset, or the end of a scope) on each database; failures as a failed
    reset: the test's teardown fails, or with ``cleandb_on_failure = exit`` the run stops."""
    __tracebackhide__ = True
    errors = []
    for cleaner in cleaners:
        try:
            step(cleaner)
        except CleanDBError as exc:
            errors.append(str(exc))
    if errors:
        message = "\n".join(errors)
        if settings.on_failure == "exit":
            pytest.exit(message, returncode=pytest.ExitCode.TESTS_FAILED)
        pytest.fail(message, pytrace=False)


def _retry_failed(cleaners: Sequence[Cleaner], settings: Settings) -> None:
    """Before a test: a database whose last reset failed is reset again now; if that fails
    too, the test errors in setup instead of running on the previous test's rows."""
    __tracebackhide__ = True
    pending = [cleaner for cleaner in cleaners if cleaner.pending]
    if pending:
        _reset_all(pending, settings)


class _FixtureScope:
    """What ``cleandb_scope()`` returns: a with-block whose writes, on every configured
    database, are the baseline until the scope of the fixture that ran it ends."""

    def __init__(self, cleaners: Sequence[Cleaner], state: _State):
        self.cleaners = cleaners
        self.state = state
        self.requester: pytest.FixtureRequest | None = None

    def __enter__(self) -> None:
        __tracebackhide__ = True
        if self.requester is not None:
            pytest.fail(
                "alembic-cleandb: a cleandb_scope() block runs once; call cleandb_scope() "
                "again for another block",
                pytrace=False,
            )
        if not self.state.setting_up:
            pytest.fail(
                "alembic-cleandb: cleandb_scope() works in the body of a fixture (before its "
                "yield), whose scope its rows last for; a test writes its rows directly (the "
                "reset after it removes them)",
                pytrace=False,
            )
        self.requester = self.state.setting_up[-1]
        _reset_all(self.cleaners, self.state.settings)  # only the block's writes count

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        assert self.requester is not None
        if exc_type is not None:  # nothing of a failed seed is left behind
            try:
                _reset_all(self.cleaners, self.state.settings)
            except (Exception, pytest.fail.Exception) as reset_error:  # the seed's error wins
                add_note(exc, str(reset_error))
            return
        pushed: list[Cleaner] = []
        failed: CleanDBError | None = None
        for cleaner in self.cleaners:
            try:
                cleaner.push_baseline()
            except CleanDBError as error:
                failed = error
                break
            pushed.append(cleaner)
        if failed is not None:  # no layer anywhere, nothing of the block left
            _reset_all(pushed[::-1], self.state.settings, Cleaner.pop_baseline)
            _reset_all(self.cleaners, self.state.settings)
            pytest.fail(str(failed), pytrace=False)
        self.requester.addfinalizer(
            lambda: _reset_all(pushed[::-1], self.state.settings, Cleaner.pop_baseline)
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None]:
    """Which fixture is being set up: the one a cleandb_scope() block belongs to."""
    stack = request.config.stash[state_key].setting_up
    stack.append(request)
    yield
    stack.pop()


@pytest.fixture(scope="session")
def cleandb_scope(
    cleandb_cleaners: list[Cleaner], pytestconfig: pytest.Config
) -> Callable[[], AbstractContextManager[None]]:
    """Seed data for a class, a module, a package or the session: in a fixture of that scope,
    what is written inside ``with cleandb_scope():`` (through any connection) is the baseline
    every test of the scope starts from, until the scope ends - then its rows are gone and
    the previous baseline (rows and counters) is back. Scopes nest::

        @pytest.fixture(scope="module")
        def catalog(cleandb_scope):
            with cleandb_scope():
                load_catalog()
            yield
    """
    __tracebackhide__ = True
    if not cleandb_cleaners:
        raise pytest.UsageError(
            "the cleandb_scope fixture needs a configured database: set cleandb_urls in the "
            f"ini file, --cleandb-url, or {ENV_URLS}"
        )
    state = pytestconfig.stash[state_key]

    def scope() -> AbstractContextManager[None]:
        return _FixtureScope(cleandb_cleaners, state)

    return scope


@pytest.fixture
def cleandb_clean_before(cleandb_cleaners: list[Cleaner], cleandb_settings: Settings) -> None:
    """Request this in a test that must also start from the baseline (the reset after every
    test normally guarantees it; this covers writes made outside tests, e.g. by fixtures or
    by a test marked ``cleandb_skip``)."""
    __tracebackhide__ = True
    _reset_all(cleandb_cleaners, cleandb_settings)


@pytest.fixture(autouse=True)
def cleandb_reset(request: pytest.FixtureRequest, cleandb_settings: Settings) -> Iterator[None]:
    """After every test: one call of the reset routine per database (autouse).

    A fixture that must finish before the reset - e.g. one that removes Flask-SQLAlchemy's
    scoped session, whose open transaction would make the reset wait - requests this one:
    it is then set up after it and torn down before it."""
    __tracebackhide__ = True
    skip = request.node.get_closest_marker("cleandb_skip") is not None
    if not cleandb_settings.report:
        if skip:
            yield
            return
        cleaners: list[Cleaner] = request.getfixturevalue("cleandb_cleaners")
        _retry_failed(cleaners, cleandb_settings)
        yield
        if cleaners:
            _record_changes(request.node, cleaners, cleandb_settings)
            _reset_all(cleaners, cleandb_settings)
        return
    # --cleandb-report: the same reset, measured.
    if skip or not request.getfixturevalue("cleandb_urls"):
        yield
        if skip:
            request.node.stash[record_key] = {"skipped": True}
        return
    cleaners = request.getfixturevalue("cleandb_cleaners")
    probes: list[Probe] = request.getfixturevalue("_cleandb_probes")
    _retry_failed(cleaners, cleandb_settings)
    yield
    _record_changes(request.node, cleaners, cleandb_settings)
    request.node.stash[record_key] = measure(
        probes, lambda: _reset_all(cleaners, cleandb_settings), time.perf_counter
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if call.when == "teardown":
        record = item.stash.get(record_key, None)
        if record is not None:
            report.cleandb = record  # type: ignore[attr-defined]
        text = item.stash.get(changes_key, None)
        if text is not None:
            report.sections.append((CHANGES_SECTION, text))
    elif report.failed:
        item.stash[failed_key] = True


def _record_changes(item: pytest.Item, cleaners: Sequence[Cleaner], settings: Settings) -> None:
    """Before the reset: what the test wrote, for its report - only when it is to be shown
    (a test that passed costs no query with the default 'failed'). Never fails the test: a
    database whose rows cannot be compared gets a line saying why."""
    show = settings.show_changes
    if show == "never" or (show == "failed" and not item.stash.get(failed_key, False)):
        return
    lines: list[str] = []
    for cleaner in cleaners:
        try:
            found: list[TableChanges] | str = cleaner.changes()
        except Exception as exc:  # a dropped table, a lock wait, a lost connection
            found = message(exc)
        lines += format_changes(cleaner.display, found)
    if lines:
        text = "\n".join(lines) + "\n"
        item.stash[changes_key] = text
        # junitxml writes user properties of a test as <property> elements of its testcase.
        item.user_properties.append(("cleandb_rows_written", text))


class _ReportPlugin:
    """--cleandb-report, in the process that prints: gathers the records, prints the summary."""

    def __init__(self, report: Report):
        self.report = report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "cleandb", None)
        if record is not None and report.when == "teardown":
            self.report.add(report.nodeid, record)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_sep("=", "alembic-cleandb report")
        for line in self.report.lines():
            terminalreporter.write_line(line)


def describe(urls: Sequence[str]) -> str:
    return ", ".join(safe_url(u) for u in urls)
