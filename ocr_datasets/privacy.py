"""Image privacy: what a photo or scan says about its maker stays on the machine.

EXIF orientation is applied to the pixels. Of the formats scans come in, only what decoding
needs is kept (allow-lists, not lists of what to drop: metadata hides in places no list names):

- JPEG keeps its frame, table, restart and scan segments, JFIF (APP0) and Adobe (APP14); EXIF,
  XMP, ICC, IPTC, comments and every other segment go, and so does everything after the end of
  the image (the video of a phone's "motion photo", the pictures an MPO appends).
- PNG keeps the chunks that carry pixels or how to show them; text, EXIF, ICC, time and private
  chunks go, and so does everything after IEND.
- TIFF passes only when it holds nothing but the tags decoding needs, on a single page.

JPEG and PNG lose only those bytes, losslessly; clean images (the usual scanned line) pass
through byte for byte. A TIFF holding any other tag, an image that needs turning, greyscale
deeper than 8 bits (training code's ``convert("RGB")`` would clip it to white), and every
other format (GIF, BMP, WebP, JPEG 2000, ...: their bytes are not parsed here, so they cannot be
vouched for) are re-encoded as PNG from their decoded pixels (one frame, 8 bits a channel).
"""

from __future__ import annotations

import io
import re
import struct
from typing import TypeGuard

from PIL import Image, ImageOps
from PIL.TiffImagePlugin import TiffImageFile

from .images import EXIF_ORIENTATION, frame_count, is_deep_greyscale, png_bytes

# TIFF tags that say how to decode the pixels, and two numbers about them (resolution, and the
# page number line corpora carry: every TIFF of ocrd-line-gt says "page 0 of 1"): a TIFF holding
# any other tag (Artist, Software, DateTime, PageName, XPAuthor, EXIF, GPS, XMP, ICC, private
# tags, ...) is re-encoded. Orientation other than 1 is applied to the pixels before this list
# is consulted.
_TIFF_DECODING_TAGS = {
    254,  # NewSubfileType
    255,  # SubfileType
    256,  # ImageWidth
    257,  # ImageLength
    258,  # BitsPerSample
    259,  # Compression
    262,  # PhotometricInterpretation
    266,  # FillOrder
    273,  # StripOffsets
    EXIF_ORIENTATION,  # 274, Orientation
    277,  # SamplesPerPixel
    278,  # RowsPerStrip
    279,  # StripByteCounts
    280,  # MinSampleValue
    281,  # MaxSampleValue
    282,  # XResolution
    283,  # YResolution
    284,  # PlanarConfiguration
    292,  # T4Options
    293,  # T6Options
    296,  # ResolutionUnit
    297,  # PageNumber
    317,  # Predictor
    320,  # ColorMap
    322,  # TileWidth
    323,  # TileLength
    324,  # TileOffsets
    325,  # TileByteCounts
    338,  # ExtraSamples
    339,  # SampleFormat
    340,  # SMinSampleValue
    341,  # SMaxSampleValue
    347,  # JPEGTables
    529,  # YCbCrCoefficients
    530,  # YCbCrSubSampling
    531,  # YCbCrPositioning
    532,  # ReferenceBlackWhite
}
# Of those, the one that holds bytes; the others hold numbers, and text or bytes in one of them
# (a tag of the wrong type) is no way to decode pixels either.
_TIFF_BYTES_TAGS = {347}
# PNG chunks that carry pixels or how to show them; every other chunk (tEXt, zTXt, iTXt, eXIf,
# tIME, iCCP, animation chunks, private chunks) is dropped.
_PNG_KEPT_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"bKGD", b"pHYs"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG: Pillow reads a JPEG with pictures appended (multi-picture format) as "MPO".
_JPEG_FORMATS = {"JPEG", "MPO"}
_EOI, _SOS = 0xD9, 0xDA
# Segments kept: frames (SOF0-15 but for the reserved C8, with DHT C4 and DAC CC among them),
# quantisation tables, restart interval, number of lines, scans.
_JPEG_KEPT = (set(range(0xC0, 0xD0)) - {0xC8}) | {0xDB, 0xDD, 0xDC, _SOS}
# And application segments by what they start with: JFIF and Adobe (says how to read the colours).
_JPEG_KEPT_APPS = {0xE0: b"JFIF\0", 0xEE: b"Adobe"}
# Markers without a length: RST0-7 and TEM.
_JPEG_STANDALONE = {*range(0xD0, 0xD8), 0x01}
# Within compressed data a 0xFF byte is followed by 0x00 (stuffing) or a restart marker; any
# other byte after it starts a marker (tables between progressive scans, the next scan, the end).
_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def without_private_metadata(data: bytes) -> bytes:
    """``data`` with orientation applied and no private metadata (see the module's docstring)."""
    png_kept = _png_without_chunks(data) if data.startswith(PNG_SIGNATURE) else None
    if png_kept is data and not _png_to_open(data):
        # Nothing to drop, no orientation to apply (Pillow finds one only in chunks that are
        # dropped), known without opening it: for a PNG, Pillow's getexif decodes the whole image.
        return data
    with Image.open(io.BytesIO(data)) as image:
        if _needs_turning(image) or is_deep_greyscale(image):
            return png_bytes(ImageOps.exif_transpose(image))
        if image.format in _JPEG_FORMATS:
            cleaned = _jpeg_without_segments(data)
            return png_bytes(image) if cleaned is None else cleaned
        if png_kept is not None:
            return png_kept
        return png_bytes(image) if _must_reencode(image) else data


