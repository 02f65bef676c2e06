"""What an export must remember of every sample it has seen (ids, images, file names): in Python
dicts while they are few, then in sqlite, so that memory does not grow with the corpus."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Keys a ledger holds in dicts before it moves them into sqlite: ~10 MB. A dict
# lookup takes a tenth of a microsecond; an sqlite statement takes microseconds and lets the
# validation pool's threads take the GIL from the main process, whose work a re-export waits
# on (10,000 lines: 2.84 s in sqlite, 2.40 s in dicts, medians of five alternating runs).
KEYS_IN_MEMORY = 50_000


class Ledger:
    """Sets of keys, each key with the value it was first remembered with (the keys of a table
    are all text or all bytes; keys and values are what sqlite stores: text without lone
    surrogates, bytes, numbers, None). Up to ``keys_in_memory`` keys in all (by default
    ``KEYS_IN_MEMORY``) are held in dicts; beyond that every key moves into an sqlite database:
    a file at ``path`` (in an export's staging folder, so that a million samples cost a few
    megabytes of memory, not hundreds), or in memory when ``path`` is None (still a fraction of
    what Python's dicts take). The file is scratch: no journal, no syncing, removed by
    ``close``."""

    def __init__(self, path: Path | None = None, keys_in_memory: int | None = None):
        self.path = path
        self._keys_in_memory = KEYS_IN_MEMORY if keys_in_memory is None else keys_in_memory
        self._memory: dict[str, dict[Any, Any]] | None = {}
        self._keys = 0
        self._db: sqlite3.Connection | None = None
        self._tables: set[str] = set()

    def remember(self, table: str, key: Any, value: Any = None) -> tuple[bool, Any]:
        """Add ``key`` to ``table`` with ``value`` if it is new: (True, ``value``); else (False,
        the value it was first remembered with)."""
        if self._memory is not None:
            entries = self._memory.setdefault(table, {})
            if key in entries:
                return False, entries[key]
            entries[key] = value
            self._counted(1)
            return True, value
        db = self._table(table)
        if db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", (key, value)).rowcount:
            return True, value
        [first] = db.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()
        return False, first

    def add(self, table: str, items: Iterable[tuple[Any, Any]]) -> None:
        """Add keys with their values to ``table``, each unless it is there already."""
        if self._memory is not None:
            entries = self._memory.setdefault(table, {})
            before = len(entries)
            for key, value in items:
                entries.setdefault(key, value)
            self._counted(len(entries) - before)
            return
        self._table(table).executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", items)

    def items(self, table: str) -> Iterator[tuple[Any, Any]]:
        """The keys of ``table`` with their values, in the order of the keys (sqlite's binary
        order, which for text is Python's order of ``str``), read as they are needed."""
        if self._memory is not None:
            yield from sorted(self._memory.get(table, {}).items())
        elif table in self._tables:
            assert self._db is not None
            yield from self._db.execute(f"SELECT key, value FROM {table} ORDER BY key")

    def _counted(self, new_keys: int) -> None:
        self._keys += new_keys
        if self._keys > self._keys_in_memory:
            self._move_into_sqlite()

    def _move_into_sqlite(self) -> None:
        assert self._memory is not None
        memory, self._memory = self._memory, None
        for table, entries in memory.items():
            self._table(table).executemany(f"INSERT INTO {table} VALUES (?, ?)", entries.items())

    def _table(self, table: str) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(":memory:" if self.path is None else self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute("BEGIN")
        if table not in self._tables:
            self._db.execute(f"CREATE TABLE {table} (key PRIMARY KEY, value) WITHOUT ROWID")
            self._tables.add(table)
        return self._db

    def close(self) -> None:
        self._memory = None
        if self._db is not None:
            self._db.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
