"""What a test wrote: the rows of each dirty table that differ from its baseline.

:meth:`alembic_cleandb.Cleaner.changes` reads the dirty marks (without consuming them) and
compares each marked table with the baseline tracking keeps, in one read-only query per table;
:func:`format_changes` turns the result into the text the pytest plugin shows in a failed
test's report (``cleandb_show_changes``).

Rows are matched by primary key where the table has one: a key present only now is an added
row, only in the baseline a removed row, in both with other values a changed row. A table
without a primary key is compared as a multiset: a row present three times in the baseline and
twice now is one removed row.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ChangedRow", "Row", "TableChanges", "format_changes", "format_value"]

#: Rows shown per table and kind (added, removed, changed) unless told otherwise.
DEFAULT_LIMIT = 20
#: Characters of one value shown before it is shortened.
VALUE_WIDTH = 40

Values = tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Row:
    """An added or removed row: ``(column, value)`` pairs in column order."""

    values: Values
    #: How many such rows (more than 1 only in a table without a primary key).
    count: int = 1


@dataclass(frozen=True)
class ChangedRow:
    """A row whose key is in the baseline and now, with other values."""

    key: Values
    #: ``(column, old, new)`` of every column that differs.
    columns: tuple[tuple[str, object, object], ...]


@dataclass(frozen=True)
class TableChanges:
    """How one table differs from its baseline; at most ``limit`` rows of each kind."""

    table: str  # display name: quoted where needed, schema-qualified outside the current one
    key: tuple[str, ...]  # primary key columns (empty: compared as a multiset)
    added: tuple[Row, ...] = ()
    removed: tuple[Row, ...] = ()
    changed: tuple[ChangedRow, ...] = ()
    #: Row counts of each kind, including those beyond the limit.
    added_total: int = 0
    removed_total: int = 0
    changed_total: int = 0

    def __bool__(self) -> bool:
        return bool(self.added_total or self.removed_total or self.changed_total)

    @classmethod
    def from_rows(
        cls,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        rows: Iterable[Sequence[Any]],
    ) -> TableChanges:
        """From the rows of the difference query (see ``Backend.changes``): the columns' values,
        then ``n`` (rows now minus rows in the baseline), the kind (0 changed, 1 added,
        2 removed) and the kind's total of ``|n|``; a changed row comes as two rows of one key,
        the baseline's (``n`` < 0) and the current one."""
        width = len(columns)
        added: list[Row] = []
        removed: list[Row] = []
        changed: list[ChangedRow] = []
        totals = [0, 0, 0]
        pending: dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]] = {}
        index = [columns.index(k) for k in key]
        for row in rows:
            values = tuple(row[:width])
            n, kind = int(row[width]), int(row[width + 1])
            totals[kind] = int(row[width + 2])
            if kind == 1:
                added.append(Row(tuple(zip(columns, values, strict=True)), n))
            elif kind == 2:
                removed.append(Row(tuple(zip(columns, values, strict=True)), -n))
            else:
                k = tuple(values[i] for i in index)
                other = pending.pop(k, None)
                if other is None:
                    pending[k] = (n, values)
                    continue
                old, new = (other[1], values) if other[0] < 0 else (values, other[1])
                changed.append(
                    ChangedRow(
                        tuple((c, values[i]) for c, i in zip(key, index, strict=True)),
                        tuple(
                            (c, o, v)
                            for c, o, v in zip(columns, old, new, strict=True)
                            if not _same(o, v)
                        ),
                    )
                )
        return cls(
            table,
            tuple(key),
            tuple(added),
            tuple(removed),
            tuple(changed),
            totals[1],
            totals[2],
            totals[0] // 2,
        )


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


def format_value(value: object, width: int = VALUE_WIDTH) -> str:
    """One value as the section shows it: strings quoted, numbers bare, NULL, and anything
    longer than ``width`` characters shortened (with its full length)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        text = str(value)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        text = "x'" + data.hex() + "'"
        if len(text) > width:
            return f"x'{data[: width // 2].hex()}…' ({len(data)} bytes)"
        return text
    elif isinstance(value, datetime.date | datetime.time | datetime.timedelta | uuid.UUID):
        text = repr(str(value))
    elif isinstance(value, str):
        text = repr(value)
        if len(value) > width:
            return f"{repr(value[:width])[:-1]}…' ({len(value)} chars)"
    else:
        text = repr(value)
    if len(text) > width:
        return f"{text[:width]}… ({len(text)} chars)"
    return text


def _values(values: Values) -> str:
    return ", ".join(f"{c}={format_value(v)}" for c, v in values)


def _more(shown: int, total: int, what: str) -> list[str]:
    return [f"… and {total - shown} more {what}"] if total > shown else []


def table_lines(changes: TableChanges) -> list[str]:
    """The lines of one table: a heading, then ``+``, ``-`` and ``~`` lines."""
    counts = []
    for total, what in (
        (changes.added_total, "added"),
        (changes.removed_total, "removed"),
        (changes.changed_total, "changed"),
    ):
        if total:
            counts.append(f"{total} {what}")
    how = f"key {', '.join(changes.key)}" if changes.key else "no primary key"
    lines = [f"table {changes.table} ({how}): {', '.join(counts)}"]
    for sign, rows, total, what in (
        ("+", changes.added, changes.added_total, "added"),
        ("-", changes.removed, changes.removed_total, "removed"),
    ):
        for row in rows:
            times = f" ×{row.count}" if row.count > 1 else ""
            lines.append(f"  {sign} ({_values(row.values)}){times}")
        lines += [f"  {line}" for line in _more(sum(r.count for r in rows), total, what)]
    for change in changes.changed:
        diffs = ", ".join(
            f"{c} {format_value(o)} → {format_value(n)}" for c, o, n in change.columns
        )
        lines.append(f"  ~ {_values(change.key)}: {diffs}")
    lines += [f"  {line}" for line in _more(len(changes.changed), changes.changed_total, "changed")]
    return lines


def format_changes(database: str, tables: Sequence[TableChanges] | str) -> list[str]:
    """The section's lines for one database (``database``: its URL, password hidden):
    ``tables`` as :meth:`~alembic_cleandb.Cleaner.changes` returned them, or the reason they
    could not be read. No lines when the test changed nothing there."""
    if isinstance(tables, str):
        return [f"{database}: could not compare with the baseline: {tables}"]
    written = [t for t in tables if t]
    if not written:
        return []
    lines = [database]
    for table in written:
        lines += [f"  {line}" for line in table_lines(table)]
    return lines
