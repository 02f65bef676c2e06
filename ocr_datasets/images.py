"""What the exports need to know about an image's bytes, without decoding its pixels."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import PurePath

from PIL import Image, UnidentifiedImageError

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
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


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
            image_format, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError) as error:
        detail = "the file is empty" if not data else f"Pillow cannot read it ({error})"
        raise SampleError(sample_id, f"image is not a readable image: {detail}", "replace the image file with a valid image") from None
    suffix, mime_type = _KNOWN_FORMATS.get(image_format, (f".{image_format.lower()}", f"image/{image_format.lower()}"))
    return ImageInfo(image_format, suffix, mime_type, width, height)


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG, losslessly where PNG holds its mode (CMYK, YCbCr and the like
    become RGB), and with none of its metadata."""
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def expected_format(name) -> str | None:
    """The Pillow format a file name's suffix promises, if it is a suffix we know."""
    if name is None:
        return None
    return _SUFFIX_FORMATS.get(PurePath(name).suffix.lower())


def data_url(data: bytes, sample_id: str) -> str:
    """A ``data:`` URL whose MIME type tells the truth; formats such consumers cannot read become PNG, losslessly."""
    info = identify(data, sample_id)
    mime_type = info.mime_type
    if info.format not in _DATA_URL_FORMATS:
        with Image.open(io.BytesIO(data)) as image:
            data, mime_type = png_bytes(image), "image/png"
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"
