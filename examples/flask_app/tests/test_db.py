"""The two tests of the Flask user's question (Stack Overflow, "Isolating py.test DB sessions
in Flask-SQLAlchemy"): both pass only if the database is really reset between them."""

from flaskr import User


def test_user_schema1(session):
    person_name = "Fran Clan"
    uu = User(name=person_name)
    session.add(uu)
    session.commit()

    assert uu.id == 1
    assert uu.name == person_name


def test_user_schema2(session):
    person_name = "Stan Clan"
    uu = User(name=person_name)
    session.add(uu)
    session.commit()

    assert uu.id == 1
    assert uu.name == person_name
