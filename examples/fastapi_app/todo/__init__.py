"""A tiny FastAPI + async SQLAlchemy application (the alembic-cleandb example)."""
