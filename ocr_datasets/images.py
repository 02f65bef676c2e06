"""What the exports need to know about an image's bytes, without decoding its pixels."""

from __future__ import annotations

import base64
import io
import os
import re
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageOps, UnidentifiedImageError

from .problems import IMAGE_NOT_AN_IMAGE
from .samples import SampleError

# Pillow format name -> (file suffix, MIME type). Formats missing here keep Pillow's name.
_KNOWN_FORMATS = {
    "PNG": (".png", "image/png"),
    "JPEG": (".jpg", "image/jpeg"),
    "TIFF": (".tif", "image/tiff"),
    "GIF": (".gif", "image/gif"),
    "BMP": (".bmp", "image/bmp"),
    "WEBP": (".webp", "image/webp"),
    "JPEG2000": (".jp2", "image/jp2"),
    "PPM": (".ppm", "image/x-portable-anymap"),
}

_SUFFIX_FORMATS = {suffix: name for name, (suffix, _) in _KNOWN_FORMATS.items()} | {".jpeg": "JPEG", ".tiff": "TIFF"}

# What OpenAI-style consumers of data: URLs read; anything else is converted to PNG for them.
_DATA_URL_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
# Modes PNG holds as they are (at 8 bits a channel: deeper greyscale is made 8-bit first).
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}
# Greyscale deeper than 8 bits: 16-bit (as scanners write it), 32-bit integer and float.
# Pillow's convert() clips these at 255 instead of scaling them, so a scan comes out white.
_DEEP_GREY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# The ranges I and F values are scaled from: the smallest that holds all of an image's values.
_USUAL_RANGES = {"F": (1.0, 255.0, 65535.0), "I": (255.0, 65535.0)}
# The EXIF (and TIFF) tag that says how a stored image is to be turned for display.
EXIF_ORIENTATION = 0x0112
# Orientations that turn the stored image a quarter: its width and height swap when displayed.
QUARTER_TURNS = frozenset({5, 6, 7, 8})
# Suffixes of page images (scans, photos of pages), which lines are cut from: what a labeling
# task's image may be called, and in this order what a page file's image is looked for by.
PAGE_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".jp2", ".webp", ".bmp", ".gif")
# Pillow names the file it read in some messages, as a path or a file object whose repr holds
# the path; messages written into a batch name files, never folders.
_NAMED_FILE = re.compile(r"<_io\.\w+ name=[^>]*>|'[^']*[/\\][^']*'|\"[^\"]*[/\\][^\"]*\"")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    suffix: str
    mime_type: str
    width: int
    height: int


def suffix_for(image_format: str) -> str:
    return _KNOWN_FORMATS.get(image_format, (f".{image_format.lower()}", ""))[0]


def identify(data: bytes, sample_id: str) -> ImageInfo:
    """Read the image header (not the pixels) to learn its real format and size."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format, (width, height) = opened_format(image), image.size
    except (UnidentifiedImageError, OSError, ValueError) as error:
        detail = "the file is empty" if not data else f"Pillow cannot read it ({reading_problem(error)})"
        raise SampleError(
            sample_id,
            f"image is not a readable image: {detail}",
            "replace the image file with a valid image",
            code=IMAGE_NOT_AN_IMAGE,
        ) from None
    suffix, mime_type = _KNOWN_FORMATS.get(image_format, (f".{image_format.lower()}", f"image/{image_format.lower()}"))
    return ImageInfo(image_format, suffix, mime_type, width, height)


def opened_format(image: Image.Image) -> str:
    """The format of an image ``Image.open`` read from a file; only an image made in memory has none."""
    if image.format is None:
        raise ValueError("the image has no format")
    return image.format


def frame_count(image: Image.Image) -> int:
    """How many frames (pages of a TIFF, frames of a GIF, PNG or WebP animation) the opened, not
    yet loaded ``image`` holds, without decoding them. The pictures an MPO appends to its JPEG
    (previews, depth or gain maps, as phones write them) are not counted: they lie after the
    JPEG's end, and the privacy step drops them with whatever else follows it."""
    if image.format == "MPO" or not getattr(image, "is_animated", False):
        return 1
    return getattr(image, "n_frames", 1)  # an attribute of the formats that hold frames


