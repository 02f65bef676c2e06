"""What the PAGE and ALTO sources share: which XML files to read, where their page images are,
and the line samples they make.

Page images are looked for, in this order:

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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree

from ..samples import SampleError, TrainingSample
from .crop import CropOptions, CroppedSample, Point

METS_NAME = "mets.xml"
# File groups that hold page images in OCR-D workspaces when a METS file gives no MIME type.
IMAGE_FILE_GROUP_HINTS = ("IMG", "IMAGE", "MASTER", "DEFAULT", "MAX")
# Tried with the XML file's stem when neither the XML nor a METS names the page image.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".jp2", ".webp", ".bmp")
IMAGES_FIX = "pass --images DIR (image_dir= in Python) naming the folder that holds the page images"

# (xml_path, input_root, image_dir, crop) -> the samples or errors of one XML file
FileReader = Callable[[Path, Path, "Path | None", CropOptions], Iterator["TrainingSample | SampleError"]]


def local_name(element: ElementTree.Element) -> str:
    """An element's name without its namespace, so every PAGE and ALTO version reads alike."""
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def children_named(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if local_name(child) == name]


def first_child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    return next((child for child in element if local_name(child) == name), None)


def descendants_named(element: ElementTree.Element, name: str) -> Iterator[ElementTree.Element]:
    return (node for node in element.iter() if local_name(node) == name)


def read_xml_sources(
    path: Path,
    kind: str,
    read_file: FileReader,
    *,
    image_dir: str | os.PathLike[str] | None,
    crop: CropOptions,
    errors: str,
) -> Iterator[TrainingSample | SampleError]:
    """The samples of one XML file, or of every XML file of ``kind`` below a folder (sorted by
    path, so runs read lines in the same order). A ``SampleError`` raises with ``errors="raise"``."""
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', not {errors!r}")
    from . import xml_kind  # at call time: the package may import the sources before it defines xml_kind

    path = Path(path)
    if path.is_dir():
        files = [file for file in sorted(path.rglob("*")) if file.suffix.lower() == ".xml" and file.is_file() and xml_kind(file) == kind]
        root = path
    elif path.is_file():
        files, root = [path], path.parent
    else:
        raise FileNotFoundError(f"input not found: {path}")
    images = None if image_dir is None else Path(image_dir)
    for file in files:
        for item in read_file(file, root, images, crop):
            if isinstance(item, SampleError) and errors == "raise":
                raise item
            yield item


def parse_xml(xml_path: Path, root_name: str, label: str) -> ElementTree.Element | SampleError:
    """The root element of a PAGE or ALTO file, or the error saying why it cannot be read."""
    try:
        root = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        return file_error(xml_path, f"not well-formed XML ({error})", f"repair {xml_path.name} or remove it from the input")
    except OSError as error:
        return file_error(xml_path, f"cannot be read ({error.strerror})", "check the file's permissions")
    if local_name(root) != root_name:
        return file_error(
            xml_path, f"not a {label} file (its root element is <{local_name(root)}>)", f"read it as its own kind (--from), not as {label}"
        )
    return root


def file_error(xml_path: Path, problem: str, fix: str) -> SampleError:
    """A problem of a whole XML file, reported once for the file rather than once per line."""
    return SampleError(None, problem, fix, location=xml_path.name)


