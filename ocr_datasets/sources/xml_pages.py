"""What the PAGE and ALTO sources share: which files to read, and the line samples they make.

Each format's module is one ``PageFileSource`` that only parses one file into a ``ParsedPage``
(its lines in reading order, the page image it names and the page size it declares) or raises
``UnreadableFile``. The rest is the same for both and lives here: scanning a folder for files of
the format, finding the page image, checking its size against the declared one (and scaling the
coordinates on request), ids and metadata, and saying what was read.

Ids are ``<document>_<line id>``, where ``document`` is the file's path below the input folder
without its suffix (``bookA/0001`` for ``bookA/0001.xml``), so two books' ``0001.xml`` never
collide; a file given on its own is its stem (``0001``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from xml.etree import ElementTree
from xml.etree.ElementTree import Element

from PIL import Image

from ..errors import InputNotFoundError
from ..images import reading_problem
from ..problems import PAGE_IMAGE_NOT_FOUND, PAGE_IMAGE_UNREADABLE, PAGE_SIZE_MISMATCH, PAGE_UNREADABLE
from ..samples import SampleError, TrainingSample
from .base import Source
from .crop import CropOptions, CroppedSample, Point
from .notices import ReadSummary
from .page_images import IMAGES_FIX, case_differs, displayed_size, find_page_image, shown_reference, stem_candidates
from .sniff import visible_files
from .xml_common import local_name, xml_start

# The root element of each page-file format, and the suffix that promises it: a file so named
# that holds other XML is worth a mention.
PAGE_ROOT = "PcGts"
ALTO_ROOT = "alto"
PROMISED_ROOTS = {".page": PAGE_ROOT, ".alto": ALTO_ROOT}
# Suffixes a page file may have in a folder; other files are not opened while scanning one.
XML_SUFFIXES = (".xml", *PROMISED_ROOTS)
# A copy of the page may be scaled when its aspect ratio is within this of the declared one.
ASPECT_TOLERANCE = 0.01


class UnreadableFile(Exception):
    """A PAGE or ALTO file that gives no lines: why (and its code), the fix, and how many lines it
    holds (None when it cannot be parsed far enough to count them)."""

    def __init__(self, problem: str, fix: str, line_count: int | None = None, *, code: str):
        super().__init__(problem)
        self.problem, self.fix, self.line_count, self.code = problem, fix, line_count, code


@dataclass(frozen=True)
class ParsedLine:
    """One text line as a format gives it: ``position`` (1-based, in document order) names a
    line without an id of its own; ``text_from`` says where its text came from when not from
    the line's own text (``words``, ``plain_text``)."""

    line_id: str | None
    position: int
    text: str
    polygon: tuple[Point, ...]
    region_id: str | None
    text_from: str | None = None


@dataclass(frozen=True)
class ParsedPage:
    """A PAGE or ALTO file's lines in reading order; ``why_empty`` says why it has none."""

    lines: list[ParsedLine]
    image_reference: str | None
    declared_size: tuple[float, float] | None
    why_empty: str = "no TextLine"


