"""Line crops from page images, cut when the image is read, so a corpus of pages never sits in memory."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from ..files import NotARegularFile, open_regular_file
from ..images import eight_bit, frame_count, png_bytes, reading_problem
from ..problems import (
    CROP_NO_OUTLINE,
    CROP_TOO_SMALL,
    PAGE_IMAGE_MULTI_FRAME,
    PAGE_IMAGE_NOT_FOUND,
    PAGE_IMAGE_UNREADABLE,
)
from ..samples import SampleError, TrainingSample

Point = tuple[float, float]
# A crop narrower or lower than this holds no legible line: a stray point or a collapsed polygon.
MIN_CROP_SIDE = 4


@dataclass(frozen=True)
class CropOptions:
    """How lines are cut from their page.

    Args:
        padding: pixels added on every side of the polygon's bounding box (clipped to the page).
        mask_outside: paint everything outside the polygon white, so neighbouring lines that
            reach into the bounding box do not show.
    """

    padding: int = 0
    mask_outside: bool = False
    # PAGE/ALTO: scale the coordinates to a page image of another size than the file declares,
    # when the aspect ratios match (a scaled copy); else such a page is rejected. Readers apply it.
    scale_to_image: bool = False


@dataclass(slots=True)
class CroppedSample(TrainingSample):
    """A sample whose image is a region of a page image, cut along ``polygon`` when read.

    ``image_path`` names the crop (``<id>.png``); ``page_image`` is the page it is cut from.
    Lines of one page come one after another, and the last decoded pages are kept, so a page is
    decoded once however many lines it holds.
    """

    page_image: str | os.PathLike[str] | None = None
    polygon: tuple[Point, ...] = ()
    crop: CropOptions = field(default_factory=CropOptions)

    def read_image_bytes(self) -> bytes:
        if self.page_image is None:
            raise TypeError(f"CroppedSample {self.id!r} has no page_image to cut its line from")
        # Problems name the page's file, never its folder: they end up in rejected.jsonl.
        name = Path(self.page_image).name
        try:
            page = _decoded_page(os.fspath(self.page_image), *_file_version(self.page_image))
        except FileNotFoundError:
            raise SampleError(
                self.id,
                f"page image not found: {name}",
                "restore the page image or name its folder",
                code=PAGE_IMAGE_NOT_FOUND,
            ) from None
        except NotARegularFile as error:
            raise SampleError(
                self.id,
                f"page image {name} is {error.kind}, not an image file",
                "point the page at its image file",
                code=PAGE_IMAGE_UNREADABLE,
            ) from None
        except _ManyFrames as error:
            raise SampleError(
                self.id,
                f"page image {name} holds {error.frames} frames (pages of a TIFF, frames of an animation); "
                "a page image must be a single frame",
                "save the page as an image file of its own",
                code=PAGE_IMAGE_MULTI_FRAME,
            ) from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise SampleError(
                self.id,
                f"page image {name} cannot be read ({reading_problem(error)})",
                "replace the page image",
                code=PAGE_IMAGE_UNREADABLE,
            ) from None
        return crop_to_png(page, self.polygon, self.crop, self.id)


def crop_to_png(page: Image.Image, polygon: Sequence[Point], options: CropOptions, sample_id: str) -> bytes:
    """The polygon's bounding box (plus padding, clipped to the page) as PNG bytes."""
    if len(polygon) < 2:
        raise SampleError(
            sample_id,
            f"the line's outline has {len(polygon)} point(s)",
            "give the line a polygon or box",
            code=CROP_NO_OUTLINE,
        )
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    left = max(0, math.floor(min(xs)) - options.padding)
    top = max(0, math.floor(min(ys)) - options.padding)
    right = min(page.width, math.ceil(max(xs)) + options.padding)
    bottom = min(page.height, math.ceil(max(ys)) + options.padding)
    if right - left < MIN_CROP_SIDE or bottom - top < MIN_CROP_SIDE:
        size = f"{max(0, right - left)}x{max(0, bottom - top)}"
        raise SampleError(
            sample_id,
            f"the line's crop is {size} pixels after clipping to the {page.width}x{page.height} page",
            "check the line's coordinates (outside the page, or collapsed)",
            code=CROP_TOO_SMALL,
        )
    line = page.crop((left, top, right, bottom))
    if options.mask_outside and len(polygon) >= 3:
        mask = Image.new("L", line.size, 0)
        ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in polygon], fill=255)
        line = Image.composite(line, Image.new(line.mode, line.size, "white"), mask)
    return png_bytes(line)


def parse_points(points: str) -> tuple[Point, ...]:
    """PAGE / ALTO point lists: ``"x1,y1 x2,y2 ..."`` (ALTO also allows ``"x1 y1 x2 y2 ..."``)."""
    numbers = [float(value) for value in points.replace(",", " ").split()]
    # An odd count of numbers: the stray last one is left out.
    return tuple(zip(numbers[0::2], numbers[1::2], strict=False))


def box_points(left: float, top: float, width: float, height: float) -> tuple[Point, ...]:
    return ((left, top), (left + width, top), (left + width, top + height), (left, top + height))


def _file_version(path) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


class _ManyFrames(ValueError):
    def __init__(self, frames: int):
        super().__init__(f"{frames} frames")
        self.frames = frames


@lru_cache(maxsize=2)
def _decoded_page(path: str, size: int, mtime_ns: int) -> Image.Image:
    """A page image with its EXIF orientation applied, decoded once (keyed by size and mtime,
    so a changed file is read anew), its greyscale at 8 bits. Only a regular file of a single
    frame is a page image (as a line image: see validation)."""
    with open_regular_file(path) as file, Image.open(file) as image:
        frames = frame_count(image)
        if frames > 1:
            raise _ManyFrames(frames)
        page = ImageOps.exif_transpose(image)
        page.load()
    # convert() below would clip 16-bit and float greyscale to white.
    page = eight_bit(page)
    if page.mode not in ("1", "L", "RGB"):
        page = page.convert("RGB")
    # Else every line's PNG carries the page's metadata: a scanner's ICC profile alone made each
    # crop 700 KB instead of 58 KB, and EXIF could name the camera.
    page.info = {}
    return page
