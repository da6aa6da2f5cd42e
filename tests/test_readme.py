"""Every Python example in README.md runs here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import alembic_cleandb
from alembic_cleandb.__main__ import main as cli

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def block(containing: str) -> str:
    (found,) = [b for b in BLOCKS if containing in b]
    return found


def test_every_python_block_is_covered_here() -> None:
    assert len(BLOCKS) == 4


def test_env_py_example_passes_the_hooks_to_configure() -> None:
    seen: dict[str, Any] = {}

    class Context:
        def configure(self, **kw: Any) -> None:
            seen.update(kw)

    exec(
        block("context.configure("),
        {"context": Context(), "connection": "c", "target_metadata": None},
    )
    assert seen["connection"] == "c"
    assert {"include_object", "include_name", "on_version_apply"} <= set(seen)
    assert seen["include_object"](None, "cleandb_tables", "table", True, None) is False


def test_programmatic_install_example(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli(["init", "migrations"])
    url = f"sqlite:///{tmp_path / 'app_test.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    exec(block("command.upgrade("), {})
    assert alembic_cleandb.clean(url) == 0  # tracking is installed


MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("t")
"""


def test_conftest_example(pytester: pytest.Pytester, monkeypatch) -> None:
    """The README's conftest.py, as it is, in a project made by `init`: the database is
    created and migrated at run time, and the application's engine reads DATABASE_URL."""
    monkeypatch.chdir(pytester.path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cli(["init", "migrations"])
    (pytester.path / "migrations" / "versions" / "0001_t.py").write_text(MIGRATION)
    pytester.makeconftest(block("def cleandb_urls("))
    pytester.makepyfile(
        test_app="""
import os

import sqlalchemy as sa

def _insert():
    engine = sa.create_engine(os.environ["DATABASE_URL"])
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO t DEFAULT VALUES")
        return c.exec_driver_sql("SELECT COUNT(*), MAX(id) FROM t").one()

def test_a():
    assert tuple(_insert()) == (1, 1)

def test_b():
    assert tuple(_insert()) == (1, 1)
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end == -1 else end]


def test_the_readme_test_commands_are_what_ci_runs_and_what_pyproject_declares() -> None:
    """.ci/run runs the README's test command (the line after its "== pytest" banner); the
    README names the fast tier's marker, which pyproject.toml registers."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    banner = next(i for i, line in enumerate(ci) if line.startswith('echo "== pytest'))
    command = ci[banner + 1].strip()
    blocks = re.findall(r"```\n(.*?)```", _section("Development"), re.S)
    assert command in [b.strip() for b in blocks]
    assert 'python -m pytest -m "not slow" -n auto' in [b.strip() for b in blocks]
    assert '\n    "slow: ' in (ROOT / "pyproject.toml").read_text()
    assert "pip install -q -e . --group dev" in "\n".join(ci)


def test_scoped_seed_example(pytester: pytest.Pytester, migrated: str) -> None:
    """The cleandb_scope example (README and docs/pytest-plugin.md) in a user's project: the
    catalog is there for every test of the module, fresh, and gone after it."""
    docs = (ROOT / "docs" / "pytest-plugin.md").read_text()
    (plugin_docs,) = [
        b for b in re.findall(r"```python\n(.*?)```", docs, re.S) if "cleandb_scope" in b
    ]
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\ncleandb_url_env = DATABASE_URL\n")
    pytester.makeconftest(
        """
import os

import sqlalchemy as sa

def _categories(statement):
    engine = sa.create_engine(os.environ["DATABASE_URL"])  # "the app's own engine"
    try:
        with engine.begin() as c:
            category = sa.Table("category", sa.MetaData(), autoload_with=c)
            result = c.execute(statement(category))
            return [r.name for r in result] if result.returns_rows else None
    finally:
        engine.dispose()

def load_catalog():
    _categories(lambda t: t.insert().values([{"name": "books"}, {"name": "music"}]))

def catalog_names():
    return _categories(lambda t: sa.select(t.c.name).order_by(t.c.id))
"""
    )
    checks = """
from conftest import catalog_names, load_catalog

def test_1_sees_the_catalog_and_empties_it(catalog):
    assert catalog_names() == ["books", "music"]
    load_catalog()

def test_2_sees_it_fresh(catalog):
    assert catalog_names() == ["books", "music"]
"""
    after = """
from conftest import catalog_names

def test_3_the_catalog_is_gone():
    assert catalog_names() == []
"""
    pytester.makepyfile(
        test_a_readme=block("cleandb_scope") + checks,
        test_b_docs="import pytest\n" + plugin_docs + checks,
        test_c_after=after,
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=6)