class PageFileSource(Source):
    """A page-file format (PAGE, ALTO): one sample per text line, cut from the file's page image.
    A subclass names its format (``label``, ``xml_roots``) and parses one file (``parse``)."""

    #: The format as messages name it: "PAGE"; its files are counted as "PAGE file".
    label: ClassVar[str]
    suffixes = XML_SUFFIXES

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.unit = f"{cls.label} file"

    @abstractmethod
    def parse(self, xml_path: Path) -> ParsedPage:
        """The file's lines in reading order, or ``UnreadableFile`` when it gives none."""

    def sniff(self, path: Path, *, in_folder: bool) -> bool:
        return xml_start(path).root in self.xml_roots

    def read(self, path: Path, *, image_dir: Path | None, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
        """The samples of one file, or of every file of this format below a folder (sorted by
        path, so runs read lines in the same order). When the input has been read, a
        ``SourceNotice`` says what it held."""
        summary = ReadSummary(path, self.unit)
        if path.is_dir():
            files = self._files_below(path, summary)
        elif path.is_file():
            files = iter([XmlFile.given(path)])
        else:
            raise InputNotFoundError(f"input not found: {path}")
        for file in files:
            if isinstance(file, SampleError):
                yield file
            else:
                yield from self._file_items(file, image_dir, crop, summary)
        summary.warn()

    def root_element(self, xml_path: Path) -> Element:
        """The root element of a file of this format, or ``UnreadableFile`` saying why it cannot be read."""
        try:
            root = ElementTree.parse(xml_path).getroot()
        except ElementTree.ParseError as error:
            raise UnreadableFile(
                f"not well-formed XML ({error})",
                f"repair {xml_path.name} or remove it from the input",
                code=PAGE_UNREADABLE,
            ) from None
        except OSError as error:
            raise UnreadableFile(
                f"cannot be read ({error.strerror})", "check the file's permissions", code=PAGE_UNREADABLE
            ) from None
        if local_name(root) not in self.xml_roots:
            raise UnreadableFile(
                f"not a {self.unit} (its root element is <{local_name(root)}>)",
                f"read it as its own kind (--from), not as {self.label}",
                code=PAGE_UNREADABLE,
            )
        return root

    def _files_below(self, folder: Path, summary: ReadSummary) -> Iterator[XmlFile | SampleError]:
        """The files of this format below ``folder``, and errors for files that may have been of
        it but cannot be read. Files of another kind (METS, the other format) and files that are
        no XML by name (images) are passed over in silence; an empty file, or one named
        ``.page``/``.alto`` holding other XML, is named in the summary."""
        for path in visible_files(folder):
            suffix = path.suffix.lower()
            if suffix not in XML_SUFFIXES:
                continue
            file = XmlFile.below(path, folder)
            start = xml_start(path)
            if start.root in self.xml_roots:
                yield file
            elif start.holds_nothing:
                summary.skipped.append(f"{file.location} ({start.problem})")
            elif start.root is None:
                # Not even its start parses: it may be a page file of this format, broken.
                yield file.error(
                    f"{start.problem}: cannot tell whether it is a {self.unit}",
                    f"repair {path.name} or remove it from the input",
                    code=PAGE_UNREADABLE,
                )
            elif suffix in PROMISED_ROOTS and start.root not in (PAGE_ROOT, ALTO_ROOT):
                summary.skipped.append(
                    f"{file.location} (named {suffix}, but its root element is <{start.root}>, not "
                    f"<{PROMISED_ROOTS[suffix]}>)"
                )

    def _file_items(
        self, file: XmlFile, image_dir: Path | None, crop: CropOptions, summary: ReadSummary
    ) -> Iterator[TrainingSample | SampleError]:
        summary.units += 1
        try:
            page = self.parse(file.path)
        except UnreadableFile as unreadable:
            summary.lines += unreadable.line_count or 0
            yield file.error(unreadable.problem, unreadable.fix, unreadable.line_count, code=unreadable.code)
            return
        summary.lines += len(page.lines)
        if not page.lines:
            # Checked before the image: a file without lines loses nothing, whatever else is wrong with it.
            summary.empty.append(f"{file.location} ({page.why_empty})")
            return
        line_count = len(page.lines)
        image = find_page_image(file.path, page.image_reference, input_root=file.input_root, image_dir=image_dir)
        if image is None:
            yield _image_not_found(file, page.image_reference, line_count, image_dir)
            return
        if case_differs(page.image_reference, image):
            summary.notes.append(
                f"{file.location} names {page.image_reference!r}; took {image.name} (the names differ in case)"
            )
        scale = _coordinate_scale(file, image, page.declared_size, crop, line_count)
        if isinstance(scale, SampleError):
            yield scale
            return
        samples = LineSampleFactory(file, image, crop, scale, page.declared_size)
        for line in page.lines:
            yield samples.sample(line)


@dataclass(frozen=True)
class XmlFile:
    """A file to read, and how it is named: ``location`` in messages and sources
    (``bookA/0001.xml``), ``document`` in ids and metadata (``bookA/0001``)."""

    path: Path
    # Image references resolve up to this folder when no METS lies above the file.
    input_root: Path
    location: str
    document: str

    @classmethod
    def given(cls, path: Path) -> XmlFile:
        return cls(path, path.parent, path.name, path.stem)

    @classmethod
    def below(cls, path: Path, folder: Path) -> XmlFile:
        relative = path.relative_to(folder)
        return cls(path, folder, relative.as_posix(), relative.with_suffix("").as_posix())

    def error(self, problem: str, fix: str, line_count: int | None = None, *, code: str) -> SampleError:
        """A problem of the whole file, reported once and counted as the lines it holds (as one
        sample when they cannot be counted)."""
        return SampleError(
            None, problem, fix, code=code, location=self.location, sample_count=1 if line_count is None else line_count
        )


def _image_not_found(file: XmlFile, reference: str | None, line_count: int, image_dir: Path | None) -> SampleError:
    images = ", in the images folder" if image_dir is not None else ""
    if reference:
        # The file name only: a reference may hold a user's folders (C:\Users\jane\Scans\...).
        where = (
            f"beside the file, in its parent folders up to the METS, via mets.xml{images or ' or in the images folder'}"
        )
        problem = f"page image {shown_reference(reference)!r} not found {where}"
    else:
        tried = ", ".join(stem_candidates(file.path))
        problem = (
            f"the file names no page image, and none was found via mets.xml or by its own name ({tried}) "
            f"beside it{images}"
        )
    return file.error(f"{problem}; {_left_out(line_count)}", IMAGES_FIX, line_count, code=PAGE_IMAGE_NOT_FOUND)


def _left_out(line_count: int) -> str:
    return "its line is left out" if line_count == 1 else f"its {line_count} lines are left out"


def _coordinate_scale(
    file: XmlFile, image: Path, declared: tuple[float, float] | None, crop: CropOptions, line_count: int
) -> tuple[float, float] | SampleError | None:
    """None when the image has the size the file declares (or it declares none); the factors
    that scale the coordinates to a scaled copy with ``scale_to_image``; else the file's error.
    The image is measured as displayed (EXIF orientation applied), as lines are cut from it."""
    if declared is None:
        return None
    try:
        (width, height), stored = displayed_size(image)
    except (OSError, Image.DecompressionBombError) as error:
        return file.error(
            f"page image {image.name} cannot be read ({reading_problem(error)})",
            "replace the page image",
            line_count,
            code=PAGE_IMAGE_UNREADABLE,
        )
    declared_width, declared_height = (round(value) for value in declared)
    if (width, height) == (declared_width, declared_height):
        return None
    same_shape = abs((width / height) / (declared_width / declared_height) - 1) <= ASPECT_TOLERANCE
    if same_shape and crop.scale_to_image:
        return width / declared_width, height / declared_height
    problem = f"image is {width}×{height}, the file declares {declared_width}×{declared_height}"
    if stored != (width, height):
        problem += f" ({image.name} is stored {stored[0]}×{stored[1]} and turned by its EXIF orientation)"
    if same_shape:
        problem += f": {image.name} looks like a scaled copy of the page the lines were drawn on"
        fix = (
            "use the image the file was made on, "
            "or scale the coordinates to this copy with --scale-to-image (CropOptions(scale_to_image=True))"
        )
    elif stored == (declared_width, declared_height):
        problem += ": the lines were drawn on the image as stored"
        fix = "remove the image's EXIF orientation tag, or use the image the file was made on"
    else:
        if crop.scale_to_image:
            problem += ", and the aspect ratio differs"
        problem += f": {image.name} is not the page the lines were drawn on"
        fix = (
            "use the image the file was made on "
            "(its aspect ratio differs too, so it is not a scaled copy that could be scaled back)"
        )
    return file.error(f"{problem}; {_left_out(line_count)}", fix, line_count, code=PAGE_SIZE_MISMATCH)


@dataclass(frozen=True)
class LineSampleFactory:
    """Makes the samples of one file's lines: ids from the file's document name and the line's
    own id (stable across runs), the crop of its page image, and the metadata both formats share."""

    file: XmlFile
    page_image: Path
    crop: CropOptions
    # (x, y) factors when the coordinates are scaled to a copy of another size than declared.
    scale: tuple[float, float] | None = None
    declared_size: tuple[float, float] | None = None

    def sample(self, line: ParsedLine) -> CroppedSample:
        element_id = line.line_id or f"l{line.position:04d}"
        sample_id = f"{self.file.document}_{element_id}"
        polygon = line.polygon
        if self.scale is not None:
            polygon = tuple((round(x * self.scale[0], 2) + 0.0, round(y * self.scale[1], 2) + 0.0) for x, y in polygon)
        metadata: dict[str, Any] = {
            "document": self.file.document,
            "page": self.page_image.name,
            "region": line.region_id,
            "line": element_id,
            "polygon": [[_plain_number(x), _plain_number(y)] for x, y in polygon],
        }
        if line.text_from is not None:
            metadata["text_from"] = line.text_from
        if self.scale is not None and self.declared_size is not None:  # a scale comes from a declared size
            metadata["scaled_from"] = [_plain_number(value) for value in self.declared_size]
        return CroppedSample(
            id=sample_id,
            image_path=f"{sample_id}.png",
            ground_truth=line.text,
            metadata=metadata,
            page_image=self.page_image,
            polygon=polygon,
            crop=self.crop,
            source=f"{self.file.location}:{element_id}",
        )


def _plain_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def declared_size(width: str | None, height: str | None) -> tuple[float, float] | None:
    """A page size from two attributes, None when either is missing or less than a pixel: then
    the file declares nothing to compare the image with."""
    if width is None or height is None:
        return None
    try:
        size = float(width), float(height)
    except ValueError:
        return None
    return size if min(size) >= 1 else None