@dataclass(frozen=True)
class LineSampleFactory:
    """Makes the samples of one XML file's lines: ids from the file stem and the line's own id
    (stable across runs), the crop of its page image, and the metadata both sources share."""

    xml_path: Path
    page_image: Path
    crop: CropOptions

    def sample(self, line_id: str | None, position: int, text: str, polygon: tuple[Point, ...], region_id: str | None) -> CroppedSample:
        """``position`` (1-based, in document order) names lines that have no id of their own."""
        element_id = line_id or f"l{position:04d}"
        sample_id = f"{self.xml_path.stem}_{element_id}"
        return CroppedSample(
            id=sample_id,
            image_path=f"{sample_id}.png",
            ground_truth=text,
            metadata={
                "document": self.xml_path.stem,
                "page": self.page_image.name,
                "region": region_id,
                "line": element_id,
                "polygon": [[_plain_number(x), _plain_number(y)] for x, y in polygon],
            },
            page_image=self.page_image,
            polygon=polygon,
            crop=self.crop,
            source=f"{self.xml_path.name}:{element_id}",
        )


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def image_not_found(xml_path: Path, reference: str | None, line_count: int) -> SampleError:
    named = f"page image {reference!r}" if reference else "the page image (the file names none)"
    return file_error(
        xml_path,
        f"{named} not found beside the file, in its parent folders up to the METS, via mets.xml or in the images folder; "
        f"its {line_count} line(s) are left out",
        IMAGES_FIX,
    )


def find_page_image(xml_path: Path, reference: str | None, *, input_root: Path, image_dir: Path | None) -> Path | None:
    """The page image of an XML file (see the module docstring for the order), or None."""
    xml_path = Path(os.path.abspath(xml_path))
    relative = _reference_path(reference)
    if relative is not None and relative.is_absolute():
        if relative.is_file():
            return relative
        relative = Path(relative.name)
    mets = nearest_mets(xml_path.parent)
    if relative is not None:
        for folder in _folders_to_search(xml_path.parent, mets, Path(os.path.abspath(input_root))):
            if (folder / relative).is_file():
                return folder / relative
    mets_image = _image_from_mets(mets, xml_path) if mets is not None else None
    if mets_image is not None and mets_image.is_file():
        return mets_image
    names = [relative] if relative is not None else []
    if mets_image is not None:
        # The METS names an image that is not where it says: its file name may still be in image_dir.
        names.append(Path(mets_image.name))
    if image_dir is not None:
        for name in names:
            for candidate in (image_dir / name, image_dir / name.name):
                if candidate.is_file():
                    return candidate
    if relative is None and mets_image is None:
        for folder in (xml_path.parent, image_dir):
            for suffix in IMAGE_SUFFIXES if folder is not None else ():
                if (folder / (xml_path.stem + suffix)).is_file():
                    return folder / (xml_path.stem + suffix)
    return None


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
            if not file.get("ID") or href is None:
                continue
            hrefs[file.get("ID")] = href
            mimetype = file.get("MIMETYPE")
            if mimetype.startswith("image/") if mimetype else any(hint in use for hint in IMAGE_FILE_GROUP_HINTS):
                # The original scans (OCR-D-IMG) before derived images (binarised, deskewed).
                image_rank[file.get("ID")] = 0 if use in ("OCR-D-IMG", "MASTER", "DEFAULT") else 1
    page_images: dict[str, str] = {}
    for structure in descendants_named(root, "structMap"):
        if (structure.get("TYPE") or "").upper() != "PHYSICAL":
            continue
        for div in descendants_named(structure, "div"):
            file_ids = [pointer.get("FILEID") for pointer in children_named(div, "fptr")]
            file_ids += [area.get("FILEID") for pointer in children_named(div, "fptr") for area in descendants_named(pointer, "area")]
            file_ids = [file_id for file_id in file_ids if file_id in hrefs]
            images = sorted((file_id for file_id in file_ids if file_id in image_rank), key=lambda file_id: image_rank[file_id])
            if images:
                for file_id in file_ids:
                    page_images.setdefault(hrefs[file_id], hrefs[images[0]])
    return page_images


def _local_href(location: ElementTree.Element) -> str | None:
    """An FLocat's href relative to the METS folder, normalised like the paths it is compared with."""
    href = next((value for key, value in location.attrib.items() if key.rsplit("}", 1)[-1] == "href"), None)
    if not href:
        return None
    parsed = urlparse(href)
    if parsed.scheme and len(parsed.scheme) > 1:
        return None  # remote files: nothing on this disk to compare with or open
    return PurePosixPath(unquote(href).replace("\\", "/")).as_posix()
