"""A custom ``version_table`` (and ``version_table_schema``): reused worker databases follow
the base's migrations, and the pytest header shows the revision."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa

from conftest import ROOT

pytestmark = pytest.mark.slow  # runs pytest -n 2 sessions

SEED_MIGRATION = '''"""one more seed row"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("INSERT INTO lookup_status (id, code, label) VALUES (5, 'lost', 'Lost')")


def downgrade():
    op.execute("DELETE FROM lookup_status WHERE id = 5")
'''

TESTS = """
import pytest
import sqlalchemy as sa

@pytest.mark.parametrize("i", range(4))
def test_seed(i, cleandb_url):
    engine = sa.create_engine(cleandb_url)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM lookup_status")).scalar() == {expected}
    engine.dispose()
"""


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite"], indirect=True)
def test_reuse_follows_the_base_with_a_custom_version_table(
    pytester: pytest.Pytester, databases, backend: str
) -> None:
    url = databases.create(f"cleandb_vt_{backend}_test")
    options = 'version_table="schema_migrations"'
    if backend == "postgresql":
        options += ', version_table_schema="meta"'
        target = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with target.connect() as c:
            c.exec_driver_sql("CREATE SCHEMA meta")
        target.dispose()
    migrations = pytester.path / "migrations"
    shutil.copytree(ROOT / "tests" / "migrations", migrations)
    env = (migrations / "env.py").read_text()
    assert env.count("**alembic_cleandb.env_options(),") == 3
    env = env.replace(
        "**alembic_cleandb.env_options(),", f"{options}, **alembic_cleandb.env_options(),"
    )
    (migrations / "env.py").write_text(env)
    (pytester.path / "alembic.ini").write_text(
        (ROOT / "alembic.ini").read_text().replace("%(here)s/tests/migrations", str(migrations))
    )
    pytester.makeini(
        f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = alembic.ini:cleandb\n"
        "cleandb_worker_dbs = reuse\n"
    )
    pytester.makepyfile(test_seed=TESTS.format(expected=4))
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["cleandb: * alembic 0002,cleandb_*)"])
    # A new migration adds a seed row: the copies are behind the base and must not be reused.
    (migrations / "versions" / "0003_seed.py").write_text(SEED_MIGRATION)
    pytester.makepyfile(test_seed=TESTS.format(expected=5))
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["cleandb: * alembic 0003,cleandb_*)"])
    # The copies stay (reuse); drop them with the base.
    if backend != "sqlite":
        databases.created += [f"cleandb_vt_{backend}_test_gw0", f"cleandb_vt_{backend}_test_gw1"]
