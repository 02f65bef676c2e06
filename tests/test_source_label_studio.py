"""label-studio: regions of a drawn page are cut where they were drawn, judged by their pixels."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageStat
from support.data import loaded_texts

from ocr_datasets import SampleError, export_all, read_samples
from ocr_datasets.sources import CroppedSample

PAGE_SIZE = (400, 200)
RED, BLUE, GREEN, YELLOW, BLACK = (220, 0, 0), (0, 0, 220), (0, 160, 0), (230, 200, 0), (0, 0, 0)
UPLOAD = "/data/upload/7/1a2b3c4d-page.png"
SECOND_UPLOAD = "/data/upload/7/9f8e7d6c-second.png"
SIGNED_URL = "https://storage.example.org/scans/page-3.png?X-Amz-Signature=secret"


@dataclass(frozen=True)
class Shape:
    """A filled shape drawn on a page, and the pixel box its crop must have."""

    colour: tuple[int, int, int]
    outline: tuple[tuple[float, float], ...]

    @property
    def box_size(self) -> tuple[int, int]:
        """Width and height of the whole pixels the shape touches."""
        xs, ys = [x for x, _ in self.outline], [y for _, y in self.outline]
        return math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))


# Page one: a box, a box turned 90° clockwise about its top-left corner (200, 20), whose 60x30
# sides now run down and to the left, a triangle, and a black box nobody transcribed.
RED_BOX = Shape(RED, ((20, 20), (120, 20), (120, 60), (20, 60)))
TURNED_BLUE_BOX = Shape(BLUE, ((200, 20), (200, 80), (170, 80), (170, 20)))
GREEN_TRIANGLE = Shape(GREEN, ((240, 120), (380, 120), (310, 190)))
UNTRANSCRIBED_BOX = Shape(BLACK, ((20, 120), (100, 120), (100, 180), (20, 180)))
# Page two: a 60x60 square turned 45° about its top-left corner (100, 50): a diamond 60·√2 high and wide.
TILTED_SQUARE = Shape(YELLOW, ((100, 50), (142.43, 92.43), (100, 134.85), (57.57, 92.43)))


def draw_page(path: Path, shapes: list[Shape], size=PAGE_SIZE) -> Image.Image:
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    for shape in shapes:
        draw.polygon(shape.outline, fill=shape.colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path)
    return page


def percent(x: float, y: float, size=PAGE_SIZE) -> tuple[float, float]:
    return x / size[0] * 100, y / size[1] * 100


def rectangle(region_id: str, left, top, width, height, rotation=0, labels=None, size=PAGE_SIZE) -> dict:
    """A rectangle result as Label Studio exports it (percent of the page), with labels when given."""
    x, y = percent(left, top, size)
    value = {"x": x, "y": y, "width": width / size[0] * 100, "height": height / size[1] * 100, "rotation": rotation}
    kind = "rectangle" if labels is None else "rectanglelabels"
    if labels is not None:
        value["rectanglelabels"] = labels
    return {
        "id": region_id,
        "type": kind,
        "from_name": "bbox",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "value": value,
    }


def polygon(region_id: str, points, size=PAGE_SIZE) -> dict:
    value = {"points": [list(percent(x, y, size)) for x, y in points], "closed": True}
    return {
        "id": region_id,
        "type": "polygon",
        "from_name": "poly",
        "to_name": "image",
        "original_width": size[0],
        "original_height": size[1],
        "value": value,
    }


def transcribed(region: dict, *texts: str) -> list[dict]:
    """The region and its per-region textarea, which repeats the region's geometry as Label Studio does."""
    geometry = {
        key: value
        for key, value in region["value"].items()
        if key in ("x", "y", "width", "height", "rotation", "points")
    }
    textarea = {**region, "type": "textarea", "from_name": "transcription", "value": {**geometry, "text": list(texts)}}
    return [region, textarea]


