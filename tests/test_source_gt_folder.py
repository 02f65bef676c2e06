"""gt-folder: tesstrain / kraken / Calamari line folders, real and made up, read and exported."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from PIL import Image
from support.data import LINE_GT_LINES, loaded_texts

from ocr_datasets import SampleError, export_all, read_samples
from ocr_datasets.adapters import FORMAT_NAMES

REAL_LINE_COUNT = LINE_GT_LINES


def write_line(folder: Path, name: str, text: str | None, image_suffix: str | None = ".png") -> None:
    """``<name><image_suffix>`` (a small image no other line shares) beside ``<name>.gt.txt``;
    None leaves that file out."""
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    if image_suffix is not None:
        # A colour of its own per line: identical images would be merged as duplicates.
        colour = tuple(hashlib.sha256(name.encode()).digest()[:3])
        image_format = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
            image_suffix.lower(), "PNG"
        )
        Image.new("RGB", (64, 24), colour).save(folder / f"{name}{image_suffix}", format=image_format)
    if text is not None:
        (folder / f"{name}.gt.txt").write_text(text + "\n", encoding="utf-8")


def by_id(items) -> dict[str, object]:
    return {item.sample_id if isinstance(item, SampleError) else item.id: item for item in items}


def expected_real_lines(folder: Path) -> dict[str, tuple[str, str, dict]]:
    """id -> (text, image name, metadata), read from the files without the source under test."""
    expected = {}
    for text_file in folder.glob("*.gt.txt"):
        name = text_file.name.removesuffix(".gt.txt")
        text = text_file.read_text(encoding="utf-8").removesuffix("\n")
        metadata = yaml.safe_load((folder / f"{name}.yml").read_text(encoding="utf-8"))
        expected[name] = (text, f"{name}.tif", metadata)
    return expected


def test_real_line_folder_gives_every_line_with_its_text_and_yml_metadata(line_gt_copy):
    samples = list(read_samples(line_gt_copy, "gt-folder"))
    expected = expected_real_lines(line_gt_copy)

    assert len(samples) == len(expected) == REAL_LINE_COUNT
    assert [sample.id for sample in samples] == sorted(expected)
    assert {
        sample.id: (sample.ground_truth, Path(sample.image_path).name, sample.metadata) for sample in samples
    } == expected
    assert all(set(sample.metadata) == {"teiUrl", "imageUrl"} for sample in samples)


def test_subfolders_give_path_ids_and_every_image_suffix_is_read(tmp_path):
    lines = {
        "plain": ".png",
        "scan": ".tif",
        "scan-long": ".tiff",
        "photo": ".jpg",
        "photo-long": ".jpeg",
        "upper": ".PNG",
        "ocropus": ".bin.png",
        "normalised": ".nrm.png",
        "book/page-1/line": ".png",
        "book/page-2/line": ".jpg",
    }
    for name, suffix in lines.items():
        write_line(tmp_path, name, f"text of {name}", suffix)

    samples = by_id(read_samples(tmp_path, "gt-folder"))

    assert list(samples) == sorted(lines)
    for name, suffix in lines.items():
        assert samples[name].image_path == tmp_path / f"{name}{suffix}"
        assert samples[name].ground_truth == f"text of {name}"
        assert samples[name].read_image_bytes() == (tmp_path / f"{name}{suffix}").read_bytes()


def test_one_line_with_several_images_uses_the_unprocessed_one(tmp_path):
    for suffix in (".nrm.png", ".bin.png", ".png"):
        write_line(tmp_path, "010001", None, suffix)
    write_line(tmp_path, "010001", "Zeile", None)
    # A line named with .bin itself (name.bin.png beside name.bin.gt.txt) keeps that name.
    write_line(tmp_path, "010002.bin", "andere Zeile", ".png")

    samples = by_id(read_samples(tmp_path, "gt-folder"))

    assert list(samples) == ["010001", "010002.bin"]
    assert samples["010001"].image_path == tmp_path / "010001.png"
    assert samples["010002.bin"].image_path == tmp_path / "010002.bin.png"


def test_text_and_image_are_taken_as_they_are(tmp_path):
    write_line(tmp_path, "spaced", "  zwei  Leerzeichen ſ\u0364 ")

    [sample] = read_samples(tmp_path, "gt-folder")

    # Only the final line break goes: normalising the text is validation's job.
    assert sample.ground_truth == "  zwei  Leerzeichen ſ\u0364 "


ORPHANS = {
    "text without image": (
        {"name": "lonely", "text": "Zeile", "image_suffix": None},
        "no line image beside lonely.gt.txt",
    ),
    "image without text": ({"name": "unlabelled", "text": None}, "image unlabelled.png has no transcription"),
}


@pytest.mark.parametrize("case", ORPHANS)
def test_orphan_raises_naming_its_file(tmp_path, case):
    line, problem = ORPHANS[case]
    write_line(tmp_path, "complete", "Zeile")
    write_line(tmp_path, **line)

    with pytest.raises(SampleError, match=problem) as raised:
        list(read_samples(tmp_path, "gt-folder"))
    assert raised.value.sample_id == line["name"]


def test_report_mode_yields_orphans_in_their_place(tmp_path):
    write_line(tmp_path, "a-complete", "Zeile")
    write_line(tmp_path, "b-lonely", "Zeile", image_suffix=None)
    write_line(tmp_path, "c-unlabelled", None)

    items = list(read_samples(tmp_path, "gt-folder", errors="report"))

    assert [(type(item).__name__, getattr(item, "id", None) or item.sample_id) for item in items] == [
        ("TrainingSample", "a-complete"),
        ("SampleError", "b-lonely"),
        ("SampleError", "c-unlabelled"),
    ]
    assert [item.location for item in items[1:]] == ["b-lonely.gt.txt", "c-unlabelled.png"]


def test_hidden_files_and_folders_are_not_lines(tmp_path):
    write_line(tmp_path, "line", "Zeile")
    # What macOS and version control leave beside the lines.
    (tmp_path / "._line.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    write_line(tmp_path / ".git", "copy", "Zeile")

    assert [sample.id for sample in read_samples(tmp_path, "gt-folder")] == ["line"]


METADATA_FILES = {
    "good": ("good.yml", '---\nwork: "alexis"\nscanned: 2020-01-02\n'),
    "empty": ("empty.yml", ""),
    "from-json": ("from-json.json", '{"page": 3, "hand": "A"}'),
    "broken-yml": ("broken-yml.yml", "work: alexis\npage: 3: 4\n"),
    "list-yml": ("list-yml.yml", "- not\n- a mapping\n"),
    "broken-json": ("broken-json.json", '{"page": 3,'),
}


def test_metadata_files_are_read_and_broken_ones_reported_for_their_line_only(tmp_path):
    for name, (file_name, content) in METADATA_FILES.items():
        write_line(tmp_path, name, f"text of {name}")
        (tmp_path / file_name).write_text(content, encoding="utf-8")
    write_line(tmp_path, "none", "text of none")

    items = by_id(read_samples(tmp_path, "gt-folder", errors="report"))

    # The YAML date comes as text, as it would be stored in JSON anyway.
    assert items["good"].metadata == {"work": "alexis", "scanned": "2020-01-02"}
    assert items["empty"].metadata == {} and items["none"].metadata == {}
    assert items["from-json"].metadata == {"page": 3, "hand": "A"}
    assert "broken-yml.yml cannot be read" in items["broken-yml"].problem and "line 2" in items["broken-yml"].problem
    assert "list-yml.yml holds a list, not a mapping" in items["list-yml"].problem
    assert "broken-json.json cannot be read" in items["broken-json"].problem
    assert {name for name, item in items.items() if isinstance(item, SampleError)} == {
        "broken-yml",
        "list-yml",
        "broken-json",
    }


def test_one_file_of_a_line_reads_that_line(tmp_path):
    write_line(tmp_path, "wanted", "gewollt")
    write_line(tmp_path, "other", "andere")

    assert [sample.id for sample in read_samples(tmp_path / "wanted.gt.txt", "gt-folder")] == ["wanted"]
    assert [sample.id for sample in read_samples(tmp_path / "wanted.png", "gt-folder")] == ["wanted"]


def test_real_lines_in_work_folders_export_to_every_format_and_load_back(line_gt_copy, tmp_path):
    # The real lines regrouped into one folder per work, so the exported ids carry a slash.
    folder = tmp_path / "by-work"
    for text_file in line_gt_copy.glob("*.gt.txt"):
        name = text_file.name.removesuffix(".gt.txt")
        work = folder / name.rsplit("_", 2)[0]
        work.mkdir(parents=True, exist_ok=True)
        for suffix in (".gt.txt", ".tif", ".yml"):
            (work / f"{name}{suffix}").symlink_to(line_gt_copy / f"{name}{suffix}")
    expected = {
        f"{name.rsplit('_', 2)[0]}/{name}": text for name, (text, _, _) in expected_real_lines(line_gt_copy).items()
    }

    results = export_all(
        read_samples(folder, "gt-folder"), batch_id="gt-folder", output_dir=tmp_path / "exports", progress=False
    )

    assert len(results) == len(FORMAT_NAMES)
    for result in results:
        assert result.sample_count == REAL_LINE_COUNT
        assert loaded_texts(result, tmp_path / "cache") == expected