def bytes_to_export(data: bytes, private: bool, keep_image_metadata: bool) -> bytes:
    """The bytes an export writes of an image that ``holds_private_metadata`` (``private``) or
    not: its own, or cleaned of private metadata unless ``keep_image_metadata``."""
    return without_private_metadata(data) if private and not keep_image_metadata else data


def holds_private_metadata(data: bytes, image: Image.Image) -> bool:
    """Whether ``without_private_metadata`` would change ``data``, judged on the already opened,
    not yet loaded ``image`` (validation opens every image anyway, so the export need not open
    it again)."""
    if _needs_turning(image) or is_deep_greyscale(image):
        return True
    if image.format in _JPEG_FORMATS:
        return _jpeg_without_segments(data) is not data
    if image.format == "PNG":
        return _png_without_chunks(data) is not data
    return _must_reencode(image)


def _needs_turning(image: Image.Image) -> bool:
    # A TIFF's orientation is one of its own tags, parsed on opening: getexif() would parse the
    # directory again (and after load() Pillow has already turned the pixels and dropped the tag).
    tags = image.tag_v2 if _is_tiff(image) else image.getexif()
    return tags.get(EXIF_ORIENTATION, 1) not in (0, 1)


def _is_tiff(image: Image.Image) -> TypeGuard[TiffImageFile]:
    # The format, not the class alone: other formats' files (MIC) are TiffImageFiles too.
    return image.format == "TIFF" and isinstance(image, TiffImageFile)


def _must_reencode(image: Image.Image) -> bool:
    if _is_tiff(image):
        tags = image.tag_v2
        if not _TIFF_DECODING_TAGS.issuperset(tags):
            return True
        if any(_holds_text(tags[tag]) for tag in tags if tag not in _TIFF_BYTES_TAGS):
            return True
        # Later pages have tags of their own (and validation refuses them; see frame_count).
        return frame_count(image) > 1
    return True


def _holds_text(value) -> bool:
    # Pillow gives a tag's values as a tuple when there are several, or when the type is unexpected.
    return isinstance(value, (str, bytes)) or (
        isinstance(value, tuple) and any(isinstance(item, (str, bytes)) for item in value)
    )


def _png_to_open(data: bytes) -> bool:
    """Whether the PNG ``data`` must be opened all the same: its greyscale is 16-bit (scaled to
    8), or its header is not where the format puts it (Pillow judges it)."""
    if data[12:16] != b"IHDR" or len(data) < 26:
        return True
    bit_depth, colour_type = data[24], data[25]
    return colour_type == 0 and bit_depth == 16


def _png_without_chunks(data: bytes) -> bytes:
    kept, position = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if kind in _PNG_KEPT_CHUNKS:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break  # whatever follows is no part of the image
    result = b"".join(kept)
    return data if len(result) == len(data) else result


def _jpeg_without_segments(data: bytes) -> bytes | None:
    """``data`` itself when it holds only what decoding needs and ends at its end-of-image marker;
    else its kept segments up to that marker; None when its structure cannot be followed (the
    caller then re-encodes the decoded pixels instead)."""
    kept, position = [data[:2]], 2
    while True:
        if position + 2 > len(data) or data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == _EOI:
            kept.append(data[position : position + 2])
            break  # whatever follows is no part of the image
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if position + 4 > len(data):
            return None
        end = position + 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
        if marker in _JPEG_KEPT or (
            marker in _JPEG_KEPT_APPS and data[position + 4 : end].startswith(_JPEG_KEPT_APPS[marker])
        ):
            kept.append(data[position:end])
        position = end
        if marker == _SOS:
            # The compressed data, kept whole up to the next marker (its restarts included).
            following = _JPEG_MARKER_IN_SCAN.search(data, position)
            if following is None:
                return None
            kept.append(data[position : following.start()])
            position = following.start()
    result = b"".join(kept)
    return data if len(result) == len(data) else result
