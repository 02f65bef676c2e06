"""Why a sample is rejected, as a stable machine-readable code beside the English sentence.

``rejected.jsonl`` lists each rejection's codes (``codes``): tools that sort or count rejections
match codes, never the sentences, which name particulars (a file, a value) and may be reworded.
A code is never renamed, nor reused for another meaning. ``PROBLEM_CODES`` holds every code with
its meaning, and docs/validation.md lists exactly these (a test keeps the two equal).
"""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    """One thing wrong with a sample: its code, what is wrong (with its particulars), and what
    the user can do about it. A tuple, so that it pickles cheaply from validation's workers."""

    code: str
    text: str
    fix: str


PROBLEM_CODES: dict[str, str] = {}


def _code(code: str, meaning: str) -> str:
    PROBLEM_CODES[code] = meaning
    return code


# What a source could not read and gave no code for: the default of SampleError (your own source, say).
INPUT_UNREADABLE = _code("input.unreadable", "a record could not be read, and its source gave no code")

# The sample's image.
IMAGE_MISSING = _code(
    "image.missing",
    "the sample names no image (neither image_path nor image_bytes; "
    "in a manifest, neither image_path nor image_base64)",
)
IMAGE_PATH_INVALID = _code("image.path_invalid", "image_path is not a path")
IMAGE_NOT_FOUND = _code("image.not_found", "the image file does not exist")
IMAGE_NOT_REGULAR_FILE = _code("image.not_regular_file", "image_path names a folder, named pipe, device or socket")
IMAGE_UNREADABLE = _code("image.unreadable", "the image file cannot be read (permissions, an input/output error)")
IMAGE_NOT_DATA_URL = _code("image.not_data_url", "a manifest's image_base64 is not a base64 data: URL")
IMAGE_EMPTY = _code("image.empty", "the image file is empty (0 bytes)")
IMAGE_NOT_AN_IMAGE = _code("image.not_an_image", "the file is not an image Pillow reads")
IMAGE_DAMAGED = _code("image.damaged", "the image is truncated or damaged: it does not decode in full")
IMAGE_DECOMPRESSION_BOMB = _code("image.decompression_bomb", "the image has more pixels than Pillow's limit")
IMAGE_MULTI_FRAME = _code(
    "image.multi_frame", "the image holds several frames (pages of a TIFF, frames of an animation)"
)
IMAGE_MISNAMED = _code("image.misnamed", "the file's suffix names another format than the file holds")
IMAGE_TOO_SMALL = _code("image.too_small", "the image is smaller than 4×4 pixels")
IMAGE_CHANGED_AFTER_VALIDATION = _code(
    "image.changed_after_validation", "the image's bytes changed between validation and writing (the export stops)"
)
IMAGE_BYTES_NOT_BYTES = _code("image_bytes.not_bytes", "image_bytes (Python) is not bytes")

# ground_truth and ocr_text.
TEXT_MISSING = _code("text.missing", "ground_truth is missing")
TEXT_NOT_STRING = _code("text.not_string", "ground_truth or ocr_text is not a string")
TEXT_EMPTY = _code("text.empty", "ground_truth is empty or only whitespace after normalisation")
TEXT_CONTROL_CHARACTER = _code(
    "text.control_character", "ground_truth or ocr_text holds control characters or line or paragraph separators"
)
TEXT_LONE_SURROGATE = _code(
    "text.lone_surrogate", "ground_truth or ocr_text holds a lone surrogate (a broken \\u escape)"
)

ID_MISSING = _code("id.missing", "a manifest record has no id")
ID_NOT_STRING = _code("id.not_string", "the id is not a string")
ID_EMPTY = _code("id.empty", "the id is empty or only whitespace")
ID_LONE_SURROGATE = _code("id.lone_surrogate", "the id holds a lone surrogate (a broken \\u escape)")
ID_REPEATED = _code("id.repeated", "an earlier sample has the same id")

CONFIDENCE_NOT_NUMBER = _code("confidence.not_number", "ocr_confidence is not a number")
CONFIDENCE_OUT_OF_RANGE = _code("confidence.out_of_range", "ocr_confidence is NaN or outside [0, 1]")

