"""The contract between one kind of input and the dispatcher (``ocr_datasets.sources``).

A source reads one input, a file or a folder, and yields its samples in order: a
``TrainingSample`` for each record, and a ``SampleError`` in the place of each record it cannot
read. It never raises a ``SampleError`` while reading: ``read_samples`` and ``read_manifest``
alone decide whether one is raised or passed on (their ``errors``), so that one bad record never
hides the others (a ``CroppedSample`` raises one later, when validation reads its image). What
makes a whole input unreadable (a manifest that is not UTF-8) is raised as an ordinary
exception, and what an input held besides samples is said as a ``SourceNotice`` once it has
been read.

A new kind of input is one subclass of ``Source`` and one entry in ``SOURCES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from ..samples import SampleError, TrainingSample
from .crop import CropOptions


class Source(ABC):
    """One kind of labeled input.

    Without a kind named, an input is guessed from these attributes and ``sniff``: a file is
    asked about by every source whose ``suffixes`` end its name, then by every source with
    ``xml_roots`` (XML is told by its root element, whatever the file is called), and the first
    that says yes reads it. A folder is of the one kind its files are of, where only files a
    source claims by name are opened.
    """

    #: The name ``read_samples(source=...)`` and ``--from`` use.
    kind: ClassVar[str]
    #: One of its files (or lines) as messages count them: "PAGE file" ("3 PAGE files").
    unit: ClassVar[str]
    #: Endings of the file names it claims, in lower case (".jsonl", ".gt.txt").
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: Local names of the root elements of its XML files ("PcGts").
    xml_roots: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def sniff(self, path: Path, *, in_folder: bool) -> bool:
        """Whether ``path``, a file this source claims (by ``suffixes``, or by ``xml_roots``
        whatever its name), holds this kind, told from its name and start (not read whole).
        ``in_folder``: it was found in a folder given as input, where a file counts only when it
        clearly is of a kind (settings and notes lie beside the data); else it was given on its own."""

    @abstractmethod
    def read(self, path: Path, *, image_dir: Path | None, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
        """The samples of one input (a file, or a folder), with a ``SampleError`` in place of
        each record that cannot be read. ``image_dir`` is an existing folder where page images
        are looked for when an input's own references do not resolve; ``crop`` says how lines
        are cut from pages. Sources whose records name their own images ignore both."""
