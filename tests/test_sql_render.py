"""The renderer (``alembic_cleandb._sql``), whole statements, without a server: the text and
parameters each driver gets, for names that need quoting and values of every kind."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from alembic_cleandb._sql import (
    SQL,
    Identifier,
    Literal,
    Value,
    display_name,
    error_number,
    inline,
    message,
    render,
    sqlstate,
)

AWKWARD = '50%_off it\'s "q" `b`;x'


def dialect(url: str) -> sa.Dialect:
    return sa.create_engine(url).dialect  # (no connection is made)


PSYCOPG = dialect("postgresql+psycopg://u@h/d")  # pyformat
PSYCOPG2 = dialect("postgresql+psycopg2://u@h/d")  # pyformat
PG8000 = dialect("postgresql+pg8000://u@h/d")  # format
PYMYSQL = dialect("mariadb+pymysql://u@h/d")  # pyformat
MYSQLDB = dialect("mysql+mysqldb://u@h/d")  # format
SQLITE = dialect("sqlite://")  # qmark
STATEMENT = SQL("SELECT {} FROM {} WHERE {} = {} AND n LIKE '5%'").format(
    "col", Identifier("s", AWKWARD), "k", Value(7)
)


@pytest.mark.parametrize(
    ("d", "text", "params"),
    [
        (
            PSYCOPG,
            'SELECT "col" FROM "s"."50%%_off it\'s ""q"" `b`;x" WHERE "k" = %(p0)s '
            "AND n LIKE '5%%'",
            {"p0": 7},
        ),
        (
            PSYCOPG2,
            'SELECT "col" FROM "s"."50%%_off it\'s ""q"" `b`;x" WHERE "k" = %(p0)s '
            "AND n LIKE '5%%'",
            {"p0": 7},
        ),
        (
            PG8000,
            'SELECT "col" FROM "s"."50%%_off it\'s ""q"" `b`;x" WHERE "k" = %s AND n LIKE \'5%%\'',
            (7,),
        ),
        (
            PYMYSQL,
            'SELECT `col` FROM `s`.`50%%_off it\'s "q" ``b``;x` WHERE `k` = %(p0)s '
            "AND n LIKE '5%%'",
            {"p0": 7},
        ),
        (
            MYSQLDB,
            "SELECT `col` FROM `s`.`50%%_off it's \"q\" ``b``;x` WHERE `k` = %s AND n LIKE '5%%'",
            (7,),
        ),
        (
            SQLITE,
            'SELECT "col" FROM "s"."50%_off it\'s ""q"" `b`;x" WHERE "k" = ? AND n LIKE \'5%\'',
            (7,),
        ),
    ],
)
def test_a_statement_with_parameters_in_each_paramstyle(
    d: sa.Dialect, text: str, params: object
) -> None:
    assert render(STATEMENT, d) == (text, params)


@pytest.mark.parametrize("d", [PSYCOPG, PG8000, PYMYSQL, MYSQLDB, SQLITE])
def test_without_parameters_percent_stays_single(d: sa.Dialect) -> None:
    """No parameter collection goes to the driver then, so no driver reads ``%``."""
    text, params = render(SQL("SELECT COUNT(*) FROM {}").format(AWKWARD), d)
    assert params is None
    q = d.identifier_preparer.initial_quote
    assert "%%" not in text and text.startswith(f"SELECT COUNT(*) FROM {q}50%_off")


def test_inline_writes_values_as_literals_per_dialect() -> None:
    statement = SQL("INSERT INTO {} VALUES ({}, {}, {}, {}, {})").format(
        AWKWARD, Value("it's 100% \\ done"), Value(None), Value(3), Value(True), Literal(1.5)
    )
    assert inline(statement, PSYCOPG) == (
        'INSERT INTO "50%_off it\'s ""q"" `b`;x" '
        "VALUES ('it''s 100% \\ done', NULL, 3, TRUE, 1.5)"
    )
    # MySQL reads backslashes in strings (unless NO_BACKSLASH_ESCAPES): doubled.
    assert inline(statement, PYMYSQL) == (
        'INSERT INTO `50%_off it\'s "q" ``b``;x` '
        "VALUES ('it''s 100% \\\\ done', NULL, 3, TRUE, 1.5)"
    )


def test_postgresql_text_arrays_and_format_fields() -> None:
    d = postgresql.dialect()  # type: ignore[no-untyped-call]
    statement = SQL("SELECT {a}, {b}, {{literal braces}}").format(
        a=Literal(("x", "it's")), b=Identifier("t")
    )
    assert inline(statement, d) == "SELECT ARRAY['x', 'it''s']::text[], \"t\", {literal braces}"
    assert inline(SQL(", ").join(["a", Literal(None)]), d) == '"a", NULL'


def test_named_and_numeric_paramstyles() -> None:
    statement = SQL("SELECT {}, {}").format(Value(1), Value("%"))
    for style, expected in [
        ("named", ("SELECT :p0, :p1", {"p0": 1, "p1": "%"})),
        ("numeric", ("SELECT :1, :2", (1, "%"))),
        ("numeric_dollar", ("SELECT $1, $2", (1, "%"))),
    ]:
        d = mysql.dialect(paramstyle=style)  # type: ignore[no-untyped-call]
        assert render(statement, d) == expected


def test_no_format_spec_in_fields() -> None:
    with pytest.raises(ValueError, match="no format spec"):
        SQL("SELECT {:>3}").format(Value(1))


def test_error_codes_and_messages_of_driver_errors() -> None:
    import pg8000.dbapi
    import psycopg.errors

    lock = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout\nmore")
    assert sqlstate(lock) == "55P03"
    assert message(lock) == "canceling statement due to lock timeout"
    wrapped = sa.exc.OperationalError("SELECT 1", {}, lock)
    assert sqlstate(wrapped) == "55P03" and message(wrapped) == message(lock)

    pg8000_error = pg8000.dbapi.DatabaseError({"C": "42P01", "M": 'relation "x" does not exist'})
    assert sqlstate(pg8000_error) == "42P01"
    assert message(pg8000_error) == 'relation "x" does not exist'

    mysql_error = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    assert error_number(sa.exc.OperationalError("CALL x()", {}, mysql_error)) == 1205
    assert message(mysql_error) == "Lock wait timeout exceeded"
    assert sqlstate(mysql_error) is None


def test_names_in_messages_are_quoted_only_where_needed_and_never_doubled() -> None:
    assert display_name(PSYCOPG, "lookup_status") == "lookup_status"
    assert display_name(PSYCOPG, "Order") == '"Order"'
    assert display_name(PSYCOPG, "50%_off") == '"50%_off"'
    assert display_name(PYMYSQL, "50%_off") == "`50%_off`"
