"""Finding page images on disk, for every source that cuts lines from pages (PAGE, ALTO, Label Studio).

PAGE and ALTO page images are looked for, in this order:

1. the file's own reference (PAGE ``imageFilename``, ALTO ``sourceImageInformation/fileName``)
   relative to the XML file's folder;
2. the reference relative to each ancestor folder, up to the nearest one holding a ``mets.xml``
   (OCR-D workspaces resolve file names relative to the METS); with no METS above, up to the
   folder that was given as input;
3. the nearest ``mets.xml``: the physical page (structMap div) that points to this XML file
   also points to an image file, which is the page image (ALTO files often name no image);
4. ``image_dir``: the reference relative to it, then the reference's file name in it.

With no reference at all, an image with the XML file's stem (``page.tif`` for ``page.xml``) is
looked for beside the XML and in ``image_dir``.

Everywhere a file name whose case differs from the one on disk (``scan.jpg`` for ``Scan.JPG``)
is taken when it is the only such file in its folder: files made on Windows or macOS, whose
disks ignore case, name their images carelessly, and the image is still the right one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree

from PIL import Image

from ..files import open_regular_file
from ..images import EXIF_ORIENTATION, PAGE_IMAGE_SUFFIXES, QUARTER_TURNS
from .xml_common import children_named, descendants_named, first_child, unqualified

METS_NAME = "mets.xml"
# File groups that hold page images in OCR-D workspaces when a METS file gives no MIME type.
IMAGE_FILE_GROUP_HINTS = ("IMG", "IMAGE", "MASTER", "DEFAULT", "MAX")
IMAGES_FIX = "pass image_dir (--images DIR) naming the folder that holds the page images"


def displayed_size(image_path: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """(width, height) of an image as displayed (its EXIF orientation applied, as the crop does)
    and as stored, read from its header without decoding the pixels."""
    with open_regular_file(image_path) as file, Image.open(file) as image:
        stored = image.size
        turned = image.getexif().get(EXIF_ORIENTATION) in QUARTER_TURNS
    return (stored[::-1] if turned else stored), stored


def existing_file(path: Path) -> Path | None:
    """``path`` if it is a file, else the one file in its folder whose name differs only in case."""
    if path.is_file():
        return path
    try:
        version = path.parent.stat().st_mtime_ns
    except OSError:
        return None
    names = _names_by_case_folded(os.fspath(path.parent), version).get(path.name.casefold(), ())
    matches = [path.parent / name for name in names if (path.parent / name).is_file()]
    return matches[0] if len(matches) == 1 else None


@lru_cache(maxsize=64)
def _names_by_case_folded(folder: str, mtime_ns: int) -> dict[str, tuple[str, ...]]:
    """The names in a folder by their case-folded form, listed once per folder version (a folder of
    10,000 scans is listed once, not once per page)."""
    names: dict[str, tuple[str, ...]] = {}
    try:
        for name in sorted(os.listdir(folder)):
            names[name.casefold()] = (*names.get(name.casefold(), ()), name)
    except OSError:
        pass
    return names


def case_differs(reference: str | None, found: Path) -> bool:
    """Whether ``found`` was taken for ``reference`` only because case was ignored."""
    name = reference_name(reference)
    return name is not None and name != found.name and name.casefold() == found.name.casefold()


def shown_reference(reference: str) -> str:
    """A page image reference as a message may show it: a path relative to the XML file as
    written, but of an absolute one (``C:\\Users\\jane\\Scans\\p.tif``, ``file:///home/...``) only
    its file name, so no user's folders travel in a batch."""
    relative = _reference_path(reference)
    if relative is None:
        return reference
    parts = PurePosixPath(relative.as_posix()).parts
    if relative.is_absolute() or ":" in relative.as_posix() or ".." in parts:
        return relative.name
    return relative.as_posix()


def reference_name(reference: str | None) -> str | None:
    relative = _reference_path(reference)
    return None if relative is None else relative.name


def stem_candidates(xml_path: Path) -> list[str]:
    """The image names tried for an XML file that names no image: its stem with each page image suffix."""
    return [xml_path.stem + suffix for suffix in PAGE_IMAGE_SUFFIXES]


def find_page_image(xml_path: Path, reference: str | None, *, input_root: Path, image_dir: Path | None) -> Path | None:
    """The page image of an XML file (see the module docstring for the order), or None. A file
    whose name matches exactly anywhere wins over one whose name differs only in case."""
    candidates = list(
        _page_image_candidates(Path(os.path.abspath(xml_path)), reference, Path(os.path.abspath(input_root)), image_dir)
    )
    exact = next((candidate for candidate in candidates if candidate.is_file()), None)
    return exact or next(filter(None, map(existing_file, candidates)), None)


def _page_image_candidates(
    xml_path: Path, reference: str | None, input_root: Path, image_dir: Path | None
) -> Iterator[Path]:
    relative = _reference_path(reference)
    if relative is not None and relative.is_absolute():
        yield relative
        relative = Path(relative.name)
    mets = nearest_mets(xml_path.parent)
    if relative is not None:
        for folder in _folders_to_search(xml_path.parent, mets, input_root):
            yield folder / relative
    mets_image = _image_from_mets(mets, xml_path) if mets is not None else None
    if mets_image is not None:
        yield mets_image
    names = [relative] if relative is not None else []
    if mets_image is not None:
        # The METS names an image that is not where it says: its file name may still be in image_dir.
        names.append(Path(mets_image.name))
    if image_dir is not None:
        for name in names:
            yield image_dir / name
            yield image_dir / name.name
    if relative is None and mets_image is None:
        for place in (xml_path.parent, image_dir):
            if place is not None:
                for candidate in stem_candidates(xml_path):
                    yield place / candidate


def _reference_path(reference: str | None) -> Path | None:
    """A file reference as a path: ``file://`` URLs and plain paths; of other URLs, the file name."""
    if not reference or not reference.strip():
        return None
    reference = reference.strip()
    parsed = urlparse(reference)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # http(s) and the like; one letter is a Windows drive
        return Path(PurePosixPath(unquote(parsed.path)).name) if parsed.path else None
    return Path(reference.replace("\\", "/"))


def _folders_to_search(start: Path, mets: Path | None, input_root: Path) -> list[Path]:
    """``start`` and its ancestors up to the METS folder, or without a METS up to the input root."""
    stop = mets.parent if mets is not None else input_root
    folders = [start]
    if stop not in start.parents:
        return folders
    for folder in start.parents:
        folders.append(folder)
        if folder == stop:
            break
    return folders


def nearest_mets(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / METS_NAME).is_file():
            return candidate / METS_NAME
    return None


def _image_from_mets(mets: Path, xml_path: Path) -> Path | None:
    try:
        relative = xml_path.relative_to(mets.parent).as_posix()
    except ValueError:
        return None
    stat = mets.stat()
    image_href = _mets_page_images(str(mets), stat.st_size, stat.st_mtime_ns).get(relative)
    return None if image_href is None else mets.parent / image_href


@lru_cache(maxsize=8)
def _mets_page_images(mets: str, size: int, mtime_ns: int) -> dict[str, str]:
    """For every file of a METS (its href relative to the METS folder), the image file of the same
    physical page. Parsed once per METS (keyed by size and mtime, so an edited METS is read anew)."""
    try:
        root = ElementTree.parse(mets).getroot()
    except (ElementTree.ParseError, OSError):
        return {}
    hrefs: dict[str, str] = {}
    image_rank: dict[str, int] = {}
    for group in descendants_named(root, "fileGrp"):
        use = (group.get("USE") or "").upper()
        for file in children_named(group, "file"):
            location = first_child(file, "FLocat")
            href = _local_href(location) if location is not None else None
            file_id = file.get("ID")
            if not file_id or href is None:
                continue
            hrefs[file_id] = href
            mimetype = file.get("MIMETYPE")
            if mimetype.startswith("image/") if mimetype else any(hint in use for hint in IMAGE_FILE_GROUP_HINTS):
                # The original scans (OCR-D-IMG) before derived images (binarised, deskewed).
                image_rank[file_id] = 0 if use in ("OCR-D-IMG", "MASTER", "DEFAULT") else 1
    page_images: dict[str, str] = {}
    for structure in descendants_named(root, "structMap"):
        if (structure.get("TYPE") or "").upper() != "PHYSICAL":
            continue
        for div in descendants_named(structure, "div"):
            pointed = [pointer.get("FILEID") for pointer in children_named(div, "fptr")]
            pointed += [
                area.get("FILEID")
                for pointer in children_named(div, "fptr")
                for area in descendants_named(pointer, "area")
            ]
            file_ids = [file_id for file_id in pointed if file_id is not None and file_id in hrefs]
            images = sorted(
                (file_id for file_id in file_ids if file_id in image_rank), key=lambda file_id: image_rank[file_id]
            )
            if images:
                for file_id in file_ids:
                    page_images.setdefault(hrefs[file_id], hrefs[images[0]])
    return page_images


def _local_href(location: ElementTree.Element) -> str | None:
    """An FLocat's href relative to the METS folder, normalised like the paths it is compared with."""
    href = next((value for key, value in location.attrib.items() if unqualified(key) == "href"), None)
    if not href:
        return None
    parsed = urlparse(href)
    if parsed.scheme and len(parsed.scheme) > 1:
        return None  # remote files: nothing on this disk to compare with or open
    return PurePosixPath(unquote(href).replace("\\", "/")).as_posix()
