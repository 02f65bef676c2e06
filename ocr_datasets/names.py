"""Safe names: sample and batch ids become file and folder names that stay inside the batch."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .errors import OptionError

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
# Names Windows refuses whatever the suffix; exported folders are often copied there.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def file_stem(sample_id: str) -> str:
    """A file name stem for a sample id: the id itself when it is plain, else a readable slug
    plus a digest of the exact id, so two different ids never share a file."""
    if _PLAIN_NAME.fullmatch(sample_id) and not _is_reserved(sample_id) and not sample_id.endswith("."):
        return sample_id
    ascii_id = unicodedata.normalize("NFKD", sample_id).encode("ascii", "ignore").decode()
    slug = _UNSAFE_CHARACTERS.sub("_", ascii_id).strip("._-")[:60] or "sample"
    if _is_reserved(slug):
        slug = f"_{slug}"
    digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}-{digest}"


def check_batch_id(batch_id: str) -> str:
    """Batch ids name folders, so only plain names are accepted, with an error saying which."""
    if (
        not isinstance(batch_id, str)
        or not _PLAIN_NAME.fullmatch(batch_id)
        or _is_reserved(batch_id)
        or batch_id.endswith(".")
    ):
        raise OptionError(
            f"batch id {batch_id!r} is not a safe folder name: use 1 to 100 characters from A-Z, a-z, 0-9, "
            "'.', '_' and '-', starting with a letter or digit (for example 'fraktur-2026-11')"
        )
    return batch_id


def _is_reserved(name: str) -> bool:
    return name.split(".")[0].lower() in _RESERVED
