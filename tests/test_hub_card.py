"""A batch's README.md is a dataset card the Hub and its viewer understand (issue #17): read back
with huggingface_hub's own DatasetCard and with datasets, its values checked against the Hub's
documented vocabulary. Nothing is uploaded and nothing reaches the network: huggingface_hub's
RepoCard.validate posts the card to the Hub, so no test calls it."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import datasets
import pytest
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard
from PIL import ImageChops
from support.cli import run_cli
from support.data import line_gt_samples

from ocr_datasets import export, export_all, load_batch, read_manifest
from ocr_datasets.adapters import get_adapter
from ocr_datasets.card import SIZE_CATEGORIES, size_category
from ocr_datasets.errors import OptionError
from ocr_datasets.example import write_example_manifest
from ocr_datasets.offline import hugging_face_offline
from ocr_datasets.options import ExportOptions
from ocr_datasets.samples import TrainingSample

# The Hub's task ids, as huggingface.js declares them in packages/tasks/src/pipelines.ts (commit
# fe42e68, August 2026): https://github.com/huggingface/huggingface.js/blob/main/packages/tasks/src/pipelines.ts,
# the "Full list" hub-docs' datasetcard.md names for task_categories.
HUB_TASK_CATEGORIES = {
    "text-classification", "token-classification", "table-question-answering", "question-answering",
    "zero-shot-classification", "feature-extraction", "text-generation", "fill-mask", "sentence-similarity",
    "text-to-speech", "text-to-audio", "automatic-speech-recognition", "audio-to-audio", "audio-classification",
    "audio-text-to-text", "voice-activity-detection", "depth-estimation", "image-classification",
    "object-detection", "image-segmentation", "text-to-image", "image-to-text", "image-to-image", "image-to-video",
    "unconditional-image-generation", "video-classification", "reinforcement-learning", "tabular-classification",
    "tabular-regression", "tabular-to-text", "table-to-text", "multiple-choice", "text-ranking", "text-retrieval",
    "time-series-forecasting", "text-to-video", "image-text-to-text", "image-text-to-image", "image-text-to-video",
    "visual-question-answering", "document-question-answering", "zero-shot-image-classification", "graph-ml",
    "mask-generation", "zero-shot-object-detection", "text-to-3d", "image-to-3d", "image-feature-extraction",
    "video-text-to-text", "keypoint-detection", "visual-document-retrieval", "any-to-any", "video-to-video",
}  # fmt: skip
# The Hub's size_categories, as huggingface_hub documents them in DatasetCardData (2.4):
# https://github.com/huggingface/huggingface_hub/blob/main/src/huggingface_hub/repocard_data.py
# ("Options are: 'n<1K', '1K<n<10K', ..."; hub-docs' datasetcard.md gives "n<1K, 100K<n<1M, …").
HUB_SIZE_CATEGORIES = [
    "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "1B<n<10B",
    "10B<n<100B", "100B<n<1T", "n>1T", "other",
]  # fmt: skip
COMBINING_E = "\u0364"
COMBINING_DIAERESIS = "\u0308"


def misread_combining_e(text: str) -> str:
    """What an OCR engine trained on modern print reads: u with e above (uͤ) as ü."""
    return unicodedata.normalize("NFC", text.replace(COMBINING_E, COMBINING_DIAERESIS))


@pytest.fixture(scope="module")
def real_batch(line_gt_copy, tmp_path_factory) -> Path:
    """The 114 real Fraktur lines as a trocr batch in two splits, German, CC BY 4.0, each line's
    OCR text misreading the combining e above as a diaeresis."""
    samples = [
        TrainingSample(
            id=sample.id,
            image_path=sample.image_path,
            ground_truth=sample.ground_truth,
            ocr_text=misread_combining_e(sample.ground_truth),
            metadata=sample.metadata,
        )
        for sample in line_gt_samples(line_gt_copy)
    ]
    result = export(
        samples,
        "trocr",
        batch_id="fraktur",
        output_dir=tmp_path_factory.mktemp("exports"),
        split="train=0.8,validation=0.2",
        group_by="work",
        language="de",
        license="CC-BY-4.0",
        progress=False,
    )
    return Path(result.export_path)


@pytest.fixture(scope="module")
def every_format(tmp_path_factory) -> dict[str, Path]:
    """The built-in example exported to every format, in German and Latin, without a license."""
    manifest = write_example_manifest(tmp_path_factory.mktemp("input"), count=12)
    results = export_all(
        read_manifest(manifest),
        batch_id="b1",
        output_dir=tmp_path_factory.mktemp("exports"),
        split="train=0.5,validation=0.5",
        language="de,la",
        progress=False,
    )
    return {result.export_format: Path(result.export_path) for result in results}


def card_of(batch: Path) -> DatasetCard:
    return DatasetCard.load(batch / "README.md")


def test_the_card_holds_the_hub_metadata_in_its_documented_vocabulary(real_batch, refuse_network):
    data = card_of(real_batch).data

    assert data.task_categories == ["image-to-text"]
    assert set(data.task_categories) <= HUB_TASK_CATEGORIES
    assert data.size_categories == ["n<1K"]
    assert set(data.size_categories) <= set(HUB_SIZE_CATEGORIES)
    assert data.language == ["de"]
    assert data.license == "cc-by-4.0"
    assert data.tags == ["ocr", "htr"]
    assert data.pretty_name == "OCR training batch fraktur (trocr)"
    assert refuse_network == []


def test_the_manifest_records_the_language_and_license_the_card_shows(real_batch, every_format):
    assert recorded_card_options(real_batch) == {"language": ["de"], "license": "cc-by-4.0"}
    assert recorded_card_options(every_format["trocr"]) == {"language": ["de", "la"], "license": None}


def read_manifest_json(batch: Path) -> dict:
    return json.loads((batch / "manifest.json").read_text(encoding="utf-8"))


def recorded_card_options(batch: Path) -> dict:
    options = read_manifest_json(batch)["options"]
    return {name: options[name] for name in ("language", "license")}


@pytest.mark.parametrize("export_format", ["trocr", "llama_vision", "generic", "vlm", "line_gt"])
def test_the_card_is_what_huggingface_hub_writes_for_its_metadata(export_format, every_format):
    path = every_format[export_format] / "README.md"
    written = path.read_text(encoding="utf-8")
    card = DatasetCard.load(path)

    # Written back by huggingface_hub, the card is unchanged: its YAML is DatasetCardData's own
    # dump, in DatasetCardData's own key order.
    assert card.content == written
    assert written.startswith(f"---\n{card.data.to_yaml()}\n---\n")
    assert card.data.language == ["de", "la"]


@pytest.mark.parametrize("export_format", ["trocr", "llama_vision", "generic", "vlm", "line_gt"])
def test_the_cards_features_are_those_datasets_loads(export_format, every_format, tmp_path, refuse_network):
    batch = every_format[export_format]
    features = get_adapter(export_format).features
    data = card_of(batch).data
    (config,) = data.configs

    # The form datasets itself writes into a card, and what it reads back from it.
    assert data.dataset_info["features"] == features.to_datasets()._to_yaml_list()
    infos = DatasetInfosDict.from_dataset_card_data(data)
    assert list(infos) == [config["config_name"]]
    assert infos[config["config_name"]].features == features.to_datasets()
    loaded = load_batch(batch, cache_dir=tmp_path / "cache")
    assert {split: dataset.features for split, dataset in loaded.items()} == {
        "train": features.to_datasets(),
        "validation": features.to_datasets(),
    }
    assert refuse_network == []


def test_without_a_license_the_card_says_other_and_asks_for_one(every_format, real_batch):
    card = card_of(every_format["trocr"])

    assert card.data.license == "other"
    assert "**License: not set.** This batch was exported without `--license`" in card.text
    assert "**License: not set.**" not in card_of(real_batch).text


def test_a_license_of_other_asks_for_its_name_and_link(tmp_path):
    manifest = write_example_manifest(tmp_path / "input", count=2)

    result = export(read_manifest(manifest), "trocr", output_dir=tmp_path / "out", license="other", progress=False)

    card = card_of(Path(result.export_path))
    assert card.data.license == "other"
    assert "**License: other.** Before sharing this batch, add `license_name` and `license_link`" in card.text
    assert "not set" not in card.text


def test_the_card_shows_the_grapheme_cer_beside_the_code_point_cer(real_batch):
    manifest = read_manifest_json(real_batch)
    text = (real_batch / "README.md").read_text(encoding="utf-8")
    header = "| split | samples | characters | OCR CER | OCR grapheme CER | OCR WER |"
    assert header in text
    assert "grapheme CER counts what a reader\nsees as one character" in text
    for split, figures in manifest["statistics"].items():
        baseline = figures["ocr_baseline"]
        # Each combining e misread costs one grapheme, and one or two code points (u + U+0364
        # against ü): the grapheme CER is the lower.
        misread = sum(line.count(COMBINING_E) for line in reference_texts(real_batch, split))
        assert baseline["grapheme_edits"] == misread > 0
        assert baseline["grapheme_cer"] < baseline["cer"]
        row = f"| {split} | {figures['samples']} | {figures['characters']} | {baseline['cer']:.2%} | "
        assert f"{row}{baseline['grapheme_cer']:.2%} | {baseline['wer']:.2%} |" in text.splitlines()
        assert (
            f"grapheme CER {baseline['grapheme_cer']:.2%} ({misread} edits in {baseline['reference_graphemes']} "
            "graphemes)"
        ) in text


def reference_texts(batch: Path, split: str) -> list[str]:
    with (batch / f"{split}.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines]


def test_a_split_yaml_reads_as_a_boolean_stays_a_split_name(tmp_path):
    manifest = write_example_manifest(tmp_path / "input", count=12)

    result = export(
        read_manifest(manifest), "trocr", output_dir=tmp_path / "out", split="on=0.5,no=0.5", progress=False
    )

    (config,) = card_of(Path(result.export_path)).data.configs
    assert [entry["split"] for entry in config["data_files"]] == ["on", "no"]
    loaded = load_batch(result.export_path, cache_dir=tmp_path / "cache")
    assert sorted(loaded) == ["no", "on"] and sum(map(len, loaded.values())) == 12


@pytest.mark.parametrize(
    ("count", "category"),
    [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (9_999, "1K<n<10K"), (10_000, "10K<n<100K"),
     (2_500_000, "1M<n<10M"), (999_999_999_999, "100B<n<1T"), (10**12, "n>1T")],
)  # fmt: skip
def test_the_size_category_is_the_hubs_for_the_sample_count(count, category):
    assert size_category(count) == category


def test_every_size_category_is_in_the_hubs_vocabulary_in_its_order():
    assert list(SIZE_CATEGORIES) == [category for category in HUB_SIZE_CATEGORIES if category != "other"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"language": "DE, la,de"}, {"language": ("de", "la")}),
        ({"language": ["deu", "gmh"]}, {"language": ("deu", "gmh")}),
        ({"license": " CC0-1.0"}, {"license": "cc0-1.0"}),
        ({}, {"language": None, "license": None}),
    ],
)
def test_language_and_license_are_kept_as_the_card_writes_them(options, expected):
    settings = ExportOptions(**options)

    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"language": "de-DE"}, "language 'de-DE' (--language) is not an ISO 639-1 or 639-3 code"),
        ({"language": "German"}, "two or three letters"),
        ({"language": " , "}, "names no language"),
        ({"language": 5}, "language=5 (--language): give language codes as text"),
        ({"language": {"de": 1}}, "language={'de': 1} (--language): give language codes as text"),
        ({"license": "cc-by-4"}, "(did you mean cc-by-4.0?)"),
        ({"license": "proprietary"}, "https://huggingface.co/docs/hub/repositories-licenses"),
    ],
)
def test_a_wrong_language_or_license_is_refused_before_anything_is_read(options, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        ExportOptions(**options)


def test_the_command_refuses_an_unknown_license_naming_the_flag(tmp_path):
    manifest = write_example_manifest(tmp_path / "input", count=2)

    completed = run_cli(
        "export", "--input", manifest, "--format", "trocr", "--output", tmp_path / "out", "--license", "cc-by"
    )

    assert completed.returncode != 0 and "Traceback" not in completed.stderr
    assert "license 'cc-by' (--license) is not a license identifier the Hub knows" in completed.stderr
    assert not (tmp_path / "out").exists()


# --- the trocr view and imagefolder ---------------------------------------------------------------


def test_imagefolder_finds_no_rows_in_a_batch_by_itself(real_batch, tmp_path, refuse_network):
    # Its views are named after their splits (train.jsonl), and imagefolder reads only files
    # named metadata.jsonl, .csv or .parquet: what docs/formats.md says instead of "an
    # imagefolder layout".
    with hugging_face_offline(), pytest.raises(ValueError, match="corresponds to no data"):
        datasets.load_dataset("imagefolder", data_dir=str(real_batch), cache_dir=str(tmp_path / "cache"))
    assert refuse_network == []


def test_imagefolder_reads_the_trocr_views_when_told_their_names(real_batch, tmp_path, refuse_network):
    splits = ("train", "validation")

    # The call docs/formats.md gives, offline as it says (HF_HUB_OFFLINE=1 before importing
    # datasets; here datasets is imported already): without it, datasets counts the load with a
    # request to s3.amazonaws.com.
    with hugging_face_offline():
        loaded = datasets.load_dataset(
            "imagefolder",
            data_dir=str(real_batch),
            data_files={split: ["images/*", f"{split}.jsonl"] for split in splits},
            metadata_filenames=[f"{split}.jsonl" for split in splits],
            cache_dir=str(tmp_path / "imagefolder"),
        )

    batch = load_batch(real_batch, cache_dir=tmp_path / "batch")
    for split in splits:
        by_id = {row["id"]: row for row in batch[split]}
        assert sorted(row["id"] for row in loaded[split]) == sorted(by_id)
        for row in loaded[split]:
            assert row["text"] == by_id[row["id"]]["text"]
            assert ImageChops.difference(row["image"], by_id[row["id"]]["image"]).getbbox() is None
    assert refuse_network == []
