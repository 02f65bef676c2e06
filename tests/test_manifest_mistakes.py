"""A new user's ordinary mistakes in a manifest or its options, each named once with its fix (issue #13)."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from ocr_datasets import SampleError, TrainingSample, ValidationError, export, read_manifest


def line_images(folder, count: int) -> list:
    paths = []
    for index in range(count):
        image = Image.new("L", (60, 20), 255)
        ImageDraw.Draw(image).line((5, 10, 10 + index, 10), fill=0, width=3)
        image.save(folder / f"{index}.png")
        paths.append(folder / f"{index}.png")
    return paths


@pytest.mark.parametrize(
    ("key", "closest"),
    [
        ("ocr_txt", "ocr_text"),
        ("meta_data", "metadata"),
        ("confidence", "ocr_confidence"),
        ("groundtruth", "ground_truth"),
    ],
)
def test_a_misspelt_field_is_named_with_the_closest_known_one(tmp_path, key, closest):
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text(
        json.dumps({"id": "a", "image_path": "a.png", "ground_truth": "x", key: "y"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(SampleError) as raised:
        list(read_manifest(manifest))
    assert raised.value.location == "samples.jsonl:1"
    assert repr(key) in raised.value.problem and repr(closest) in raised.value.fix


def test_a_field_unlike_any_known_one_lists_the_known_fields(tmp_path):
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text(
        '{"id": "a", "image_path": "a.png", "ground_truth": "x", "scanner": "Epson"}\n', encoding="utf-8"
    )
    with pytest.raises(SampleError) as raised:
        list(read_manifest(manifest))
    assert (
        "'scanner'" in raised.value.problem and "metadata" in raised.value.fix and "ocr_confidence" in raised.value.fix
    )


@pytest.mark.parametrize(
    ("typo", "meant"), [("ground_trut", "ground_truth"), ("imagepath", "image_path"), ("ID", "id")]
)
def test_a_csv_header_typo_is_one_error_naming_the_column_and_the_columns(tmp_path, typo, meant):
    columns = ["id", "image_path", "ground_truth"]
    header = [typo if column == meant else column for column in columns]
    manifest = tmp_path / "samples.csv"
    manifest.write_text(
        ",".join(header) + "\n" + "".join(f"l{n},l{n}.png,Text {n}\n" for n in range(50)), encoding="utf-8"
    )
    with pytest.raises(ValueError) as raised:
        list(read_manifest(manifest, errors="report"))
    message = str(raised.value)
    assert message.startswith("samples.csv:1") and repr(typo) in message and repr(meant) in message
    assert ", ".join(header) in message


def test_a_german_excel_csv_is_read_with_its_semicolons_and_decimal_commas(tmp_path):
    manifest = tmp_path / "samples.csv"
    rows = [
        "id;image_path;ground_truth;ocr_text;ocr_confidence",
        "a;a.png;Grüße, Welt;Grusse;0,85",
        'b;b.png;"Straße; Haus";Strasse;1',
    ]
    manifest.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    (tmp_path / "a.png").write_bytes(b""), (tmp_path / "b.png").write_bytes(b"")
    first, second = read_manifest(manifest)
    assert (first.id, first.ground_truth, first.ocr_text, first.ocr_confidence) == ("a", "Grüße, Welt", "Grusse", 0.85)
    assert (second.id, second.ground_truth, second.ocr_confidence) == ("b", "Straße; Haus", 1.0)


def test_a_repeated_id_names_the_line_of_its_first_use(tmp_path):
    images = line_images(tmp_path, 3)
    manifest = tmp_path / "samples.jsonl"
    records = [
        {"id": "x", "image_path": "0.png", "ground_truth": "a"},
        {"id": "y", "image_path": "1.png", "ground_truth": "b"},
        {"id": "x", "image_path": "2.png", "ground_truth": "c"},
    ]
    manifest.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    with pytest.raises(ValidationError) as raised:
        export(read_manifest(manifest), "generic", batch_id="b", output_dir=tmp_path / "out", progress=False)
    [problem] = raised.value.report.rejected
    assert problem.location == "samples.jsonl:3" and "samples.jsonl:1" in problem.problem
    assert len(images) == 3


def test_a_group_by_key_no_sample_has_is_one_error_naming_the_keys_there_are(tmp_path):
    samples = [
        TrainingSample(f"s{n}", path, f"Text {n}", metadata={"document": "d", "seite": n})
        for n, path in enumerate(line_images(tmp_path, 30))
    ]
    with pytest.raises(ValueError) as raised:
        export(
            samples,
            "generic",
            batch_id="b",
            output_dir=tmp_path / "out",
            progress=False,
            split="train=0.5,test=0.5",
            group_by="page",
        )
    message = str(raised.value)
    assert message.count("'page'") == 1 and "document" in message and "seite" in message
    assert not isinstance(raised.value, ValidationError)


def test_a_requested_split_that_comes_out_empty_is_an_error_naming_the_groups(tmp_path):
    samples = [
        TrainingSample(f"s{n}", path, f"Text {n}", metadata={"page": n % 4})
        for n, path in enumerate(line_images(tmp_path, 12))
    ]
    # The hash strategy with seed 0 puts all four pages into train.
    with pytest.raises(ValueError) as raised:
        export(
            samples,
            "generic",
            batch_id="b",
            output_dir=tmp_path / "out",
            progress=False,
            split="train=0.75,test=0.25",
            group_by="page",
        )
    message = str(raised.value)
    assert "'test'" in message and "4 groups" in message and "balanced" in message
    result = export(
        samples,
        "generic",
        batch_id="b",
        output_dir=tmp_path / "out",
        progress=False,
        split="train=0.75,test=0.25",
        group_by="page",
        split_strategy="balanced",
    )
    assert set(result.read_manifest()["splits"]) == {"train", "test"} and all(result.read_manifest()["splits"].values())


def test_a_generic_view_with_inline_images_reads_back_as_an_input(tmp_path):
    samples = [TrainingSample(f"s{n}", path, f"Text {n}") for n, path in enumerate(line_images(tmp_path, 3))]
    batch = export(
        samples,
        "generic",
        batch_id="b",
        output_dir=tmp_path / "out",
        progress=False,
        copy_images=True,
        include_base64=True,
    )
    view = tmp_path / "view.jsonl"
    # Without its image_path, a record's image comes from its data: URL.
    records = [
        json.loads(line) | {"image_path": None}
        for line in (tmp_path / "out" / "generic" / "b" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    view.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    reread = list(read_manifest(view))
    assert [sample.image_bytes for sample in reread] == [path.read_bytes() for path in sorted(tmp_path.glob("*.png"))]
    assert batch.sample_count == 3


def test_a_library_warning_points_at_the_callers_line(tmp_path):
    [path] = line_images(tmp_path, 1)
    with pytest.warns(UserWarning, match="long s") as caught:
        export(
            [TrainingSample("a", path, "Gaſt")],
            "generic",
            batch_id="b",
            output_dir=tmp_path / "out",
            progress=False,
            normalize="NFKC",
        )
    assert [warning.filename for warning in caught] == [__file__]


def test_a_missing_image_names_the_path_tried_and_where_relative_paths_start(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "labels").mkdir(parents=True)
    (project / "images").mkdir()
    line_images(project / "images", 1)
    manifest = project / "labels" / "samples.jsonl"
    # Written relative to the project folder (the working folder), not to the manifest's.
    manifest.write_text('{"id": "a", "image_path": "images/0.png", "ground_truth": "x"}\n', encoding="utf-8")
    monkeypatch.chdir(project)
    [problem] = read_manifest(manifest, errors="report")
    assert isinstance(problem, SampleError) and problem.location == "samples.jsonl:1"
    assert "images/0.png" in problem.problem and "manifest's folder" in problem.problem
    assert "current folder" in problem.fix and str(tmp_path) not in str(problem)
