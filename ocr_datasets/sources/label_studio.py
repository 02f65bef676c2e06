"""Label Studio JSON exports (OCR template): every transcribed region becomes a line cut from its task image."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image

from ..images import PAGE_IMAGE_SUFFIXES, reading_problem
from ..problems import (
    LABEL_STUDIO_NOT_EXPORT,
    PAGE_IMAGE_AMBIGUOUS,
    PAGE_IMAGE_NOT_FOUND,
    PAGE_IMAGE_UNREADABLE,
    REGION_COORDINATES_INVALID,
    REGION_NO_SHAPE,
    REGION_NO_TEXT,
    REGION_SHAPE_UNSUPPORTED,
    Problem,
)
from ..samples import SampleError, TrainingSample
from .base import Source
from .crop import CropOptions, CroppedSample, Point
from .notices import ReadSummary
from .page_images import displayed_size, existing_file
from .sniff import json_start

LABEL_TYPES = ("rectanglelabels", "polygonlabels", "labels")
# Result types that only describe a region or the task; any other type without a box or polygon
# is a shape this source cannot cut (ellipse, keypoint, brush) and is reported.
DESCRIPTION_TYPES = {
    "textarea",
    "choices",
    "rating",
    "number",
    "datetime",
    "taxonomy",
    "ranker",
    "pairwise",
    *LABEL_TYPES,
}
# The data fields the OCR templates name their image by; other exports are read when one field holds an image.
IMAGE_FIELDS = ("image", "ocr")
# Label Studio stores an upload as /data/upload/<project>/<8 hex digits>-<original name>.
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(?P<original>.+)$")
NO_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass
class _Region:
    id: str
    geometry: dict[str, Any] | None = None
    types: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


class LabelStudioSource(Source):
    """One ``CroppedSample`` per transcribed region of a Label Studio JSON export (or of every
    ``.json`` file under a folder), cut lazily from its task's image.

    Per task one annotation is used: the one marked as ground truth, else the latest by
    ``updated_at`` (or ``created_at``; among equal times, the last listed). Cancelled (skipped)
    annotations, drafts and predictions are ignored; a task that gives no line (no annotation,
    only a draft, or no region) is named in the ``SourceNotice`` said when each export has been
    read, with the counts of tasks and lines read. A region is a
    ``rectangle`` (``x``, ``y``, ``width``, ``height`` in percent of the image, turned by
    ``rotation`` degrees clockwise about its top-left corner) or a ``polygon`` (``points`` in
    percent), with a ``textarea`` result of the same id holding its text (several entries are
    joined by line breaks). Ids are ``<task id>-<region id>``. Percentages are taken of the image
    found, upright as its EXIF orientation says: that is ``original_width`` x ``original_height``
    for the uploaded file, and a rescaled copy of it is cut right too.

    Images are never downloaded: each is looked for under ``image_dir`` (recursively) by its file
    name, for uploads also without the 8-hex-digit prefix Label Studio adds, and when no name matches
    exactly, the one file whose name differs only in case (named in the notice); plain paths are
    also tried as they stand (relative to the export). A region without text, a task whose image is not
    found or is only a URL, and shapes other than boxes and polygons are ``SampleError``s (one per
    region) in the region's place.
    """

    kind = "label-studio"
    unit = "Label Studio export"
    suffixes = (".json",)

    def sniff(self, path: Path, *, in_folder: bool) -> bool:
        # In a folder only a list of tasks counts: other JSON there (settings, dataset_info.json)
        # is no source. A .json given on its own that is no JSONL (asked first) is taken for an
        # export, so that this reader says what is wrong with it if it is none.
        return not in_folder or json_start(path) == "list"

    def read(self, path: Path, *, image_dir: Path | None, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
        exports = sorted(file for file in path.rglob("*.json") if file.is_file()) if path.is_dir() else [path]
        finder = _ImageFinder(image_dir)
        for export in exports:
            yield from _export_items(export, finder, crop)


def _export_items(export: Path, finder: _ImageFinder, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
    summary = ReadSummary(export, "task")
    for item in _tasks_items(export, finder, crop, summary):
        summary.lines += 1
        yield item
    summary.warn()


def _tasks_items(
    export: Path, finder: _ImageFinder, crop: CropOptions, summary: ReadSummary
) -> Iterator[TrainingSample | SampleError]:
    fix = "export the project from Label Studio as JSON (not JSON-MIN or CSV)"
    try:
        tasks = json.loads(export.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        yield SampleError(
            None,
            f"not valid JSON ({error.msg} at line {error.lineno})",
            fix,
            code=LABEL_STUDIO_NOT_EXPORT,
            location=export.name,
        )
        return
    if not isinstance(tasks, list):
        yield SampleError(
            None,
            f"a Label Studio export is a list of tasks, not a {type(tasks).__name__}",
            fix,
            code=LABEL_STUDIO_NOT_EXPORT,
            location=export.name,
        )
        return
    for number, task in enumerate(tasks, start=1):
        summary.units += 1
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict) or task.get("id") is None:
            yield SampleError(
                None,
                "not a Label Studio task (no 'id' and 'data')",
                fix,
                code=LABEL_STUDIO_NOT_EXPORT,
                location=f"{export.name}: task #{number}",
            )
            continue
        gave = False
        for item in _task_items(task, f"{export.name}: task {task['id']}", export.parent, finder, crop, summary):
            gave = True
            yield item
        if not gave:
            summary.empty.append(f"task {task['id']} ({_why_no_lines(task)})")


def _why_no_lines(task: dict) -> str:
    annotations = [annotation for annotation in task.get("annotations") or [] if isinstance(annotation, dict)]
    if not annotations:
        drafts = task.get("drafts") or []
        if drafts:
            return (
                "only a draft" if len(drafts) == 1 else f"only {len(drafts)} drafts"
            ) + ": submit it in Label Studio"
        return "no annotation"
    if all(annotation.get("was_cancelled") for annotation in annotations):
        return "its annotation was skipped"
    return "no region in its annotation"


def _task_items(
    task: dict, location: str, export_dir: Path, finder: _ImageFinder, crop: CropOptions, summary: ReadSummary
) -> Iterator[TrainingSample | SampleError]:
    annotation = _chosen_annotation(task.get("annotations") or [])
    if annotation is None:
        return
    reference = _image_reference(task["data"])
    page: tuple[Path, tuple[int, int]] | Problem | None = None
    for region in _regions(annotation.get("result") or []):
        sample_id = f"{task['id']}-{region.id}"
        if region.geometry is None:
            if region.texts:
                fix = "draw its region (a TextArea with perRegion) or delete the text"
                yield SampleError(
                    sample_id, "a transcription tied to no region", fix, code=REGION_NO_SHAPE, location=location
                )
            elif not set(region.types) <= DESCRIPTION_TYPES:
                shapes = "/".join(sorted(set(region.types) - DESCRIPTION_TYPES))
                problem = f"a region of type {shapes} cannot be cut as a line"
                yield SampleError(
                    sample_id,
                    problem,
                    "draw the line as a rectangle or polygon",
                    code=REGION_SHAPE_UNSUPPORTED,
                    location=location,
                )
            continue
        if not "".join(region.texts).strip():
            problem = f"region has no transcription (task {task['id']}, region {region.id})"
            yield SampleError(
                sample_id,
                problem,
                "transcribe it in Label Studio, or delete the region",
                code=REGION_NO_TEXT,
                location=location,
            )
            continue
        if page is None:
            page = _page(reference, export_dir, finder)
            if not isinstance(page, Problem) and page[0] in finder.found_by_case:
                assert reference is not None  # _page found the image the task names
                summary.notes.append(
                    f"task {task['id']} names {_reference_name(reference)!r}; "
                    f"took {page[0].name} (the names differ in case)"
                )
        if isinstance(page, Problem):
            yield SampleError.from_problems(sample_id, [page], location=location)
            continue
        image_path, size = page
        assert reference is not None  # _page found the image the task names
        try:
            polygon = _outline(region.geometry, *size)
        except (KeyError, TypeError, ValueError):
            yield SampleError(
                sample_id,
                "the region's coordinates are not numbers",
                "redraw the region in Label Studio",
                code=REGION_COORDINATES_INVALID,
                location=location,
            )
            continue
        metadata = {
            "task_id": task["id"],
            "annotation_id": annotation.get("id"),
            "region_id": region.id,
            "image": _reference_name(reference),
            "polygon": [list(point) for point in polygon],
        }
        if region.labels:
            metadata["labels"] = region.labels
        yield CroppedSample(
            id=sample_id,
            image_path=f"{sample_id}.png",
            ground_truth="\n".join(region.texts),
            metadata=metadata,
            page_image=image_path,
            polygon=polygon,
            crop=crop,
            source=location,
        )


def _chosen_annotation(annotations: list) -> dict | None:
    """The annotation marked as ground truth, else the latest; never a cancelled (skipped) one."""
    kept = [
        (number, annotation)
        for number, annotation in enumerate(annotations)
        if isinstance(annotation, dict) and not annotation.get("was_cancelled")
    ]
    if not kept:
        return None
    return max(kept, key=lambda pair: (bool(pair[1].get("ground_truth")), _timestamp(pair[1]), pair[0]))[1]


def _timestamp(annotation: dict) -> datetime:
    for key in ("updated_at", "created_at"):
        try:
            moment = datetime.fromisoformat(annotation[key])
        except (KeyError, TypeError, ValueError):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return NO_TIME


def _regions(result: list) -> list[_Region]:
    """The result items grouped by id: a region's shape, labels and text share one id."""
    regions: dict[str, _Region] = {}
    for item in result:
        # Relations carry no id; they link regions and are no region themselves.
        if not isinstance(item, dict) or item.get("id") is None or not isinstance(item.get("value"), dict):
            continue
        region = regions.setdefault(str(item["id"]), _Region(str(item["id"])))
        kind, value = str(item.get("type")), item["value"]
        region.types.append(kind)
        if kind == "textarea":
            text = value.get("text") or []
            region.texts += [text] if isinstance(text, str) else [str(entry) for entry in text]
        if kind in LABEL_TYPES:
            region.labels += [label for label in value.get(kind) or [] if label not in region.labels]
        # The textarea of a region repeats its geometry, so whichever item comes first gives it.
        if region.geometry is None and (
            "points" in value or all(key in value for key in ("x", "y", "width", "height"))
        ):
            region.geometry = value
    return list(regions.values())


