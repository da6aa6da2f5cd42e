"""Writes through the app's own request cycle, and a test that leaves a transaction open."""

from flaskr import User


def test_post_user(client):
    assert client.post("/users/ann").get_json() == {"id": 1, "name": "ann"}
    assert client.post("/users/bob").get_json() == {"id": 2, "name": "bob"}


def test_flush_without_commit(session):
    user = User(name="committed")
    session.add(user)
    session.commit()
    # Flushed, never committed: the transaction (and its lock on the row the reset must
    # delete) stays open until the session is removed - conftest.py does that first.
    user.name = "flushed"
    session.add(User(name="pending"))
    session.flush()
    assert session.query(User).count() == 2


def test_starts_empty(session):
    assert session.query(User).count() == 0


def test_notices_start_empty(client):
    # The migration's welcome notice was deleted once, before the baseline was taken.
    assert client.get("/notices").get_json() == {"notices": []}
    assert client.post("/notices/hello").get_json() == {"notices": ["hello"]}


def test_notices_start_empty_again(client):
    assert client.get("/notices").get_json() == {"notices": []}
