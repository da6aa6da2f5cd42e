"""A tiny shop: the application under test in alembic-cleandb's example."""
