"""What an export must remember of every sample it has seen (ids, images, file names), kept in
sqlite rather than in Python objects, so that memory does not grow with the corpus."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class Ledger:
    """Sets of keys, each key with the value it was first remembered with, in an sqlite
    database: a file at ``path`` (in an export's staging folder, so that a million samples cost
    a few megabytes of memory, not hundreds), or in memory when ``path`` is None (still a
    fraction of what Python's dicts take). The file is scratch: no journal, no syncing, removed
    by ``close``."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._db = sqlite3.connect(":memory:" if path is None else path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("BEGIN")
        self._tables: set[str] = set()

    def remember(self, table: str, key: Any, value: Any = None) -> tuple[bool, Any]:
        """Add ``key`` to ``table`` with ``value`` if it is new: (True, ``value``); else (False,
        the value it was first remembered with)."""
        self._create(table)
        if self._db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", (key, value)).rowcount:
            return True, value
        [first] = self._db.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()
        return False, first

    def add(self, table: str, items: Iterable[tuple[Any, Any]]) -> None:
        """Add keys with their values to ``table``, each unless it is there already."""
        self._create(table)
        self._db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", items)

    def items(self, table: str) -> Iterator[tuple[Any, Any]]:
        """The keys of ``table`` with their values, in sqlite's binary order of the keys (for
        text: Python's order of ``str``), read as they are needed."""
        if table in self._tables:
            yield from self._db.execute(f"SELECT key, value FROM {table} ORDER BY key")

    def _create(self, table: str) -> None:
        if table not in self._tables:
            self._db.execute(f"CREATE TABLE {table} (key PRIMARY KEY, value) WITHOUT ROWID")
            self._tables.add(table)

    def close(self) -> None:
        self._db.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
