"""XML helpers every XML reader shares (PAGE, ALTO, METS): names without namespaces, and a file's
root element read from its start.

PAGE (2010 to 2019), ALTO (v2 to v4) and METS files come in several namespace versions, and
writers differ in the prefixes they use: every element and attribute is compared by its local
name, so all versions read alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree
from xml.etree.ElementTree import Element

# Enough for any XML declaration, doctype and comments before the root element.
_SNIFF_BYTES = 64 * 1024
_CHUNK = 8 * 1024


def unqualified(name: str) -> str:
    """A tag or attribute name without its namespace (``{http://www.w3.org/1999/xlink}href`` is ``href``)."""
    return name.rsplit("}", 1)[-1]


def local_name(element: Element) -> str:
    """An element's name without its namespace; "" for comments and processing instructions."""
    return unqualified(element.tag) if isinstance(element.tag, str) else ""


def children_named(element: Element, name: str) -> list[Element]:
    return [child for child in element if local_name(child) == name]


def first_child(element: Element, name: str) -> Element | None:
    return next((child for child in element if local_name(child) == name), None)


def descendants_named(element: Element, name: str) -> Iterator[Element]:
    return (node for node in element.iter() if local_name(node) == name)


@dataclass(frozen=True)
class XmlStart:
    """What the start of a file says: its root element's local name, or why there is none;
    ``holds_nothing`` when the file ends before any element (empty, or blank)."""

    root: str | None
    problem: str | None = None
    holds_nothing: bool = False


def xml_start(path: Path) -> XmlStart:
    """The root element of an XML file, parsing only as far as its start tag (so sniffing a
    folder of large files costs little)."""
    try:
        stat = path.stat()
    except OSError as error:
        return XmlStart(None, f"cannot be read ({error.strerror})")
    return _xml_start(os.fspath(path), stat.st_size, stat.st_mtime_ns)


# Every XML source asks about a file in turn (PAGE, then ALTO): its start is parsed once. Keyed by
# size and mtime, so a changed file is read anew.
@lru_cache(maxsize=16)
def _xml_start(path: str, size: int, mtime_ns: int) -> XmlStart:
    parser: ElementTree.XMLPullParser[Element] = ElementTree.XMLPullParser(events=("start",))
    try:
        with open(path, "rb") as file:
            read = 0
            while read < _SNIFF_BYTES:
                chunk = file.read(_CHUNK)
                if not chunk:
                    return XmlStart(None, "empty" if read == 0 else "no element in it", holds_nothing=True)
                read += len(chunk)
                parser.feed(chunk)
                for event in parser.read_events():
                    element = event[-1]
                    if isinstance(element, Element):  # a start event's, the only kind asked for
                        return XmlStart(local_name(element))
    except ElementTree.ParseError as error:
        return XmlStart(None, f"not XML ({error})")
    except OSError as error:
        return XmlStart(None, f"cannot be read ({error.strerror})")
    return XmlStart(None, f"no root element in its first {_SNIFF_BYTES // 1024} KB")
