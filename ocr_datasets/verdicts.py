"""The verdict cache: what validation learnt of each image that passed, kept by the image's sha256
so that re-exporting a growing archive decodes only the images it has not seen.

It lives in the export folder, ``<export root>/.ocr-datasets/verdicts.sqlite`` (hidden, so
``list_exports`` never sees it), and holds no image data and no text: per image only its
sha256, size, mode, format, whether it carries private metadata and the sha256 of its cleaned
bytes. An entry counts only under the context it was made in (the validation rules' version,
Pillow's version and ``keep_image_metadata``), and only if its own digest still matches: an
entry from another version, a damaged entry or an unreadable file is a miss, never a pass, and
the image is decoded as if there were no cache. Only images that passed are remembered: a
broken image is checked, and reported, every time.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from contextlib import closing, suppress
from pathlib import Path
from typing import NamedTuple

from .notices import warn

CACHE_FOLDER = ".ocr-datasets"
CACHE_NAME = "verdicts.sqlite"
# Long enough for a concurrent export to finish committing its window of verdicts.
_BUSY_SECONDS = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    image_sha256 BLOB NOT NULL,
    context TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mode TEXT NOT NULL,
    format TEXT NOT NULL,
    private INTEGER NOT NULL,
    exported_sha256 BLOB NOT NULL,
    exported_format TEXT NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (image_sha256, context)
) WITHOUT ROWID
"""


class Verdict(NamedTuple):
    """What validation learnt of an image that passed, as the cache keeps it."""

    width: int
    height: int
    mode: str
    format: str
    holds_private_metadata: bool
    # The bytes the export writes: the image's own, or cleaned of private metadata.
    exported_sha256: str
    exported_format: str


def cache_path(export_root: Path) -> Path:
    return export_root / CACHE_FOLDER / CACHE_NAME


class VerdictCache:
    """Verdicts of one context in the sqlite file at ``path``, made when verdicts are first stored.

    Validation's worker processes each look verdicts up through a read-only connection of their
    own (the object pickles as its path and context); the writer stores the new ones once the
    batch is written. sqlite's write-ahead log lets readers read while another export writes,
    and a reader sees only what a writer has committed.
    """

    def __init__(self, path: Path, context: str):
        self.path = path
        self.context = context
        self._reader: sqlite3.Connection | None = None
        self._unreadable = False
        self._unwritable = False

    def __reduce__(self):
        # A connection cannot be pickled: a worker process opens its own, once.
        return _in_this_process, (self.path, self.context)

    def lookup(self, image_sha256: str) -> Verdict | None:
        """The verdict on the image of this sha256 in this context, or None (unknown, damaged,
        or the cache unreadable)."""
        if self._unreadable:
            return None
        try:
            if self._reader is None:
                read_only = f"{self.path.absolute().as_uri()}?mode=ro"
                self._reader = sqlite3.connect(read_only, uri=True, timeout=_BUSY_SECONDS)
            row = self._reader.execute(
                "SELECT width, height, mode, format, private, exported_sha256, exported_format, digest "
                "FROM verdicts WHERE image_sha256 = ? AND context = ?",
                (bytes.fromhex(image_sha256), self.context),
            ).fetchone()
        except sqlite3.Error:
            # Missing (no export has stored verdicts here yet), damaged, or not a database: no
            # verdict counts, and the images are decoded.
            self._unreadable = True
            return None
        if row is None:
            return None
        try:
            *values, digest = row
            verdict = Verdict(
                int(values[0]),
                int(values[1]),
                str(values[2]),
                str(values[3]),
                bool(values[4]),
                values[5].hex(),
                values[6],
            )
        except (TypeError, ValueError, AttributeError):
            return None
        return verdict if digest == _digest(image_sha256, self.context, verdict) else None

    def store(self, verdicts: Iterable[tuple[str, Verdict]]) -> None:
        """Remember ``(image sha256, verdict)`` pairs of images that passed, in one transaction.
        A cache that cannot be written (locked for longer than a concurrent export should take,
        damaged, a full disk) is left as it is, with a warning: the export goes on without it."""
        rows = [
            (
                bytes.fromhex(sha256),
                self.context,
                *verdict[:4],
                int(verdict.holds_private_metadata),
                bytes.fromhex(verdict.exported_sha256),
                verdict.exported_format,
                _digest(sha256, self.context, verdict),
            )
            for sha256, verdict in verdicts
        ]
        if not rows or self._unwritable:
            return
        try:
            self._insert(rows)
        except sqlite3.DatabaseError as error:
            if not isinstance(error, sqlite3.OperationalError):
                # Not a database (damaged, or another file): started afresh.
                warn(f"the verdict cache {self.path} is damaged ({error}): it is started afresh")
                with suppress(OSError, sqlite3.Error):
                    for suffix in ("", "-wal", "-shm"):
                        self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
                    self._insert(rows)
                    return
            self._unwritable = True
            warn(f"could not store verdicts in {self.path} ({error}): the next export decodes these images again")
        except OSError as error:
            self._unwritable = True
            warn(f"could not store verdicts in {self.path} ({error}): the next export decodes these images again")

    def _insert(self, rows: list[tuple]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=_BUSY_SECONDS)) as connection:
            # Readers (other exports' workers) then never wait for a writer, nor see what it
            # has not committed.
            connection.execute("PRAGMA journal_mode = WAL")
            # A lost verdict only costs a decode: no fsync for every store.
            connection.execute("PRAGMA synchronous = NORMAL")
            with connection:
                connection.execute(_SCHEMA)
                connection.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self._reader is not None:
            with suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None


# The caches a worker process was sent, by path and context: each chunk of work arrives with its
# own pickled copy, and one connection serves them all.
_OPENED: dict[tuple[Path, str], VerdictCache] = {}


def _in_this_process(path: Path, context: str) -> VerdictCache:
    cache = _OPENED.get((path, context))
    if cache is None:
        cache = _OPENED[path, context] = VerdictCache(path, context)
    return cache


def _digest(image_sha256: str, context: str, verdict: Verdict) -> bytes:
    """A check of one entry, so a damaged entry is told from a verdict."""
    text = "\x1f".join(map(str, (image_sha256, context, *verdict)))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
