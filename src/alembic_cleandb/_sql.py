"""The one way alembic-cleandb renders and runs SQL (after psycopg's ``sql`` module).

A statement is built from pieces that know what they are:

- :class:`SQL`: trusted text written in this library (never a name or value from outside);
  ``SQL("SELECT {} FROM {}").format(a, b)`` fills its ``{}`` with other pieces;
- :class:`Identifier`: a name (``schema.table`` as two parts), quoted the dialect's way;
- :class:`Literal`: a value written into the text (DDL, stored statements, ``--sql`` output);
- :class:`Value`: a value sent as a driver parameter (written as a literal only where no
  driver runs the text, e.g. ``--sql``).

:func:`render` turns a statement into ``(text, parameters)`` for one dialect, once: the
placeholders are the driver's own (``dialect.paramstyle``: ``%s``, ``%(p0)s``, ``?``, ``:p0``,
``$1``), and a ``%`` in the text is doubled exactly when the driver will read the text as a
format string (a ``format``/``pyformat`` driver given parameters). :func:`execute` runs it on a
SQLAlchemy connection; :func:`driver_call` prepares it once for a call repeated after every
test. Nothing else in the library quotes, escapes ``%`` or picks a placeholder.

Errors: :func:`message` is a driver error's own first line; :func:`sqlstate` and
:func:`error_number` classify an error by PostgreSQL's SQLSTATE or the MySQL server's error
number, never by its text.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from sqlalchemy.engine import Connection, CursorResult, Dialect

if TYPE_CHECKING:  # SQLAlchemy's own typing helpers; SQLAlchemy 2.0.0 has no TupleAny
    from sqlalchemy.util.typing import TupleAny, Unpack

__all__ = [
    "SQL",
    "Composable",
    "Composed",
    "Identifier",
    "Literal",
    "Value",
    "Statement",
    "render",
    "inline",
    "execute",
    "driver_call",
    "message",
    "sqlstate",
    "error_number",
]

_FORMATTER = string.Formatter()


class _Param:
    """Where a parameter goes, while a statement is being rendered."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value


#: A rendered piece: text, or a parameter.
_Chunk = Union[str, _Param]


class Composable:
    """Anything that renders into a statement."""

    __slots__ = ()

    def _chunks(self, dialect: Dialect) -> Iterable[_Chunk]:
        raise NotImplementedError

    def __add__(self, other: Composable) -> Composed:
        return Composed([self, other])

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars_of(self) == vars_of(other)

    def __hash__(self) -> int:
        return hash((type(self), repr(vars_of(self))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, vars_of(self)))})"


def vars_of(piece: Composable) -> tuple[Any, ...]:
    slots: tuple[str, ...] = getattr(type(piece), "__slots__", ())
    return tuple(getattr(piece, s) for s in slots)


class SQL(Composable):
    """Text written in this library. ``{}``/``{name}`` are filled by :meth:`format`."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def _chunks(self, dialect: Dialect) -> Iterable[_Chunk]:
        yield self.text

    def format(self, *args: Composable | str, **kwargs: Composable | str) -> Composed:
        """Fill the ``{}`` fields: a :class:`Composable`, or a ``str`` taken as a name
        (:class:`Identifier`). ``{{`` and ``}}`` stand for braces."""
        parts: list[Composable] = []
        auto = 0
        for text, field, spec, conv in _FORMATTER.parse(self.text):
            if spec or conv:
                raise ValueError(f"no format spec or conversion in SQL fields: {self.text!r}")
            if text:
                parts.append(SQL(text))
            if field is None:
                continue
            if field == "":
                piece = args[auto]
                auto += 1
            elif field.isdigit():
                piece = args[int(field)]
            else:
                piece = kwargs[field]
            parts.append(Identifier(piece) if isinstance(piece, str) else piece)
        return Composed(parts)

    def join(self, pieces: Iterable[Composable | str]) -> Composed:
        """The pieces with this text between them (``str`` pieces are names)."""
        out: list[Composable] = []
        for piece in pieces:
            if out:
                out.append(self)
            out.append(Identifier(piece) if isinstance(piece, str) else piece)
        return Composed(out)


class Composed(Composable):
    """A sequence of pieces."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Composable]):
        self.parts = tuple(parts)

    def _chunks(self, dialect: Dialect) -> Iterable[_Chunk]:
        for part in self.parts:
            yield from part._chunks(dialect)

    def __add__(self, other: Composable) -> Composed:
        return Composed([*self.parts, other])


class Identifier(Composable):
    """A name, quoted by the dialect's rules; several parts are joined with ``.``."""

    __slots__ = ("names",)

    def __init__(self, *names: str):
        if not names:
            raise TypeError("Identifier needs at least one name")
        self.names = tuple(names)

    def _chunks(self, dialect: Dialect) -> Iterable[_Chunk]:
        yield ".".join(quote_name(dialect, n) for n in self.names)


def quote_name(dialect: Dialect, name: str) -> str:
    """``name`` always quoted, the quote character doubled inside it - never ``%`` doubled
    (SQLAlchemy's ``identifier_preparer.quote`` doubles it for ``format`` drivers; here
    :func:`render` alone decides, for the whole text at once)."""
    p = dialect.identifier_preparer
    return p.initial_quote + name.replace(p.escape_quote, p.escape_to_quote) + p.final_quote


def display_name(dialect: Dialect, name: str) -> str:
    """``name`` for a message: quoted only where the dialect needs it (``lookup_status``,
    ``"Order"``), and never with ``%`` doubled."""
    requires: bool = dialect.identifier_preparer._requires_quotes(name)
    return quote_name(dialect, name) if requires else name


