import sqlalchemy as sa

import alembic_cleandb


def test_smoke(migrated, engine_factory):
    engine = engine_factory(migrated)
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO lookup_status (code, label) VALUES ('x', 'X')"))
    assert alembic_cleandb.clean(migrated) == 1
    with engine.begin() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM lookup_status")).scalar() == 4
