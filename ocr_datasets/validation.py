"""Validation before anything is written: every sample is exported, or rejected with its reason."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import unicodedata
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field

from datasets.utils.tqdm import tqdm
from PIL import Image, UnidentifiedImageError

from .images import expected_format
from .packed import BLOCK_SIZE, PackedSamples
from .privacy import holds_private_metadata
from .samples import SampleError, TrainingSample
from .workers import worker_count

NORMALIZATION_FORMS = ("NFC", "NFD", "NFKC", "none")
# Smaller than this, an image holds no legible text: a mis-crop or a placeholder.
MIN_IMAGE_SIDE = 4


@dataclass(frozen=True, slots=True)
class CheckedSample:
    """A sample that passed validation, its texts normalised, with what validation learnt of its
    image (so the export reads the image's bytes again but need not parse them again)."""

    sample: TrainingSample
    width: int
    height: int
    image_sha256: str
    image_format: str
    holds_private_metadata: bool


@dataclass
class ValidationReport:
    """What validation made of the input: ``input_count = len(accepted) + len(rejected) + len(duplicates)``."""

    accepted: PackedSamples[CheckedSample] = field(default_factory=PackedSamples)
    rejected: list[SampleError] = field(default_factory=list)
    # (id of the dropped sample, id of the identical sample that is exported)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    input_count: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {"input": self.input_count, "exported": len(self.accepted), "rejected": len(self.rejected), "duplicates": len(self.duplicates)}


class ValidationError(ValueError):
    """Raised in strict mode: one report naming every problem by sample, with its fix."""

    def __init__(self, report: ValidationReport):
        self.report = report
        lines = [f"{len(report.rejected)} of {report.input_count} samples are not valid; nothing was written:"]
        lines += [f"  - {problem}" for problem in report.rejected]
        lines.append("Fix them, or export the valid samples and list these in rejected.jsonl with skip_invalid=True (--skip-invalid).")
        super().__init__("\n".join(lines))


def normalize_text(text: str, form: str) -> str:
    """Unicode normalisation (``form``: NFC, NFD, NFKC or none), then whitespace trimmed and runs collapsed to one space."""
    if form != "none":
        text = unicodedata.normalize(form, text)
    return " ".join(text.split())


def check_normalization(form: str) -> str:
    if form not in NORMALIZATION_FORMS:
        raise ValueError(f"unknown normalisation {form!r}: choose NFC (default), NFD, none, or NFKC by name")
    if form == "NFKC":
        warnings.warn("NFKC folds compatibility characters: long s (ſ) becomes s and ligatures split; NFC keeps them", UserWarning, stacklevel=3)
    return form


def validate(
    items: Iterable[TrainingSample | SampleError],
    *,
    normalize: str = "NFC",
    keep_duplicates: bool = False,
    group_by: str | None = None,
    num_proc: int | None = None,
) -> ValidationReport:
    """Check every sample (see the README's validation table) and de-duplicate.

    ``items`` may hold ``SampleError`` objects for records a source could not read; they are
    rejected like any other problem. Identical image bytes with identical text are exported once
    (unless ``keep_duplicates``); the same image with different texts is a conflict, and every
    sample of it is rejected, since picking one would be a silent guess. Images are decoded in
    ``num_proc`` processes (``None``: one per core), at most one per 500 images, since decoding
    is most of validation's time.

    ``items`` is read a window at a time and the accepted samples are held packed
    (``PackedSamples``), so a source of a million samples is never in memory at once.
    """
    report = ValidationReport()
    seen_ids: set[str] = set()
    checked: PackedSamples[CheckedSample] = PackedSamples()
    images = _SharedImages()
    total = len(items) if isinstance(items, Sized) else None
    pending = iter(items)
    windows = iter(lambda: list(itertools.islice(pending, _WINDOW)), [])
    first_window = next(windows, [])
    # The pool is sized by the first window, and started before the progress bar's thread.
    first_count = sum(not isinstance(item, SampleError) for item in first_window)
    with _image_checker(num_proc, first_count) as check_images, tqdm(total=total, desc="Validating samples", unit=" samples") as progress:
        for window in itertools.chain([first_window], windows):
            results = iter(check_images([item for item in window if not isinstance(item, SampleError)]))
            for item in window:
                report.input_count += 1
                result = item if isinstance(item, SampleError) else _check_sample(item, normalize, group_by, seen_ids, next(results))
                if isinstance(result, SampleError):
                    report.rejected.append(result)
                else:
                    images.add(len(checked), result)
                    checked.append(result)
            progress.update(len(window))
    seen_ids.clear()
    images.sort_out(checked, report, keep_duplicates)
    return report


# Samples read and checked together: a few tables' worth, so every process stays busy.
_WINDOW = 4 * BLOCK_SIZE
# Below this many images a pool costs more than it saves.
_MIN_IMAGES_PER_PROCESS = 500


@contextmanager
def _image_checker(num_proc: int | None, sample_count: int) -> Iterator[Callable[[list[TrainingSample]], Iterable]]:
    """A function giving the results of ``_checked_image`` for a window of samples, in order,
    from a pool of processes if ``sample_count`` samples pay for one."""
    processes = worker_count(num_proc, sample_count // _MIN_IMAGES_PER_PROCESS)
    if processes < 2:
        yield lambda samples: map(_checked_image, samples)
        return
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        yield lambda samples: pool.imap(_checked_image, samples, chunksize=64)


class _SharedImages:
    """Which checked samples share an image, remembered compactly while validation streams: per
    sample the first sample of its image and a digest of its text. The samples of an image
    either all have the text of its first sample, or the image is in conflict."""

    def __init__(self):
        # Keyed by the first 16 bytes of the image's sha256: a third of the memory of its hex text.
        self._first_of_image: dict[bytes, int] = {}
        self._first: array = array("q")
        self._text_digests: array = array("Q")
        self._conflicted: set[int] = set()

    def add(self, index: int, item: CheckedSample) -> None:
        first = self._first_of_image.setdefault(bytes.fromhex(item.image_sha256[:32]), index)
        self._first.append(first)
        self._text_digests.append(_text_digest(item.sample.ground_truth))
        if self._text_digests[index] != self._text_digests[first]:
            self._conflicted.add(first)

    def sort_out(self, checked: PackedSamples[CheckedSample], report: ValidationReport, keep_duplicates: bool) -> None:
        """Fill ``report.accepted`` in input order, rejecting conflicts and dropping duplicates."""
        self._first_of_image.clear()
        # The first samples of images that other samples share.
        shared = {first for index, first in enumerate(self._first) if first != index}
        if not self._conflicted and (keep_duplicates or not shared):
            report.accepted = checked
            return
        in_conflict: dict[int, list[CheckedSample]] = {}
        if self._conflicted:
            for index, item in enumerate(checked):
                if self._first[index] in self._conflicted:
                    in_conflict.setdefault(self._first[index], []).append(item)
        kept_ids: dict[int, str] = {}
        for index, item in enumerate(checked):
            first = self._first[index]
            if first in in_conflict:
                others = [other for other in in_conflict[first] if other.sample.id != item.sample.id]
                described = ", ".join(f"{other.sample.id!r} ({other.sample.ground_truth!r})" for other in others)
                report.rejected.append(
                    SampleError(
                        item.sample.id,
                        f"conflict: the same image as {described} with another text ({item.sample.ground_truth!r})",
                        "decide which transcription is right and correct or remove the others",
                        location=item.sample.source,
                    )
                )
            elif first != index and not keep_duplicates:
                report.duplicates.append((item.sample.id, kept_ids[first]))
            else:
                if index in shared:
                    kept_ids[index] = item.sample.id
                report.accepted.append(item)


def _text_digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def _check_sample(
    sample: TrainingSample, form: str, group_by: str | None, seen_ids: set[str], image: tuple
) -> CheckedSample | SampleError:
    problems: list[tuple[str, str]] = []
    sample_id = sample.id if isinstance(sample.id, str) else str(sample.id)
    if not sample_id.strip():
        problems.append(("id is empty", "give every sample a non-empty id"))
    elif sample_id in seen_ids:
        problems.append(("id is used by an earlier sample", "give every sample its own id"))
    seen_ids.add(sample_id)

    ground_truth, problem = _checked_text(sample.ground_truth, form, "ground_truth")
    if problem:
        problems.append(problem)
    elif not ground_truth:
        problems.append(("ground_truth is empty (or only whitespace)", "transcribe the line, or leave the sample out"))
    ocr_text, problem = _checked_text(sample.ocr_text, form, "ocr_text") if sample.ocr_text is not None else (None, None)
    if problem:
        problems.append(problem)
    confidence, problem = _checked_confidence(sample.ocr_confidence)
    if problem:
        problems.append(problem)
    problem = _metadata_problem(sample.metadata, group_by)
    if problem:
        problems.append(problem)

    image, problem = image
    if problem:
        problems.append(problem)
    if problems:
        return SampleError(
            sample_id, "; ".join(problem for problem, _ in problems), "; ".join(fix for _, fix in problems), location=sample.source
        )
    checked = {"id": sample_id, "ground_truth": ground_truth, "ocr_text": ocr_text, "ocr_confidence": confidence}
    # Copied only where validation changed something: most samples pass unchanged.
    changed = {name: value for name, value in checked.items() if type(value) is not type(getattr(sample, name)) or value != getattr(sample, name)}
    return CheckedSample(dataclasses.replace(sample, **changed) if changed else sample, *image)


def _checked_text(text, form: str, name: str) -> tuple[str | None, tuple[str, str] | None]:
    if text is None:
        return None, (f"{name} is missing", f"add {name} to the record")
    if not isinstance(text, str):
        return None, (f"{name} is not text ({type(text).__name__})", f"give {name} as a string")
    controls = sorted({f"U+{ord(char):04X}" for char in text if unicodedata.category(char) == "Cc" and not char.isspace()})
    if controls:
        return None, (f"{name} contains control characters ({', '.join(controls)})", f"remove them from {name}")
    return normalize_text(text, form), None


def _checked_confidence(value) -> tuple[float | None, tuple[str, str] | None]:
    if value is None:
        return None, None
    fix = "give a number between 0 and 1, or leave ocr_confidence out"
    if isinstance(value, bool):
        return None, (f"ocr_confidence {value!r} is not a number", fix)
    try:
        confidence = float(value)
    except (TypeError, ValueError):
        return None, (f"ocr_confidence {value!r} is not a number", fix)
    if math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        return None, (f"ocr_confidence {value!r} is outside [0, 1]", fix)
    return confidence, None


def _metadata_problem(metadata, group_by: str | None) -> tuple[str, str] | None:
    if not isinstance(metadata, dict):
        return (f"metadata is not a JSON object ({type(metadata).__name__})", 'give metadata as an object such as {"page": 3}')
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as error:
        return (f"metadata cannot be stored as JSON ({error})", "use only strings, numbers, booleans, null, lists and objects")
    if group_by is not None and metadata.get(group_by) is None:
        return (f"metadata has no {group_by!r} to group the split by", f"add {group_by!r} to its metadata, or group by another key")
    return None


def _open_image(data: bytes, named: str | None) -> Image.Image:
    # Pillow tries its formats in turn, and three that accept any bytes (IM, IMT, IPTC) come
    # before TIFF: trying the format the file's name promises first saves ~10 % of a TIFF
    # line's validation. Any other content still opens, and is then reported as misnamed.
    if named:
        try:
            return Image.open(io.BytesIO(data), formats=[named])
        except UnidentifiedImageError:
            pass
    return Image.open(io.BytesIO(data))


def _checked_image(sample: TrainingSample) -> tuple[tuple | None, tuple[str, str] | None]:
    """((width, height, sha256, format, holds private metadata), None) for a fully decodable
    image of a sane size, else (None, (problem, fix))."""
    try:
        data = sample.read_image_bytes()
    except SampleError as error:
        return None, (error.problem, error.fix)
    replace = "replace the image with a valid one"
    if not data:
        return None, ("image file is empty (0 bytes)", replace)
    named = expected_format(sample.image_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open_image(data, named) as image:
                image_format, (width, height) = image.format, image.size
                private = holds_private_metadata(data, image)
                image.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        return None, (f"image is a decompression bomb: {error}", "crop or downscale the image")
    except UnidentifiedImageError:
        return None, ("image file is not an image Pillow can read", replace)
    except (OSError, SyntaxError, ValueError) as error:
        return None, (f"image is damaged or truncated ({error})", replace)
    if named and named != image_format:
        return None, (f"image file is named as {named} but holds {image_format}", "rename the file to its real format, or convert it")
    if min(width, height) < MIN_IMAGE_SIDE:
        return None, (f"image is {width}x{height} pixels, too small to hold a line of text", f"crop at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels")
    return (width, height, hashlib.sha256(data).hexdigest(), image_format, private), None