def _outline(geometry: dict[str, Any], width: int, height: int) -> tuple[Point, ...]:
    """The region's corners in pixels of a ``width`` x ``height`` page, rounded to 1/100 pixel."""
    if "points" in geometry:
        points = [(float(x) * width / 100, float(y) * height / 100) for x, y in geometry["points"]]
    else:
        left, top = float(geometry["x"]) * width / 100, float(geometry["y"]) * height / 100
        box_width, box_height = float(geometry["width"]) * width / 100, float(geometry["height"]) * height / 100
        # Clockwise on screen is a positive angle here, since the y axis points down.
        angle = math.radians(float(geometry.get("rotation") or 0))
        cos, sin = math.cos(angle), math.sin(angle)
        corners = ((0, 0), (box_width, 0), (box_width, box_height), (0, box_height))
        points = [(left + dx * cos - dy * sin, top + dx * sin + dy * cos) for dx, dy in corners]
    # + 0.0 turns the -0.0 of a rounded rotation into 0.0.
    return tuple((round(x, 2) + 0.0, round(y, 2) + 0.0) for x, y in points)


def _image_reference(data: dict) -> str | None:
    for key in IMAGE_FIELDS:
        if isinstance(data.get(key), str):
            return data[key]
    images = [value for value in data.values() if isinstance(value, str) and _looks_like_image(value)]
    return images[0] if len(images) == 1 else None


