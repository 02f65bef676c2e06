"""ALTO (v2 to v4, any namespace) in pixel units: one sample per TextLine, cut from its page image.

A line's text is its ``String`` CONTENTs, joined by a space where an ``SP`` stands between two of
them and by nothing where none does. Files that use no SP at all (OCR-D's ALTO ground truth,
ABBYY) leave the spaces to geometry: a space where the gap between two String boxes
(HPOS/WIDTH) is wider than a tenth of the line's height, none where the boxes touch or overlap
("Monatsſchrift" "." is "Monatsſchrift."); where boxes cannot tell (missing, or every String
carrying the whole line's box, as eScriptorium writes them), always a space. A ``HYP`` adds its
hyphen to the string before it; a soft hyphen (U+00AD, as ABBYY writes) at the end of a line is
written as the hyphen the page shows. Its image is the bounding box of its ``Shape/Polygon``,
else of its HPOS/VPOS/WIDTH/HEIGHT box. Lines come in document order.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

from ..problems import PAGE_UNIT_UNSUPPORTED
from .crop import Point, box_points, parse_points
from .xml_common import children_named, descendants_named, first_child, local_name
from .xml_pages import ALTO_ROOT, PageFileSource, ParsedLine, ParsedPage, UnreadableFile, declared_size

# ALTO's other units (mm10, inch1200) need the scan's resolution, which the file does not give.
SUPPORTED_UNIT = "pixel"
# A gap between two String boxes wider than this share of the line's height is a space. Word
# spaces in print are a quarter em or more (a fifth of a line's height and up), while a word and
# the punctuation after it touch or stand a pixel or two apart. On the Kant pages every space is
# 0.15 or more of the line height, and every String that belongs to the word before it touches it.
SPACE_GAP = 0.1
# Boxes that overlap by more than this share of the narrower one do not separate two words
# (eScriptorium gives every String the whole line's box): their Strings are joined by a space.
SAME_BOX_OVERLAP = 0.5
SOFT_HYPHEN = "\u00ad"
PRINTED_HYPHEN = "-"


class AltoSource(PageFileSource):
    """The lines of an ALTO file, or of every ALTO file below a folder (METS and PAGE files are skipped)."""

    kind = "alto"
    label = "ALTO"
    xml_roots = (ALTO_ROOT,)

    def parse(self, xml_path: Path) -> ParsedPage:
        root = self.root_element(xml_path)
        lines = [
            (block, line)
            for block in descendants_named(root, "TextBlock")
            for line in children_named(block, "TextLine")
        ]
        description = first_child(root, "Description")
        measurement_unit = _child_text(description, "MeasurementUnit") or SUPPORTED_UNIT
        if lines and measurement_unit != SUPPORTED_UNIT:
            raise UnreadableFile(
                f"coordinates are in {measurement_unit!r}; "
                f"only {SUPPORTED_UNIT!r} (MeasurementUnit pixel) is supported",
                "export the ALTO with pixel coordinates, or convert them with the scan's resolution",
                len(lines),
                code=PAGE_UNIT_UNSUPPORTED,
            )
        image_info = first_child(description, "sourceImageInformation") if description is not None else None
        page = next(descendants_named(root, "Page"), None)
        size = declared_size(page.get("WIDTH"), page.get("HEIGHT")) if page is not None else None
        spaces_marked = any(True for _ in descendants_named(root, "SP"))
        positions = {id(line): position for position, line in enumerate(descendants_named(root, "TextLine"), start=1)}
        parsed = [
            ParsedLine(
                line.get("ID"), positions[id(line)], line_text(line, spaces_marked), line_polygon(line), block.get("ID")
            )
            for block, line in lines
        ]
        return ParsedPage(parsed, _child_text(image_info, "fileName"), size)


def line_text(line: Element, spaces_marked: bool) -> str:
    """The line's strings joined as the module docstring says; ``spaces_marked``: the file uses SP."""
    text = ""
    previous: Element | None = None
    space_marked = False
    height = _line_height(line)
    for child in line:
        name = local_name(child)
        if name == "String":
            if text and (space_marked if spaces_marked else _space_between(previous, child, height)):
                text += " "
            text += child.get("CONTENT") or ""
            previous, space_marked = child, False
        elif name == "SP":
            space_marked = True
        elif name == "HYP":
            # The page shows a hyphen where ABBYY writes the invisible soft hyphen.
            hyphen = child.get("CONTENT") or ""
            text += PRINTED_HYPHEN if hyphen == SOFT_HYPHEN else hyphen
    return text[: -len(SOFT_HYPHEN)] + PRINTED_HYPHEN if text.endswith(SOFT_HYPHEN) else text


def _space_between(previous: Element | None, following: Element, height: float | None) -> bool:
    gap = _gap(_span(previous), _span(following)) if previous is not None else None
    return gap is None or height is None or gap > SPACE_GAP * height


def _gap(first: tuple[float, float] | None, second: tuple[float, float] | None) -> float | None:
    """The horizontal distance between two boxes (left, right), negative where they overlap, in
    either order (right-to-left scripts); None when the boxes cannot tell two words apart."""
    if first is None or second is None:
        return None
    overlap = min(first[1], second[1]) - max(first[0], second[0])
    if overlap > SAME_BOX_OVERLAP * min(first[1] - first[0], second[1] - second[0]):
        return None
    return -overlap


def _span(string: Element) -> tuple[float, float] | None:
    """A String's (left, right), None without a usable HPOS and WIDTH."""
    try:
        left, width = float(string.get("HPOS", "")), float(string.get("WIDTH", ""))
    except ValueError:
        return None
    return (left, left + width) if width > 0 else None


def _line_height(line: Element) -> float | None:
    """The line's HEIGHT, else its tallest String's: the scale a word space is measured against."""
    own = _positive_number(line.get("HEIGHT"))
    if own is not None:
        return own
    return max(
        filter(None, (_positive_number(string.get("HEIGHT")) for string in children_named(line, "String"))),
        default=None,
    )


def _positive_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number > 0 else None


def line_polygon(line: Element) -> tuple[Point, ...]:
    shape = first_child(line, "Shape")
    polygon = first_child(shape, "Polygon") if shape is not None else None
    points = polygon.get("POINTS") if polygon is not None else None
    if points:
        try:
            return parse_points(points)
        except ValueError:
            pass  # a broken polygon: the box still outlines the line
    try:
        return box_points(*(float(line.get(name, "")) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")))
    except ValueError:
        return ()  # validation rejects the line for its missing outline, naming it


def _child_text(element: Element | None, name: str) -> str | None:
    child = first_child(element, name) if element is not None else None
    return child.text.strip() if child is not None and child.text and child.text.strip() else None
