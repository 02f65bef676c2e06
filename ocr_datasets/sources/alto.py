"""ALTO (v2 to v4, any namespace) in pixel units: one sample per TextLine, cut from its page image.

A line's text is its ``String`` CONTENTs: joined by a space where an ``SP`` stands between two of
them and by nothing where none does, or, in files that use no SP at all, always by a space; a
``HYP`` adds its hyphen to the string before it. Its image is the bounding box of its
``Shape/Polygon``, else of its HPOS/VPOS/WIDTH/HEIGHT box. Lines come in document order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from ..samples import SampleError, TrainingSample
from .crop import CropOptions, Point, box_points, parse_points
from .locate import (
    LineSampleFactory,
    children_named,
    descendants_named,
    file_error,
    find_page_image,
    first_child,
    image_not_found,
    local_name,
    parse_xml,
    read_xml_sources,
)

# ALTO's other units (mm10, inch1200) need the scan's resolution, which the file does not give.
SUPPORTED_UNIT = "pixel"


def read(
    path: str | os.PathLike[str],
    *,
    image_dir: str | os.PathLike[str] | None = None,
    crop: CropOptions = CropOptions(),
    errors: str = "raise",
) -> Iterator[TrainingSample | SampleError]:
    """The lines of an ALTO file, or of every ALTO file below a folder (METS and PAGE files are skipped)."""
    return read_xml_sources(Path(path), "alto", read_alto_file, image_dir=image_dir, crop=crop, errors=errors)


def read_alto_file(xml_path: Path, input_root: Path, image_dir: Path | None, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
    root = parse_xml(xml_path, "alto", "ALTO")
    if isinstance(root, SampleError):
        yield root
        return
    description = first_child(root, "Description")
    unit = _child_text(description, "MeasurementUnit") or SUPPORTED_UNIT
    if unit != SUPPORTED_UNIT:
        yield file_error(
            xml_path,
            f"coordinates are in {unit!r}; only {SUPPORTED_UNIT!r} (MeasurementUnit pixel) is supported",
            "export the ALTO with pixel coordinates, or convert them with the scan's resolution",
        )
        return
    image_info = first_child(description, "sourceImageInformation") if description is not None else None
    reference = _child_text(image_info, "fileName")
    lines = [(block, line) for block in descendants_named(root, "TextBlock") for line in children_named(block, "TextLine")]
    image = find_page_image(xml_path, reference, input_root=input_root, image_dir=image_dir)
    if image is None:
        yield image_not_found(xml_path, reference, len(lines))
        return
    spaces_marked = any(True for _ in descendants_named(root, "SP"))
    positions = {id(line): position for position, line in enumerate(descendants_named(root, "TextLine"), start=1)}
    samples = LineSampleFactory(xml_path, image, crop)
    for block, line in lines:
        yield samples.sample(line.get("ID"), positions[id(line)], line_text(line, spaces_marked), line_polygon(line), block.get("ID"))


def line_text(line: Element, spaces_marked: bool) -> str:
    """The line's strings joined as the module docstring says; ``spaces_marked``: the file uses SP."""
    text = ""
    space_before_next = False
    for child in line:
        name = local_name(child)
        if name == "String":
            if text and (space_before_next or not spaces_marked):
                text += " "
            text += child.get("CONTENT") or ""
            space_before_next = False
        elif name == "SP":
            space_before_next = True
        elif name == "HYP":
            text += child.get("CONTENT") or ""
    return text


def line_polygon(line: Element) -> tuple[Point, ...]:
    shape = first_child(line, "Shape")
    polygon = first_child(shape, "Polygon") if shape is not None else None
    if polygon is not None and polygon.get("POINTS"):
        try:
            return parse_points(polygon.get("POINTS"))
        except ValueError:
            pass  # a broken polygon: the box still outlines the line
    try:
        return box_points(*(float(line.get(name)) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")))
    except (TypeError, ValueError):
        return ()  # validation rejects the line for its missing outline, naming it


def _child_text(element: Element | None, name: str) -> str | None:
    child = first_child(element, name) if element is not None else None
    return child.text.strip() if child is not None and child.text and child.text.strip() else None