def annotation(
    annotation_id: int,
    result: list[dict],
    updated_at="2024-01-01T10:00:00.000000Z",
    was_cancelled=False,
    ground_truth=False,
) -> dict:
    return {
        "id": annotation_id,
        "result": result,
        "was_cancelled": was_cancelled,
        "ground_truth": ground_truth,
        "created_at": updated_at,
        "updated_at": updated_at,
    }


def task(task_id: int, image: str, annotations: list[dict]) -> dict:
    return {"id": task_id, "data": {"image": image}, "annotations": annotations, "predictions": []}


def write_export(path: Path, tasks: list[dict]) -> Path:
    path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    return path


def first_page_task() -> dict:
    regions = [
        *transcribed(rectangle("plain", 20, 20, 100, 40, labels=["Zeile"]), "Rothe Zeile"),
        *transcribed(rectangle("turned", 200, 20, 60, 30, rotation=90), "Blaue Zeile"),
        *transcribed(polygon("triangle", GREEN_TRIANGLE.outline), "Grüne Zeile"),
        rectangle("untranscribed", 20, 120, 80, 60),
    ]
    return task(1, UPLOAD, [annotation(11, regions)])


def second_page_task() -> dict:
    def tilted(text):
        return transcribed(rectangle("tilted", 100, 50, 60, 60, rotation=45), text)

    # Listed newest, older, cancelled: neither the first nor the last is the one to use.
    return task(
        2,
        SECOND_UPLOAD,
        [
            annotation(21, tilted("Gelbe Zeile"), updated_at="2024-03-01T09:00:00.000000Z"),
            annotation(22, tilted("überholt"), updated_at="2024-01-01T09:00:00.000000Z"),
            annotation(23, tilted("verworfen"), updated_at="2024-05-01T09:00:00.000000Z", was_cancelled=True),
        ],
    )


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path]:
    """An export of three tasks and its image folder: the first upload under its stored name, the
    second under its original name in a subfolder, the third task's image only behind a URL."""
    images = tmp_path / "images"
    draw_page(images / "1a2b3c4d-page.png", [RED_BOX, TURNED_BLUE_BOX, GREEN_TRIANGLE, UNTRANSCRIBED_BOX])
    draw_page(images / "scans" / "second.png", [TILTED_SQUARE])
    url_task = task(3, SIGNED_URL, [annotation(31, transcribed(rectangle("far", 10, 10, 50, 20), "Ferne Zeile"))])
    export_file = write_export(tmp_path / "project-7.json", [first_page_task(), second_page_task(), url_task])
    return export_file, images


def read_project(project, **options) -> dict[str, CroppedSample | SampleError]:
    export_file, images = project
    items = read_samples(export_file, "label-studio", image_dir=images, errors="report", **options)
    return {item.sample_id if isinstance(item, SampleError) else item.id: item for item in items}


def crop_of(sample: CroppedSample) -> Image.Image:
    return Image.open(io.BytesIO(sample.read_image_bytes())).convert("RGB")


def centre(shape: Shape) -> tuple[float, float]:
    xs, ys = [x for x, _ in shape.outline], [y for _, y in shape.outline]
    return sum(xs) / len(xs), sum(ys) / len(ys)


CUT_REGIONS = {"1-plain": RED_BOX, "1-turned": TURNED_BLUE_BOX, "1-triangle": GREEN_TRIANGLE, "2-tilted": TILTED_SQUARE}


@pytest.mark.parametrize("sample_id", CUT_REGIONS)
def test_region_is_cut_where_it_was_drawn(project, sample_id):
    shape = CUT_REGIONS[sample_id]
    crop = crop_of(read_project(project)[sample_id])

    width, height = shape.box_size
    assert abs(crop.width - width) <= 1 and abs(crop.height - height) <= 1
    # The crop starts at the shape's bounding box, so the shape's centre sits at the same offset in it.
    x, y = centre(shape)
    left, top = min(x for x, _ in shape.outline), min(y for _, y in shape.outline)
    assert crop.getpixel((int(x - left), int(y - top))) == shape.colour


