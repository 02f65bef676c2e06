"""PAGE XML (2013 and 2019 schemas, any namespace): one sample per TextLine, cut from its page image.

A line's text is its own ``TextEquiv/Unicode`` (with several, the lowest ``index``); when that is
empty, its own ``TextEquiv/PlainText``, then its words' texts joined by spaces (as kraken reads
them), and the sample's metadata says so (``text_from``). Its image is the bounding box of its
``Coords`` polygon. Lines follow the page's ``ReadingOrder``; regions it does not name follow in
document order. A line without text is yielded with an empty ground truth, so validation
rejects it by name instead of it vanishing from the count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from ..problems import PAGE_UNREADABLE
from .crop import Point, parse_points
from .xml_common import children_named, descendants_named, first_child, local_name
from .xml_pages import PAGE_ROOT, PageFileSource, ParsedLine, ParsedPage, UnreadableFile, declared_size

# Reading order groups: their members (region refs and nested groups) in the order they are read.
_GROUPS = {"OrderedGroup", "UnorderedGroup", "OrderedGroupIndexed", "UnorderedGroupIndexed"}
_REFS = {"RegionRef", "RegionRefIndexed"}


class PageSource(PageFileSource):
    """The lines of a PAGE file, or of every PAGE file below a folder (METS and ALTO files are skipped)."""

    kind = "page"
    label = "PAGE"
    xml_roots = (PAGE_ROOT,)

    def parse(self, xml_path: Path) -> ParsedPage:
        page = first_child(self.root_element(xml_path), "Page")
        if page is None:
            raise UnreadableFile(
                "has no <Page> element", "check that the file is complete PAGE XML", code=PAGE_UNREADABLE
            )
        positions = {id(line): position for position, line in enumerate(descendants_named(page, "TextLine"), start=1)}
        lines = []
        for region, line in lines_in_reading_order(page):
            text, text_from = line_text(line)
            lines.append(
                ParsedLine(line.get("id"), positions[id(line)], text, line_polygon(line), region.get("id"), text_from)
            )
        why_empty = "no TextLine" + (
            "; its text is on regions only, and samples are lines" if _regions_hold_text(page) else ""
        )
        return ParsedPage(
            lines, page.get("imageFilename"), declared_size(page.get("imageWidth"), page.get("imageHeight")), why_empty
        )


def lines_in_reading_order(page: Element) -> Iterator[tuple[Element, Element]]:
    """(region, line) pairs: regions in reading order, then the unnamed ones in document order;
    within a region its own lines, then nested regions the reading order does not place."""
    # Every kind of region: a reading order may name a TableRegion whose cells are TextRegions.
    regions = [element for element in page.iter() if _is_region(element)]
    by_id = {region.get("id"): region for region in regions if region.get("id")}
    order_element = first_child(page, "ReadingOrder")
    ordered_ids = list(dict.fromkeys(_region_refs(order_element))) if order_element is not None else []
    placed = set(ordered_ids)
    done: set[int] = set()

    def region_lines(region: Element) -> Iterator[tuple[Element, Element]]:
        if id(region) in done:
            return
        done.add(id(region))
        for child in region:
            if local_name(child) == "TextLine":
                yield region, child
        for child in region:
            if _is_region(child) and child.get("id") not in placed:
                yield from region_lines(child)

    for region_id in ordered_ids:
        if region_id in by_id:
            yield from region_lines(by_id[region_id])
    for region in regions:
        yield from region_lines(region)


def _is_region(element: Element) -> bool:
    return local_name(element).endswith("Region")


def _region_refs(group: Element) -> Iterator[str]:
    """Region ids of a reading order (or group), nested groups flattened in place."""
    if reference := group.get("regionRef"):
        yield reference
    members = [child for child in group if local_name(child) in _GROUPS | _REFS]
    if local_name(group).endswith("Indexed") or any(member.get("index") is not None for member in members):
        members.sort(key=_index)
    for member in members:
        if local_name(member) in _GROUPS:
            yield from _region_refs(member)
        elif reference := member.get("regionRef"):
            yield reference


def _index(element: Element) -> float:
    try:
        return int(element.get("index", ""))
    except ValueError:
        return math.inf  # unindexed members after the indexed ones, in document order (sort is stable)


def line_text(line: Element) -> tuple[str, str | None]:
    """The line's text and, when it is not the line's own Unicode, where it came from."""
    own = _unicode(line)
    if own.strip():
        return own, None
    plain = _plain_text(line)
    if plain.strip():
        return plain, "plain_text"
    words = [
        text for word in children_named(line, "Word") if (text := _unicode(word).strip() or _plain_text(word).strip())
    ]
    if words:
        return " ".join(words), "words"
    return own, None  # empty: validation rejects the line by name


def _chosen_equiv(element: Element) -> Element | None:
    """The element's own TextEquiv, the lowest index when there are several."""
    equivalents = children_named(element, "TextEquiv")
    return min(equivalents, key=_index) if equivalents else None


def _unicode(element: Element) -> str:
    equiv = _chosen_equiv(element)
    unicode = first_child(equiv, "Unicode") if equiv is not None else None
    return (unicode.text or "") if unicode is not None else ""


def _plain_text(element: Element) -> str:
    equiv = _chosen_equiv(element)
    plain = first_child(equiv, "PlainText") if equiv is not None else None
    return (plain.text or "") if plain is not None else ""


def _regions_hold_text(page: Element) -> bool:
    return any(_unicode(region).strip() or _plain_text(region).strip() for region in page.iter() if _is_region(region))


def line_polygon(line: Element) -> tuple[Point, ...]:
    """The line's Coords: a ``points`` list, or the ``Point`` children of PAGE 2010."""
    coords = first_child(line, "Coords")
    if coords is None:
        return ()
    if points := coords.get("points"):
        try:
            return parse_points(points)
        except ValueError:
            return ()  # validation rejects the line for its missing outline, naming it
    try:
        return tuple(
            (float(point.get("x", "")), float(point.get("y", ""))) for point in children_named(coords, "Point")
        )
    except ValueError:
        return ()
