"""Samples held packed between validation and the writer, so memory does not grow with the corpus."""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import tempfile
import zlib
from array import array
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from pathlib import Path
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Rows the builder writes as one Arrow table: large enough that Arrow and parquet work in bulk,
# small enough that memory stays flat however many samples there are.
BLOCK_SIZE = 1000
# A block starts with one byte saying how the pickle after it is stored.
_COMPRESSED, _RAW = b"z", b"p"
_COMPRESSED_UP_TO_BYTES_PER_ITEM = 2048


class PackedSamples(Sequence[Item], Generic[Item]):
    """A sequence of samples kept as pickled blocks of ``BLOCK_SIZE``.

    An export holds every sample from validation until its rows are written. As Python objects
    a line costs about 1.3 KB; pickled and compressed in blocks, about 0.1 KB, so 100,000 lines
    do not take a hundred megabytes more than 10,000 do; with ``spill_to`` (a folder), the
    sealed blocks go to a file there, uncompressed (zlib took half of the 5.3 ms that packing a
    block of 1,000 lines took; the file is ~290 bytes a line, against ~110 compressed, which is
    memory only where the export folder is on a RAM disk), and only their ends stay in memory,
    8 bytes a block.
    Appending seals a block once it is full; iterating unpickles one block at a time, so each
    pass yields fresh copies of the samples, in which a ``pathlib.Path`` comes back as its text.
    """

    def __init__(self, items: Iterable[Item] = (), spill_to: Path | None = None):
        self._blocks: MutableSequence[bytes] | _BlockFile = [] if spill_to is None else _BlockFile(spill_to)
        self._compressed = spill_to is None
        self._open: list[Item] = []
        for item in items:
            self.append(item)

    def append(self, item: Item) -> None:
        self._open.append(item)
        if len(self._open) == BLOCK_SIZE:
            self._blocks.append(_pack(self._open, self._compressed))
            self._open = []

    def blocks(self) -> list[bytes]:
        """Every block pickled, the last one possibly short: what the builder's workers receive."""
        tail = [_pack(self._open, self._compressed)] if self._open else []
        return [*self._blocks, *tail]

    def __len__(self) -> int:
        return len(self._blocks) * BLOCK_SIZE + len(self._open)

    def __iter__(self) -> Iterator[Item]:
        for block in self._blocks:
            yield from unpack_block(block)
        yield from list(self._open)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("PackedSamples index out of range")
        block, offset = divmod(index, BLOCK_SIZE)
        return unpack_block(self._blocks[block])[offset] if block < len(self._blocks) else self._open[offset]

    def __repr__(self) -> str:
        return f"<PackedSamples of {len(self)}>"


# A path pickles as its parts, each parsed again when unpickled: 5 µs a path of five parts, most
# of the time a pass over the samples took. Held packed, a path is its text (a sample's
# image_path may be either: every reader of it takes os.fspath).
_DISPATCH_TABLE = copyreg.dispatch_table.copy()
_DISPATCH_TABLE[type(Path())] = lambda path: (str, (str(path),))


class _BlockFile:
    """Blocks appended to a new file in ``folder``; only where each ends is kept in memory. The
    file is opened for each access, so no handle stays open (Windows removes no open file)."""

    def __init__(self, folder: Path):
        handle, name = tempfile.mkstemp(dir=folder, prefix="packed-", suffix=".bin")
        os.close(handle)
        self.path = Path(name)
        self._ends = array("Q")

    def append(self, block: bytes) -> None:
        with self.path.open("ab") as file:
            file.write(block)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(block))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> bytes:
        start = self._ends[index - 1] if index else 0
        with self.path.open("rb") as file:
            file.seek(start)
            return file.read(self._ends[index] - start)

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as file:
            start = 0
            for end in self._ends:
                yield file.read(end - start)
                start = end


def _pack(items: list, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH_TABLE
    pickler.dump(items)
    data = buffer.getvalue()
    # A line pickles to ~300 bytes, which zlib's fastest level shrinks threefold in ~3 ms a
    # block. Far larger blocks hold images in memory (``image_bytes``): those are
    # compressed already, and zlib would spend ~20 ms a megabyte on them for nothing.
    if not compressed or len(data) > _COMPRESSED_UP_TO_BYTES_PER_ITEM * len(items):
        return _RAW + data
    return _COMPRESSED + zlib.compress(data, 1)


def unpack_block(block: bytes) -> list:
    data = memoryview(block)[1:]
    return pickle.loads(zlib.decompress(data) if block[:1] == _COMPRESSED else data)