def _looks_like_image(value: str) -> bool:
    path = urlsplit(value).path
    return "/data/upload/" in path or "/data/local-files" in path or path.lower().endswith(PAGE_IMAGE_SUFFIXES)


def _reference_name(reference: str) -> str:
    """The image's file name as the task names it, without folders, host or query."""
    parts = urlsplit(reference)
    local = parse_qs(parts.query).get("d") if "/data/local-files" in parts.path else None
    return Path(unquote(local[0] if local else parts.path)).name


def _page(reference: str | None, export_dir: Path, finder: _ImageFinder) -> tuple[Path, tuple[int, int]] | Problem:
    """The task's image file and its size as displayed (EXIF orientation applied), or why not."""
    if reference is None:
        return Problem(
            PAGE_IMAGE_NOT_FOUND,
            "the task names no image (looked for data.image, data.ocr or one image path)",
            "export tasks whose data holds the image",
        )
    found = finder.find(reference, export_dir)
    if isinstance(found, Problem):
        return found
    try:
        # Percentages are of the image as Label Studio showed it: turned upright, as the crop will be.
        size, _ = displayed_size(found)
    except (OSError, Image.DecompressionBombError) as error:
        return Problem(
            PAGE_IMAGE_UNREADABLE,
            f"image {found.name} cannot be read ({reading_problem(error)})",
            "replace the image file",
        )
    return found, size