@pytest.mark.parametrize("sample_id", ["1-plain", "1-turned"])
def test_box_crop_holds_only_its_box(project, sample_id):
    assert ImageStat.Stat(crop_of(read_project(project)[sample_id])).mean == list(CUT_REGIONS[sample_id].colour)


def test_texts_ids_and_order(project):
    items = read_project(project)
    samples = {sample_id: item.ground_truth for sample_id, item in items.items() if not isinstance(item, SampleError)}
    assert samples == {
        "1-plain": "Rothe Zeile",
        "1-turned": "Blaue Zeile",
        "1-triangle": "Grüne Zeile",
        "2-tilted": "Gelbe Zeile",
    }
    assert list(items) == ["1-plain", "1-turned", "1-triangle", "1-untranscribed", "2-tilted", "3-far"]


def test_latest_uncancelled_annotation_is_used(project):
    sample = read_project(project)["2-tilted"]
    assert (sample.ground_truth, sample.metadata["annotation_id"]) == ("Gelbe Zeile", 21)


def test_annotation_marked_as_ground_truth_wins_over_a_later_one(tmp_path):
    draw_page(tmp_path / "images" / "1a2b3c4d-page.png", [RED_BOX])
    region = rectangle("plain", 20, 20, 100, 40)
    annotations = [
        annotation(1, transcribed(region, "geprüft"), updated_at="2024-01-01T09:00:00Z", ground_truth=True),
        annotation(2, transcribed(region, "später"), updated_at="2024-02-01T09:00:00Z"),
    ]
    export_file = write_export(tmp_path / "export.json", [task(1, UPLOAD, annotations)])

    [sample] = read_samples(export_file, "label-studio", image_dir=tmp_path / "images")

    assert sample.ground_truth == "geprüft"


def test_text_without_region_and_shapes_that_cannot_be_cut_are_reported(tmp_path):
    draw_page(tmp_path / "images" / "1a2b3c4d-page.png", [RED_BOX])
    page_text = {
        "id": "whole",
        "type": "textarea",
        "from_name": "notes",
        "to_name": "image",
        "value": {"text": ["Seite"]},
    }
    ellipse_value = {"x": 50, "y": 50, "radiusX": 10, "radiusY": 5, "rotation": 0}
    ellipse = {"id": "round", "type": "ellipse", "from_name": "shape", "to_name": "image", "value": ellipse_value}
    # A choice about the whole page is no region and no problem.
    page_choice = {
        "id": "quality",
        "type": "choices",
        "from_name": "quality",
        "to_name": "image",
        "value": {"choices": ["gut"]},
    }
    export_file = write_export(
        tmp_path / "export.json", [task(1, UPLOAD, [annotation(1, [page_text, ellipse, page_choice])])]
    )

    items = list(read_samples(export_file, "label-studio", image_dir=tmp_path / "images", errors="report"))

    assert [(item.sample_id, item.problem) for item in items] == [
        ("1-whole", "a transcription tied to no region"),
        ("1-round", "a region of type ellipse cannot be cut as a line"),
    ]


def test_folder_of_exports_reads_every_export(project, tmp_path):
    export_file, images = project
    folder = tmp_path / "exports-folder"
    (folder / "later").mkdir(parents=True)
    (folder / "project-7.json").write_text(export_file.read_text(encoding="utf-8"), encoding="utf-8")
    write_export(
        folder / "later" / "project-8.json",
        [task(9, UPLOAD, [annotation(91, transcribed(rectangle("again", 20, 20, 100, 40), "Wieder"))])],
    )

    items = list(read_samples(folder, "label-studio", image_dir=images, errors="report"))

    ids = [getattr(item, "id", None) or item.sample_id for item in items]
    assert sorted(ids) == sorted([*read_project(project), "9-again"])


