"""Every plugin setting: an ini option and a command-line option with one help text, resolved
into the one frozen Settings; bad values are usage errors that say what is expected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from alembic_cleandb.testing.plugin import OPTIONS, Settings, settings_key, state_key

pytestmark = pytest.mark.slow  # runs pytest sessions, some with -n 2


def _settings(pytester: pytest.Pytester, *args: str) -> Settings:
    return pytester.parseconfigure(*args).stash[settings_key]


def test_every_option_is_ini_and_command_line_with_one_help(pytester: pytest.Pytester) -> None:
    parser = pytester.parseconfig()._parser
    flags = {
        name: argument
        for group in parser._groups
        for argument in group.options
        for name in argument.names()
    }
    for option in OPTIONS:
        assert parser._inidict[option.name][0] == option.help
        assert flags[option.flag].attrs()["help"] == option.help
        assert option.flag.startswith("--cleandb-")
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {o.name.removeprefix("cleandb_") for o in OPTIONS} == fields
    help_text = pytester.runpytest("--help").stdout.str()
    for option in OPTIONS:
        assert option.flag in help_text and option.name in help_text


def test_defaults(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLEANDB_URLS", raising=False)
    settings = _settings(pytester)
    assert settings == Settings(urls=())
    assert (settings.lock_timeout, settings.on_failure, settings.worker_dbs) == (
        5.0,
        "fail",
        "recreate",
    )
    assert settings.url_env is None and settings.migrate is None and settings.report is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.report = True  # type: ignore[misc]


def test_ini_values(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLEANDB_URLS", raising=False)
    monkeypatch.setenv("APP_DB", "unchanged")
    pytester.makeini(
        """
        [pytest]
        cleandb_urls =
            sqlite:///one_test.db
            postgresql://u@h/two_test
        cleandb_lock_timeout = 2.5
        cleandb_on_failure = exit
        cleandb_url_env = APP_DB
        cleandb_worker_dbs = reuse
        cleandb_migrate = conf/alembic.ini:tests
        cleandb_report = true
        """
    )
    config = pytester.parseconfigure()
    settings = config.stash[settings_key]
    assert settings.urls == ("sqlite:///one_test.db", "postgresql://u@h/two_test")
    assert settings.lock_timeout == 2.5 and settings.on_failure == "exit"
    assert settings.url_env == "APP_DB" and settings.worker_dbs == "reuse"
    assert settings.migrate == (Path(pytester.path) / "conf/alembic.ini", "tests")
    assert settings.report is True
    # State lives in config.stash; the URL variable is set at configure time.
    assert config.stash[state_key].urls == list(settings.urls)
    import os

    assert os.environ["APP_DB"] == "sqlite:///one_test.db"


def test_command_line_beats_environment_beats_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        "[pytest]\ncleandb_urls = sqlite:///ini_test.db\ncleandb_worker_dbs = reuse\n"
        "cleandb_lock_timeout = 9\n"
    )
    monkeypatch.delenv("CLEANDB_URLS", raising=False)
    assert _settings(pytester).urls == ("sqlite:///ini_test.db",)
    monkeypatch.setenv("CLEANDB_URLS", "sqlite:///env1_test.db, sqlite:///env2_test.db")
    assert _settings(pytester).urls == ("sqlite:///env1_test.db", "sqlite:///env2_test.db")
    settings = _settings(
        pytester,
        "--cleandb-url=sqlite:///cli1_test.db",
        "--cleandb-url",
        "sqlite:///cli2_test.db",
        "--cleandb-worker-dbs=recreate",
        "--cleandb-lock-timeout=1",
        "--cleandb-report",
        "--cleandb-migrate=alembic.ini",
    )
    assert settings.urls == ("sqlite:///cli1_test.db", "sqlite:///cli2_test.db")
    assert settings.worker_dbs == "recreate" and settings.lock_timeout == 1.0
    assert settings.report is True
    assert settings.migrate == (Path.cwd() / "alembic.ini", None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cleandb-lock-timeout=0"], "cleandb_lock_timeout must be a positive number*"),
        (["--cleandb-lock-timeout=soon"], "cleandb_lock_timeout must be a positive number*"),
        (["--cleandb-on-failure=ignore"], "cleandb_on_failure must be one of fail, exit*"),
        (
            ["--cleandb-url=sqlite:///a_test.db", "--cleandb-worker-dbs=keep"],
            "cleandb_worker_dbs must be one of recreate, reuse, not 'keep'",
        ),
        (
            ["--cleandb-url=sqlite:///a_test.db", "--cleandb-url-env=DATABASE URL"],
            "cleandb_url_env must be an environment variable name*",
        ),
        (["--cleandb-url-env=DATABASE_URL"], "cleandb_url_env = DATABASE_URL needs a configured*"),
        (["--cleandb-migrate=alembic.ini"], "cleandb_migrate needs a configured database*"),
        (["--cleandb-url=not a url"], "*is not a database URL*"),
    ],
)
def test_bad_values_are_usage_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.delenv("CLEANDB_URLS", raising=False)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_no_database_configured_means_the_plugin_does_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLEANDB_URLS", raising=False)
    pytester.makepyfile(
        test_one="""
        import pytest

        def test_one(cleandb_urls):
            assert cleandb_urls == []

        def test_url(request):
            with pytest.raises(pytest.UsageError, match="needs a configured database"):
                request.getfixturevalue("cleandb_url")
        """
    )
    result = pytester.runpytest("-n", "2", "--cleandb-report")
    result.assert_outcomes(passed=2)
    assert "cleandb:" not in result.stdout.str()