def reading_problem(error: Exception) -> str:
    """What went wrong reading an image, for a message that may travel with a batch: Pillow's
    own words, without the path some of them carry."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image format Pillow reads"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # str() of FileNotFoundError and the like adds the path
    return _NAMED_FILE.sub("the file", str(error)) or type(error).__name__


def is_deep_greyscale(image: Image.Image) -> bool:
    """Whether ``image`` is greyscale of more than 8 bits (16-bit, 32-bit integer, float)."""
    return image.mode in _DEEP_GREY_MODES


def eight_bit(image: Image.Image) -> Image.Image:
    """``image`` with greyscale deeper than 8 bits scaled to 8-bit ``L``; any other image as it is.

    Pillow's ``convert`` clips such values at 255 instead of scaling them (a 16-bit scan comes
    out white), so every place that converts or re-encodes pixels goes through here first.
    16-bit modes (``I;16``, ``I;16B``, ...) are scaled from their full range, 0 to 65535, so the
    tones and the contrast stay as scanned. ``I`` (32-bit integer) and ``F`` (float) have no
    range that files keep to: they are scaled from the smallest usual range that holds every
    value of the image (0 to 1 for floats, 0 to 255, 0 to 65535), and when none does (negative
    values, or beyond 65535), from the image's own minimum to its maximum.
    """
    if not is_deep_greyscale(image):
        return image
    # Exact for every such mode, and point() scales only I and F images.
    grey = image.convert("F")
    if image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    else:
        # One band (F): getextrema() is its (minimum, maximum), not a pair per band.
        low, high = cast(tuple[float, float], grey.getextrema())
        top = next((top for top in _USUAL_RANGES[image.mode] if low >= 0 and high <= top), None)
        if top is not None:
            low, high = 0.0, top
    scale = 255.0 / (high - low) if high > low else 0.0
    # + 0.5: the conversion to L truncates, and rounding keeps 257 * n at n.
    return grey.point(lambda value: (value - low) * scale + 0.5).convert("L")


def rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, what image processors expect (deep greyscale scaled, see ``eight_bit``)."""
    return eight_bit(image).convert("RGB")


def png_bytes(image: Image.Image, compress_level: int = 6) -> bytes:
    """``image`` encoded as PNG, losslessly where PNG holds its mode at 8 bits a channel (CMYK,
    YCbCr and the like become RGB; deeper greyscale is scaled to 8 bits, see ``eight_bit``),
    only its current frame, and with none of its metadata. ``compress_level`` is zlib's (1
    fastest), which changes the size, never the pixels."""
    image = eight_bit(image)
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    # Pillow writes the decoded image's ICC profile into the PNG unless told not to.
    image.save(buffer, format="PNG", icc_profile=None, compress_level=compress_level)
    return buffer.getvalue()


def decoded_png_bytes(data: bytes) -> bytes:
    """The image ``data`` holds, decoded and encoded again as PNG (see ``png_bytes``) at zlib's
    fastest level (half the time of its default, for files ~10 % larger), turned as its
    orientation tag says, since the PNG keeps no metadata that could say it."""
    with Image.open(io.BytesIO(data)) as image:
        turned = ImageOps.exif_transpose(image) if image.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1) else image
        return png_bytes(turned, compress_level=1)


def expected_format(name) -> str | None:
    """The Pillow format a file name's suffix promises, if it is a suffix we know."""
    if name is None:
        return None
    # splitext, not PurePath(name).suffix, which parses a path object for each image: the same
    # suffix for any file's name but one that starts with dots ("..png": none).
    return _SUFFIX_FORMATS.get(os.path.splitext(name)[1].lower())


def data_url(data: bytes, sample_id: str) -> str:
    """A ``data:`` URL whose MIME type tells the truth; formats such consumers cannot read become PNG, losslessly."""
    info = identify(data, sample_id)
    mime_type = info.mime_type
    if info.format not in _DATA_URL_FORMATS:
        with Image.open(io.BytesIO(data)) as image:
            data, mime_type = png_bytes(image), "image/png"
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"