class Literal(Composable):
    """A value written into the text: ``None``, ``bool``, ``int``, ``float`` or ``str``, or
    a sequence of strings (PostgreSQL: ``ARRAY[...]::text[]``)."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value

    def _chunks(self, dialect: Dialect) -> Iterable[_Chunk]:
        yield literal(dialect, self.value)


def literal(dialect: Dialect, value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = value.replace("'", "''")
        # MySQL reads backslash escapes in strings unless sql_mode says NO_BACKSLASH_ESCAPES
        # (SQLAlchemy learns which on connect; offline it assumes they are read).
        if getattr(dialect, "_backslash_escapes", False):
            text = text.replace("\\", "\\\\")
        return f"'{text}'"
    if isinstance(value, (list, tuple)) and dialect.name == "postgresql":
        items = ", ".join(literal(dialect, v) for v in value)
        return f"ARRAY[{items}]::text[]"
    raise TypeError(f"no SQL literal for {type(value).__name__} {value!r}")


class Value(Composable):
    """A value passed to the driver as a parameter."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value

    def _chunks(self, dialect: Dialect) -> Iterable[_Chunk]:
        yield _Param(self.value)


#: What the functions below accept: a composed statement, or plain trusted text.
Statement = Union[Composable, str]

Parameters = Union[tuple[Any, ...], dict[str, Any], None]


def _placeholder(style: str, index: int) -> str:
    if style == "qmark":
        return "?"
    if style == "format":
        return "%s"
    if style == "pyformat":
        return f"%(p{index})s"
    if style == "named":
        return f":p{index}"
    if style == "numeric":
        return f":{index + 1}"
    if style == "numeric_dollar":
        return f"${index + 1}"
    raise ValueError(f"unsupported DB-API paramstyle {style!r}")


def render(statement: Statement, dialect: Dialect) -> tuple[str, Parameters]:
    """``(text, parameters)`` for ``dialect``'s driver; ``parameters`` is ``None`` when the
    statement has none (then the driver must be called without any, and ``%`` stays ``%``)."""
    if isinstance(statement, str):
        return statement, None
    chunks = list(statement._chunks(dialect))
    values = [c.value for c in chunks if isinstance(c, _Param)]
    if not values:
        return "".join(c for c in chunks if isinstance(c, str)), None
    style = dialect.paramstyle
    percent = style in ("format", "pyformat")
    parts: list[str] = []
    index = 0
    for chunk in chunks:
        if isinstance(chunk, str):
            parts.append(chunk.replace("%", "%%") if percent else chunk)
        else:
            parts.append(_placeholder(style, index))
            index += 1
    params: Parameters
    if style in ("pyformat", "named"):
        params = {f"p{i}": v for i, v in enumerate(values)}
    else:
        params = tuple(values)
    return "".join(parts), params


def inline(statement: Statement, dialect: Dialect) -> str:
    """The statement as text with every value written as a literal (``--sql`` output, SQL
    stored to be run later by the database itself)."""
    if isinstance(statement, str):
        return statement
    return "".join(
        c if isinstance(c, str) else literal(dialect, c.value) for c in statement._chunks(dialect)
    )


def execute(connection: Connection, statement: Statement) -> CursorResult[Unpack[TupleAny]]:
    """Run ``statement`` on ``connection`` (in its transaction, if one is open)."""
    text, params = render(statement, connection.dialect)
    if params is None:
        # The driver gets no parameter collection at all, so it reads no ``%`` either.
        return connection.exec_driver_sql(text, execution_options={"no_parameters": True})
    return connection.exec_driver_sql(text, params)


def driver_call(connection: Connection, statement: Statement) -> Callable[[], Any]:
    """A function that runs ``statement`` on the driver's own cursor and returns the first
    column of its first row (``None`` if no row): rendered once, for a call repeated after
    every test, without SQLAlchemy's per-call work. Errors are the driver's own."""
    text, params = render(statement, connection.dialect)
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    args: tuple[Any, ...] = () if params is None else (params,)
    # CALL on MySQL returns a trailing status result; PostgreSQL drivers return one result
    # (psycopg2 even refuses nextset()).
    drain = connection.dialect.name in ("mysql", "mariadb")

    def call() -> Any:
        cursor = dbapi.cursor()
        try:
            cursor.execute(text, *args)
            row = cursor.fetchone() if cursor.description else None
            while drain and cursor.nextset():
                pass
        finally:
            cursor.close()
        return row[0] if row else None

    return call


# -- errors -------------------------------------------------------------------------------


def _orig(exc: BaseException) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper (or ``exc`` itself)."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def message(exc: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's wrapping."""
    orig = _orig(exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # pg8000 carries PostgreSQL's fields in a dict: its message is under "M".
    if args and isinstance(args[0], Mapping) and "M" in args[0]:
        text = str(args[0]["M"])
    elif len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]  # the MySQL drivers' (error number, message)
    else:
        text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE of a driver error (psycopg, psycopg2, pg8000, asyncpg)."""
    seen: set[int] = set()
    current: BaseException | None = _orig(exc)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for attribute in ("sqlstate", "pgcode"):  # psycopg / asyncpg; psycopg2
            code = getattr(current, attribute, None)
            if isinstance(code, str) and code:
                return code
        args = getattr(current, "args", ())
        if args and isinstance(args[0], Mapping) and isinstance(args[0].get("C"), str):
            return str(args[0]["C"])  # pg8000
        current = current.__cause__  # SQLAlchemy's async adapters wrap the driver's error
    return None


def error_number(exc: BaseException) -> int | None:
    """The MySQL/MariaDB server's error number of a driver error (PyMySQL, mysqlclient,
    asyncmy, aiomysql), or SQLite's extended result code."""
    seen: set[int] = set()
    current: BaseException | None = _orig(exc)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code
        args = getattr(current, "args", ())
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            return args[0]
        current = current.__cause__
    return None