METADATA_NOT_OBJECT = _code("metadata.not_object", "metadata is not a JSON object")
METADATA_KEY_NOT_STRING = _code("metadata.key_not_string", "a metadata key is not a string")
METADATA_NOT_JSON = _code(
    "metadata.not_json",
    "a metadata value JSON cannot store (NaN, infinity, an object, a number of thousands of digits)",
)
METADATA_LONE_SURROGATE = _code(
    "metadata.lone_surrogate", "a metadata key or value holds a lone surrogate (a broken \\u escape)"
)
METADATA_TOO_DEEP = _code("metadata.too_deep", "the metadata (or a manifest record) is nested deeper than 32 levels")
METADATA_GROUP_KEY_MISSING = _code(
    "metadata.group_key_missing", "the metadata has no value for the group_by key (--group-by)"
)

DUPLICATE_CONFLICT = _code("duplicate.conflict", "another sample has the same image with another text")

# JSONL and CSV manifests.
MANIFEST_JSON_INVALID = _code("manifest.json_invalid", "a JSONL line, or a CSV metadata cell, is not valid JSON")
MANIFEST_NOT_OBJECT = _code("manifest.not_object", "a JSONL line is not a JSON object")
MANIFEST_KEY_REPEATED = _code("manifest.key_repeated", "a JSON object names one key twice")
MANIFEST_NUMBER_TOO_LONG = _code("manifest.number_too_long", "a JSON number has more digits than Python reads")
MANIFEST_UNKNOWN_FIELD = _code("manifest.unknown_field", "a record has a field that is not a sample's")
MANIFEST_CELL_COUNT = _code("manifest.cell_count", "a CSV row has another number of cells than the header has columns")

# Line folders (gt-folder).
LINE_FILE_NAME_NOT_UTF8 = _code("line.file_name_not_utf8", "a line's file name is not UTF-8")
LINE_NO_TEXT = _code("line.no_text", "a line image has no .gt.txt beside it")
LINE_NO_IMAGE = _code("line.no_image", "a .gt.txt has no line image beside it")
LINE_SEVERAL_LINES = _code("line.several_lines", "a .gt.txt holds several lines of text")
LINE_TEXT_UNREADABLE = _code("line.text_unreadable", "a .gt.txt cannot be read (not UTF-8, permissions)")
LINE_METADATA_INVALID = _code(
    "line.metadata_invalid", "a line's .yml, .yaml or .json cannot be read, does not parse, or holds no mapping"
)

# PAGE and ALTO files, and the page images that lines are cut from (Label Studio's too).
PAGE_UNREADABLE = _code(
    "page.unreadable",
    "a PAGE or ALTO file cannot be read, is not well-formed XML, or is not of the kind it was read as",
)
PAGE_UNIT_UNSUPPORTED = _code("page.unit_unsupported", "an ALTO file's coordinates are not in pixels")
PAGE_IMAGE_NOT_FOUND = _code(
    "page.image_not_found", "the page image was not found (or is only a URL, which is never downloaded)"
)
PAGE_IMAGE_AMBIGUOUS = _code("page.image_ambiguous", "several files under the images folder have the page image's name")
PAGE_IMAGE_UNREADABLE = _code(
    "page.image_unreadable", "the page image cannot be read (not a regular file, damaged, not an image)"
)
PAGE_IMAGE_MULTI_FRAME = _code("page.image_multi_frame", "the page image holds several frames")
PAGE_SIZE_MISMATCH = _code("page.size_mismatch", "the page image's size is not the size the file declares")
CROP_NO_OUTLINE = _code("crop.no_outline", "a line's outline has fewer than two points")
CROP_TOO_SMALL = _code("crop.too_small", "a line's crop, clipped to its page, is smaller than 4×4 pixels")

# Label Studio exports.
LABEL_STUDIO_NOT_EXPORT = _code(
    "label_studio.not_export",
    "a Label Studio export is not valid JSON or not a list of tasks, or an item of it is no task",
)
REGION_NO_SHAPE = _code("region.no_shape", "a transcription is tied to no region")
REGION_SHAPE_UNSUPPORTED = _code("region.shape_unsupported", "a region is neither a rectangle nor a polygon")
REGION_NO_TEXT = _code("region.no_text", "a region has no transcription")
REGION_COORDINATES_INVALID = _code("region.coordinates_invalid", "a region's coordinates are not numbers")
