"""Image privacy: what a photo or scan says about its maker stays on the machine.

EXIF orientation is applied to the pixels; EXIF (GPS included), XMP, IPTC, ICC profiles,
comments and PNG text chunks are dropped. Clean images (the usual scanned line) pass through
byte for byte; JPEG and PNG lose only their metadata segments, losslessly; anything else that
carries metadata, or needs rotating, is re-encoded as PNG from its decoded pixels.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageOps

from .images import png_bytes

_ORIENTATION = 0x0112
# TIFF tags that describe the maker rather than the pixels: EXIF and GPS directories, XMP, IPTC,
# Photoshop resources, ICC profile, and the free-text fields.
_PRIVATE_TIFF_TAGS = {34665, 34853, 700, 33723, 34377, 34675, 269, 270, 271, 272, 305, 306, 315, 316, 33432}
# PNG chunks that carry pixels or how to show them; every other chunk (tEXt, zTXt, iTXt, eXIf,
# tIME, iCCP, private chunks) is dropped.
_PNG_KEPT_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"bKGD", b"pHYs"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG segments kept: APP0 (JFIF) and APP14 (Adobe, says how to read the colours); APP1-APP13
# and APP15 (EXIF, XMP, ICC, IPTC, ...) and COM (comments) go.
_JPEG_DROPPED = {*range(0xE1, 0xEE), 0xEF, 0xFE}


def without_private_metadata(data: bytes) -> bytes:
    """``data`` with orientation applied and no private metadata (see the module's docstring)."""
    with Image.open(io.BytesIO(data)) as image:
        if _needs_turning(image):
            return png_bytes(ImageOps.exif_transpose(image))
        if image.format == "JPEG":
            return _jpeg_without_segments(data)
        if image.format == "PNG":
            return _png_without_chunks(data)
        return png_bytes(image) if _other_metadata(image) else data


def holds_private_metadata(data: bytes, image: Image.Image) -> bool:
    """Whether ``without_private_metadata`` would change ``data``, judged on the already opened,
    not yet loaded ``image`` (validation opens every image anyway, so the export need not open
    it again)."""
    if _needs_turning(image):
        return True
    if image.format == "JPEG":
        return _jpeg_without_segments(data) is not data
    if image.format == "PNG":
        return _png_without_chunks(data) is not data
    return _other_metadata(image)


def _needs_turning(image: Image.Image) -> bool:
    # A TIFF's orientation is one of its own tags, parsed on opening: getexif() would parse the
    # directory again (and after load() Pillow has already turned the pixels and dropped the tag).
    tags = image.tag_v2 if image.format == "TIFF" else image.getexif()
    return tags.get(_ORIENTATION, 1) not in (0, 1)


def _other_metadata(image: Image.Image) -> bool:
    if image.format == "TIFF":
        return bool(set(image.tag_v2) & _PRIVATE_TIFF_TAGS)
    return any(key in image.info for key in ("exif", "xmp", "icc_profile", "comment", "photoshop", "iptc"))


def _png_without_chunks(data: bytes) -> bytes:
    kept, position = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if kind in _PNG_KEPT_CHUNKS:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    result = b"".join(kept)
    return data if len(result) == len(data) else result


def _jpeg_without_segments(data: bytes) -> bytes:
    kept, position = [data[:2]], 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        if marker not in _JPEG_DROPPED:
            kept.append(data[position : position + 2 + length])
        position += 2 + length
    kept.append(data[position:])
    result = b"".join(kept)
    return data if len(result) == len(data) else result