class _ImageFinder:
    """Finds task images on disk by name under one folder, indexed on first use."""

    def __init__(self, image_dir: Path | None):
        self.image_dir = image_dir
        self._by_name: dict[str, list[Path]] | None = None
        self._by_case_folded_name: dict[str, list[Path]] = {}
        # Files found only by ignoring case, so the notice can name them.
        self.found_by_case: set[Path] = set()

    def find(self, reference: str, export_dir: Path) -> Path | Problem:
        parts = urlsplit(reference)
        remote = bool(parts.scheme and parts.netloc)
        local_files = "/data/local-files" in parts.path
        name = _reference_name(reference)
        direct = []
        if local_files and self.image_dir is not None:
            direct.append(self.image_dir / unquote(parse_qs(parts.query).get("d", [""])[0]))
        elif not remote and not local_files and "/data/upload/" not in parts.path:
            direct.append(export_dir / unquote(parts.path))  # an absolute path stays absolute
        for candidate in direct:
            found = existing_file(candidate)
            if found is not None:
                if found != candidate:
                    self.found_by_case.add(found)
                return found
        names = [name]
        upload = UPLOAD_PREFIX.match(name) if "/data/upload/" in parts.path else None
        if upload:
            names.append(upload["original"])
        for ignoring_case in (False, True):
            for candidate_name in names:
                matches = self._files_named(candidate_name, ignoring_case)
                if len(matches) == 1:
                    if ignoring_case:
                        self.found_by_case.add(matches[0])
                    return matches[0]
                if len(matches) > 1:
                    return Problem(
                        PAGE_IMAGE_AMBIGUOUS,
                        f"{len(matches)} files named {candidate_name} under the image folder"
                        + (" (ignoring case)" if ignoring_case else ""),
                        "keep one, or pass the folder holding the right one with --images DIR",
                    )
        looked_for = " or ".join(names)
        if remote:
            # The query is left out: presigned storage URLs carry credentials in it.
            shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
            return Problem(
                PAGE_IMAGE_NOT_FOUND,
                f"the image is a URL ({shown}) and is never downloaded; {looked_for} is not in the image folder",
                "download the images into a folder and pass it with --images DIR",
            )
        where = "in the image folder" if self.image_dir is not None else "(no image folder given)"
        return Problem(
            PAGE_IMAGE_NOT_FOUND,
            f"image {looked_for} not found {where}",
            "pass the folder holding the task images with --images DIR",
        )

    def _files_named(self, name: str, ignoring_case: bool = False) -> list[Path]:
        if self.image_dir is None:
            return []
        if self._by_name is None:
            self._by_name = {}
            for folder, subfolders, names in os.walk(self.image_dir):
                subfolders.sort()
                for file_name in sorted(names):
                    self._by_name.setdefault(file_name, []).append(Path(folder, file_name))
                    self._by_case_folded_name.setdefault(file_name.casefold(), []).append(Path(folder, file_name))
        return self._by_case_folded_name.get(name.casefold(), []) if ignoring_case else self._by_name.get(name, [])
