"""Line folders for the classic line recognisers: per split, ``<name>.png`` beside ``<name>.gt.txt``
and ``<name>.json``, as tesstrain, kraken (``ketos train -f path``) and Calamari read them."""

from __future__ import annotations

import hashlib
import json

from ..images import decoded_png_bytes
from ..names import file_stem
from ..privacy import PNG_SIGNATURE, without_private_metadata
from ..sources.gt_folder import LINE_TEXT_SUFFIX
from .generic import CanonicalRowsAdapter, manifest_extras


class LineGtAdapter(CanonicalRowsAdapter):
    name = "line_gt"
    folder = "line-gt"
    line_folder = True

    def project(self, batch, options):
        images = [
            {"bytes": metadata_free_png(cell["bytes"]), "path": self.image_file_name(sample_id, cell["path"])}
            for cell, sample_id in zip(batch["image"], batch["id"], strict=True)
        ]
        return {column: images if column == "image" else batch[column] for column in self.features}

    def image_file_name(self, sample_id, canonical_name):
        return line_stem(sample_id) + ".png"

    def line_files(self, row):
        # One line of UTF-8 text ending in a newline, as tesstrain's and ketos's own line
        # extraction write it (each reader strips the newline again); the metadata without any
        # source path, in the input manifest's field names.
        metadata = {"id": row["id"], **manifest_extras(row)}
        return {
            ".png": row["image"]["bytes"],
            LINE_TEXT_SUFFIX: (row["ground_truth"] + "\n").encode("utf-8"),
            ".json": (json.dumps(metadata, ensure_ascii=False) + "\n").encode("utf-8"),
        }


def metadata_free_png(data: bytes) -> bytes:
    """The validated image ``data`` as a PNG without metadata, losslessly (what all three tools
    read): a PNG as the privacy step leaves it (its own bytes when it holds no metadata, as
    exported images do unless ``keep_image_metadata``), any other image encoded from its pixels."""
    cleaned = without_private_metadata(data)
    return cleaned if cleaned.startswith(PNG_SIGNATURE) else decoded_png_bytes(cleaned)


def line_stem(sample_id: str) -> str:
    """A line's file name stem: the sample id's safe file name (``file_stem``), without dots,
    since kraken takes everything after a line image's first dot for its suffix (and so does
    Calamari); a stem that had dots gets a digest of the exact id, so two ids never share one."""
    stem = file_stem(sample_id)
    if "." not in stem:
        return stem
    digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{stem.replace('.', '_')}-{digest}"
