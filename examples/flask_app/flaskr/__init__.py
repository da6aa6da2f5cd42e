"""A tiny Flask + Flask-SQLAlchemy + Flask-Migrate application (the alembic-cleandb example)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "user"

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(80), nullable=False)


class Notice(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "notice"

    id = sa.Column(sa.Integer, primary_key=True)
    text = sa.Column(sa.String(200), nullable=False)


@migrate.configure
def cleandb_branch(config: Any) -> Any:
    """Test databases get alembic-cleandb's branch: ``FLASK_TESTING=1 flask db upgrade heads``.

    Production (``flask db upgrade``, ``flask db migrate``) never sees it.
    """
    if current_app.testing:
        import alembic_cleandb

        alembic_cleandb.enable(config)
    return config


def database_url() -> str:
    """DATABASE_URL; a relative SQLite path is taken from the working directory, as the
    pytest plugin does (Flask-SQLAlchemy would take it from the instance folder)."""
    url = sa.make_url(os.environ.get("DATABASE_URL", "sqlite:///flaskr.db"))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database).resolve()))
    return url.render_as_string(hide_password=False)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url()
    app.config.from_prefixed_env()  # FLASK_TESTING=1 -> app.testing
    app.config.update(overrides or {})
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))

    @app.post("/users/<name>")
    def add_user(name: str) -> dict[str, Any]:
        user = User(name=name)
        db.session.add(user)
        db.session.commit()
        return {"id": user.id, "name": user.name}

    @app.get("/notices")
    def notices() -> dict[str, Any]:
        return {"notices": [n.text for n in db.session.scalars(sa.select(Notice))]}

    @app.post("/notices/<text>")
    def add_notice(text: str) -> dict[str, Any]:
        db.session.add(Notice(text=text))
        db.session.commit()
        return notices()

    return app