def test_metadata_names_task_region_image_polygon_and_labels(project):
    items = read_project(project)
    assert items["1-plain"].metadata == {
        "task_id": 1,
        "annotation_id": 11,
        "region_id": "plain",
        "image": "1a2b3c4d-page.png",
        "polygon": [[20.0, 20.0], [120.0, 20.0], [120.0, 60.0], [20.0, 60.0]],
        "labels": ["Zeile"],
    }
    assert "labels" not in items["1-turned"].metadata
    assert items["1-turned"].metadata["polygon"] == [list(point) for point in TURNED_BLUE_BOX.outline]
    assert items["2-tilted"].metadata["image"] == "9f8e7d6c-second.png"


def test_region_without_text_is_reported_by_task_and_region(project):
    problem = read_project(project)["1-untranscribed"]
    assert isinstance(problem, SampleError)
    assert (
        "region has no transcription" in problem.problem
        and "task 1" in problem.problem
        and "region untranscribed" in problem.problem
    )

    export_file, images = project
    with pytest.raises(SampleError, match="region has no transcription"):
        list(read_samples(export_file, "label-studio", image_dir=images))


def test_url_image_is_reported_never_fetched(project):
    problem = read_project(project)["3-far"]
    assert isinstance(problem, SampleError)
    assert "https://storage.example.org/scans/page-3.png" in problem.problem and "never downloaded" in problem.problem
    # Presigned URLs carry credentials in their query, and problems travel in rejected.jsonl.
    assert "secret" not in str(problem)
    assert "--images" in problem.fix


def test_uploads_without_an_image_folder_ask_for_one(project):
    export_file, _ = project
    items = list(read_samples(export_file, "label-studio", errors="report"))
    not_found = [item for item in items if isinstance(item, SampleError) and "not found" in item.problem]
    assert [item.sample_id for item in not_found] == ["1-plain", "1-turned", "1-triangle", "2-tilted"]
    assert all("--images DIR" in item.fix for item in not_found)


def test_percentages_fit_the_image_found_even_when_rescaled(tmp_path):
    # Annotated on an 800x400 upload; the folder holds the 400x200 copy.
    draw_page(tmp_path / "images" / "1a2b3c4d-page.png", [RED_BOX])
    region = rectangle("plain", 40, 40, 200, 80, size=(800, 400))
    export_file = write_export(
        tmp_path / "export.json", [task(1, UPLOAD, [annotation(1, transcribed(region, "Zeile"))])]
    )

    [sample] = read_samples(export_file, "label-studio", image_dir=tmp_path / "images")

    assert sample.polygon == RED_BOX.outline
    assert ImageStat.Stat(crop_of(sample)).mean == list(RED)


def test_page_stored_sideways_is_measured_upright(tmp_path):
    # Stored turned a quarter to the left with EXIF orientation 6: Label Studio showed it upright.
    upright = draw_page(tmp_path / "upright.png", [RED_BOX])
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images").mkdir()
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "images" / "1a2b3c4d-page.png", exif=exif)
    export_file = write_export(
        tmp_path / "export.json",
        [task(1, UPLOAD, [annotation(1, transcribed(rectangle("plain", 20, 20, 100, 40), "Zeile"))])],
    )

    [sample] = read_samples(export_file, "label-studio", image_dir=tmp_path / "images")

    assert sample.polygon == RED_BOX.outline
    assert ImageStat.Stat(crop_of(sample)).mean == list(RED)


def test_export_to_every_format_loads_back_and_lists_the_rejected(project, tmp_path):
    export_file, images = project
    samples = read_samples(export_file, "label-studio", image_dir=images, errors="report")

    results = export_all(
        samples, batch_id="label-studio", output_dir=tmp_path / "exports", skip_invalid=True, progress=False
    )

    expected = {
        "1-plain": "Rothe Zeile",
        "1-turned": "Blaue Zeile",
        "1-triangle": "Grüne Zeile",
        "2-tilted": "Gelbe Zeile",
    }
    for result in results:
        assert loaded_texts(result, tmp_path / "cache") == expected
        rejected = [
            json.loads(line)
            for line in (Path(result.export_path) / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        assert {record["id"]: record["location"] for record in rejected} == {
            "1-untranscribed": "project-7.json: task 1",
            "3-far": "project-7.json: task 3",
        }
