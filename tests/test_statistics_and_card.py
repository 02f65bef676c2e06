"""The batch's figures against hand-counted values: CER/WER, per-split counts, alphabet, text
lengths, image sizes and OCR baseline, in the manifest and in the README card that loads."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from pathlib import Path
from statistics import fmean, median

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard
from PIL import Image, ImageDraw
from support.data import LINE_GT_LINES, line_gt_samples

from ocr_datasets import TrainingSample, export
from ocr_datasets.statistics import error_rates, split_statistics
from ocr_datasets.validation import CheckedSample
from ocr_datasets.verdicts import Verdict

LONG_S = "\u017f"
COMBINING_E = "\u0364"
SPLIT_HALVES = {"train": 0.5, "test": 0.5}


# --- CER / WER ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "hypothesis", "char_edits", "reference_chars", "cer", "grapheme_edits", "reference_graphemes",
     "grapheme_cer", "word_edits", "reference_words", "wer"),
    [
        # c -> d: 1 edit in 3 characters; the one word is wrong.
        pytest.param("abc", "abd", 1, 3, 1 / 3, 1, 3, 1 / 3, 1, 1, 1.0, id="one-substitution"),
        # ß -> s plus an inserted s: 2 edits over the 6 characters of "Straße".
        pytest.param("Straße", "Strasse", 2, 6, 2 / 6, 2, 6, 2 / 6, 1, 1, 1.0, id="sharp-s-written-ss"),
        # r -> n: 1 edit in 14 characters; 1 of 3 words wrong.
        pytest.param(
            "der Hund bellt", "den Hund bellt", 1, 14, 1 / 14, 1, 14, 1 / 14, 1, 3, 1 / 3, id="one-word-wrong"
        ),
        # Nothing recognised: 4 deletions of 4 characters, 2 deletions of 2 words.
        pytest.param("Haus Tür", "", 8, 8, 1.0, 8, 8, 1.0, 2, 2, 1.0, id="empty-hypothesis"),
        # NFC keeps a + U+0364 as two code points, so dropping the mark is 1 edit in 2 characters;
        # as graphemes, a with e above read as a is 1 substitution of the line's 1 character.
        pytest.param("a\u0364", "a", 1, 2, 1 / 2, 1, 1, 1.0, 1, 1, 1.0, id="combining-e-is-its-own-code-point"),
        # ſ -> s: one substitution, however alike they look.
        pytest.param("ſein", "sein", 1, 4, 1 / 4, 1, 4, 1 / 4, 1, 1, 1.0, id="long-s-read-as-s"),
        pytest.param("Bär", "Bär", 0, 3, 0.0, 0, 3, 0.0, 0, 1, 0.0, id="identical"),
    ],
)  # fmt: skip
def test_error_rates_of_one_line_match_the_hand_counted_edits(
    reference,
    hypothesis,
    char_edits,
    reference_chars,
    cer,
    grapheme_edits,
    reference_graphemes,
    grapheme_cer,
    word_edits,
    reference_words,
    wer,
):
    assert unicodedata.normalize("NFC", reference) == reference, "the pairs are meant to be already normalised"
    assert error_rates([(reference, hypothesis)]) == {
        "lines": 1,
        "cer": pytest.approx(cer),
        "grapheme_cer": pytest.approx(grapheme_cer),
        "wer": pytest.approx(wer),
        "char_edits": char_edits,
        "reference_chars": reference_chars,
        "grapheme_edits": grapheme_edits,
        "reference_graphemes": reference_graphemes,
        "word_edits": word_edits,
        "reference_words": reference_words,
    }


def test_grapheme_cer_counts_a_letter_with_its_combining_marks_as_one_character():
    # "uͤber" is u + U+0364 + b, e, r: 5 code points, 4 graphemes. Reading uͤ as ü substitutes 1
    # grapheme but costs 2 code-point edits (U+0364 replaced by U+0308, which NFC then joins
    # with u into the one code point ü: ü is 1 code point, so 1 substitution + 1 deletion).
    reference, hypothesis = "u\u0364ber", unicodedata.normalize("NFC", "u\u0308ber")

    rates = error_rates([(reference, hypothesis)])

    assert hypothesis == "über"
    assert (rates["char_edits"], rates["reference_chars"]) == (2, 5)
    assert (rates["grapheme_edits"], rates["reference_graphemes"]) == (1, 4)
    assert (rates["cer"], rates["grapheme_cer"]) == (pytest.approx(2 / 5), pytest.approx(1 / 4))


def test_error_rates_of_several_lines_are_total_edits_over_total_reference_length():
    # A long perfect line and a short wrong one: per-line rates 0 and 1 average to 0.5, but the
    # corpus has 2 character edits in 19 + 2 characters and 1 word edit in 4 + 1 words.
    pairs = [("eins zwei drei vier", "eins zwei drei vier"), ("ab", "xy")]

    rates = error_rates(pairs)

    assert (
        rates["lines"],
        rates["char_edits"],
        rates["reference_chars"],
        rates["word_edits"],
        rates["reference_words"],
    ) == (2, 2, 21, 1, 5)
    assert rates["cer"] == pytest.approx(2 / 21)
    assert rates["wer"] == pytest.approx(1 / 5)
    per_line_mean = sum(error_rates([pair])["cer"] for pair in pairs) / len(pairs)
    assert per_line_mean == pytest.approx(0.5) and rates["cer"] != pytest.approx(per_line_mean)


@pytest.mark.parametrize(
    "lengths",
    [[7], [3, 9], [5, 5, 5, 2], [1, 4, 4, 8, 30], [2, 3], [10, 20, 20, 10, 15, 1], list(range(1, 1001)) * 2 + [7]],
)
def test_a_splits_distributions_are_those_statistics_gives_of_every_value(lengths):
    # Counted per value rather than held one by one (a million lines held 24 MB of them, and
    # the median sorted a copy of each): the same min, median (a middle value, or the mean of
    # the two middle ones), mean and max, of the same types.
    checked = [
        CheckedSample(
            TrainingSample(id=str(number), image_path=None, ground_truth="x" * length),
            "0" * 64,
            Verdict(length * 3 + 1, length % 7 + 1, "L", "PNG", False, "0" * 64, "PNG"),
            number,
        )
        for number, length in enumerate(lengths)
    ]

    figures = split_statistics(reversed(checked))

    for key, values in (
        ("text_length", lengths),
        ("image_width", [length * 3 + 1 for length in lengths]),
        ("image_height", [length % 7 + 1 for length in lengths]),
    ):
        expected = {
            "min": min(values),
            "median": median(values),
            "mean": round(fmean(values), 2),
            "max": max(values),
        }
        assert figures[key] == expected and list(map(type, figures[key].values())) == list(map(type, expected.values()))


# --- figures of an export of hand-made samples ---------------------------------------------------

# Two groups of three lines; the balanced split puts each whole group into one of two halves.
# (id, ground truth as typed, OCR text, image width x height)
GROUPS = {
    "prose": [
        ("prose-1", "Bär", "Bar", (40, 10)),
        # Typed with a decomposed umlaut (a + U+0308): NFC makes it one ä.
        ("prose-2", "Ha\u0308user am See", "Hauser am See", (120, 16)),
        ("prose-3", "Tür zu", "Tür zu", (64, 12)),
    ],
    "fraktur": [
        ("fraktur-1", "ſo", None, (30, 20)),
        ("fraktur-2", "u\u0364ber ſie", None, (90, 24)),
        ("fraktur-3", "daß", None, (50, 22)),
    ],
}

# Counted by hand from the NFC texts "Bär", "Häuser am See" (13), "Tür zu" (6) and "ſo",
# "uͤber ſie" (9: u, U+0364, b, e, r, space, ſ, i, e), "daß".
EXPECTED_FIGURES = {
    "prose": {
        "samples": 3,
        "characters": 22,
        "alphabet": {
            "r": 3,
            "e": 3,
            " ": 3,
            "ä": 2,
            "u": 2,
            "B": 1,
            "H": 1,
            "s": 1,
            "a": 1,
            "m": 1,
            "S": 1,
            "T": 1,
            "ü": 1,
            "z": 1,
        },
        "text_length": {"min": 3, "median": 6, "mean": 7.33, "max": 13},
        "image_width": {"min": 40, "median": 64, "mean": 74.67, "max": 120},
        "image_height": {"min": 10, "median": 12, "mean": 12.67, "max": 16},
        # ä -> a in "Bär" and in "Häuser": 2 character edits in 22; 2 of 3 + 1 + 2 = 6 words.
        # No combining marks: as many graphemes as code points.
        "ocr_baseline": {
            "lines": 3,
            "cer": 2 / 22,
            "grapheme_cer": 2 / 22,
            "wer": 2 / 6,
            "char_edits": 2,
            "reference_chars": 22,
            "grapheme_edits": 2,
            "reference_graphemes": 22,
            "word_edits": 2,
            "reference_words": 6,
        },
    },
    "fraktur": {
        "samples": 3,
        "characters": 14,
        "alphabet": {
            LONG_S: 2,
            "e": 2,
            "o": 1,
            "u": 1,
            COMBINING_E: 1,
            "b": 1,
            "r": 1,
            " ": 1,
            "i": 1,
            "d": 1,
            "a": 1,
            "ß": 1,
        },
        "text_length": {"min": 2, "median": 3, "mean": 4.67, "max": 9},
        "image_width": {"min": 30, "median": 50, "mean": 56.67, "max": 90},
        "image_height": {"min": 20, "median": 22, "mean": 22.0, "max": 24},
        "ocr_baseline": None,
    },
}

# The same figures as the card's lines should show them.
EXPECTED_CARD_LINES = {
    "prose": [
        "3 samples, 22 characters. "
        "OCR baseline over 3 lines: CER 9.09% (2 edits in 22 characters), "
        "grapheme CER 9.09% (2 edits in 22 graphemes), WER 33.33% (2 of 6 words).",
        "| text length (characters) | 3 | 6 | 7.33 | 13 |",
        "| image width (px) | 40 | 64 | 74.67 | 120 |",
        "| image height (px) | 10 | 12 | 12.67 | 16 |",
        "Alphabet (14 distinct characters, most frequent first):",
        "| (space) | U+0020 | SPACE | 3 |",
        "| ä | U+00E4 | LATIN SMALL LETTER A WITH DIAERESIS | 2 |",
        "| ü | U+00FC | LATIN SMALL LETTER U WITH DIAERESIS | 1 |",
    ],
    "fraktur": [
        "3 samples, 14 characters. No OCR text in this split.",
        "| text length (characters) | 2 | 3 | 4.67 | 9 |",
        "| image width (px) | 30 | 50 | 56.67 | 90 |",
        "| image height (px) | 20 | 22 | 22 | 24 |",
        "Alphabet (12 distinct characters, most frequent first):",
        "| ſ | U+017F | LATIN SMALL LETTER LONG S | 2 |",
        f"| ◌{COMBINING_E} | U+0364 | COMBINING LATIN SMALL LETTER E | 1 |",
        "| ß | U+00DF | LATIN SMALL LETTER SHARP S | 1 |",
    ],
}
EXPECTED_OVERVIEW_CELLS = {"prose": "| 3 | 22 | 9.09% | 9.09% | 33.33% |", "fraktur": "| 3 | 14 | – | – | – |"}


def png_bytes(width: int, height: int) -> bytes:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).line([(1, height // 2), (width - 2, height // 2)], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def hand_made_samples() -> list[TrainingSample]:
    return [
        TrainingSample(
            id=sample_id,
            image_path=f"{sample_id}.png",
            image_bytes=png_bytes(*size),
            ground_truth=text,
            ocr_text=ocr,
            metadata={"group": group},
        )
        for group, lines in GROUPS.items()
        for sample_id, text, ocr, size in lines
    ]


def read_manifest(batch: Path) -> dict:
    return json.loads((batch / "manifest.json").read_text(encoding="utf-8"))


def read_card(batch: Path) -> str:
    return (batch / "README.md").read_text(encoding="utf-8")


def card_section(card: str, split: str) -> str:
    """The card's part about one split: from its heading to the next heading or the end."""
    match = re.search(rf"^## Split `{split}`\n(.*?)(?=^## |\Z)", card, re.DOTALL | re.MULTILINE)
    assert match, f"the card has no section for split {split!r}"
    return match.group(1)


def overview_row(card: str, split: str) -> str:
    rows = [line for line in card.splitlines() if line.startswith(f"| {split} |")]
    assert len(rows) == 1, f"expected one overview row for {split!r}, found {rows}"
    return rows[0]


def default_config(batch: Path) -> dict:
    """The card's default config, as huggingface_hub parses it."""
    configs = [config for config in DatasetCard.load(batch / "README.md").data.configs if config.get("default")]
    assert len(configs) == 1, configs
    return configs[0]


def exported_ids(batch: Path, split: str) -> set[str]:
    return {
        sample_id
        for path in batch.glob(f"data/{split}-*.parquet")
        for sample_id in pq.read_table(path, columns=["id"]).column("id").to_pylist()
    }


@pytest.fixture(scope="module")
def hand_made_batch(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The hand-made samples exported once, with the group each split received."""
    result = export(
        hand_made_samples(),
        "generic",
        batch_id="figures",
        output_dir=tmp_path_factory.mktemp("figures"),
        split=SPLIT_HALVES,
        group_by="group",
        split_strategy="balanced",
        progress=False,
    )
    batch = Path(result.export_path)
    group_of_split = {}
    for split in SPLIT_HALVES:
        ids = exported_ids(batch, split)
        (group,) = [group for group, lines in GROUPS.items() if ids == {sample_id for sample_id, *_ in lines}]
        group_of_split[split] = group
    assert sorted(group_of_split.values()) == sorted(GROUPS), "each half should hold one whole group"
    return batch, group_of_split


def test_manifest_statistics_per_split_equal_the_hand_counted_figures(hand_made_batch):
    batch, group_of_split = hand_made_batch
    statistics = read_manifest(batch)["statistics"]

    assert list(statistics) == list(SPLIT_HALVES)
    for split, group in group_of_split.items():
        assert statistics[split] == {
            **EXPECTED_FIGURES[group],
            "ocr_baseline": pytest.approx(EXPECTED_FIGURES[group]["ocr_baseline"]),
        }, split


def test_ocr_baseline_is_error_rates_of_the_normalised_pairs_and_none_without_ocr_text(hand_made_batch):
    batch, group_of_split = hand_made_batch
    statistics = read_manifest(batch)["statistics"]
    split_of_group = {group: split for split, group in group_of_split.items()}
    prose_pairs = [(unicodedata.normalize("NFC", text), ocr) for _, text, ocr, _ in GROUPS["prose"]]

    assert statistics[split_of_group["prose"]]["ocr_baseline"] == pytest.approx(error_rates(prose_pairs))
    assert statistics[split_of_group["fraktur"]]["ocr_baseline"] is None


def test_alphabet_is_listed_most_frequent_first(hand_made_batch):
    batch, _ = hand_made_batch
    for split, figures in read_manifest(batch)["statistics"].items():
        counts = list(figures["alphabet"].values())
        assert counts == sorted(counts, reverse=True), split


def test_card_shows_each_splits_counts_baseline_sizes_and_alphabet(hand_made_batch):
    batch, group_of_split = hand_made_batch
    card = read_card(batch)

    for split, group in group_of_split.items():
        assert overview_row(card, split) == f"| {split} {EXPECTED_OVERVIEW_CELLS[group]}"
        section_lines = card_section(card, split).splitlines()
        missing = [line for line in EXPECTED_CARD_LINES[group] if line not in section_lines]
        assert not missing, f"split {split!r} ({group}) lacks {missing}"


def test_card_lists_every_alphabet_character_once_with_its_code_point(hand_made_batch):
    batch, group_of_split = hand_made_batch
    card = read_card(batch)
    for split, group in group_of_split.items():
        rows = re.findall(r"^\| .+? \| U\+([0-9A-F]{4,6}) \| .+? \| (\d+) \|$", card_section(card, split), re.MULTILINE)
        assert {chr(int(code, 16)): int(count) for code, count in rows} == EXPECTED_FIGURES[group]["alphabet"]
        assert len(rows) == len(EXPECTED_FIGURES[group]["alphabet"])


def test_card_default_config_lists_every_splits_data_files_and_loads(hand_made_batch, tmp_path):
    batch, _ = hand_made_batch

    data_files = {entry["split"]: entry["path"] for entry in default_config(batch)["data_files"]}
    assert data_files == {
        split: [path.relative_to(batch).as_posix() for path in sorted(batch.glob(f"data/{split}-*.parquet"))]
        for split in SPLIT_HALVES
    }

    loaded = datasets.load_dataset(str(batch), cache_dir=str(tmp_path / "cache"))
    assert {split: loaded[split].num_rows for split in loaded} == {split: 3 for split in SPLIT_HALVES}


# --- a split that receives nothing ---------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_with_an_empty_split(tmp_path_factory) -> tuple[Path, str, str]:
    """Two lines of one page split in halves by page: the whole page lands in one half, written
    with a warning because empty splits are allowed explicitly."""
    samples = [
        TrainingSample(
            id=f"page-line-{number}",
            image_path=f"l{number}.png",
            image_bytes=png_bytes(30 + number, 12),
            ground_truth=f"Zeile {number}",
            metadata={"page": 7},
        )
        for number in (1, 2)
    ]
    with pytest.warns(UserWarning, match="came out empty"):
        result = export(
            samples,
            "trocr",
            batch_id="one-page",
            output_dir=tmp_path_factory.mktemp("empty-split"),
            split=SPLIT_HALVES,
            group_by="page",
            split_strategy="balanced",
            allow_empty_splits=True,
            progress=False,
        )
    batch = Path(result.export_path)
    splits = read_manifest(batch)["splits"]
    (empty,) = [split for split, count in splits.items() if count == 0]
    (full,) = [split for split, count in splits.items() if count == 2]
    return batch, empty, full


def test_empty_split_is_in_manifest_and_card_with_zero_samples(batch_with_an_empty_split):
    batch, empty, _ = batch_with_an_empty_split
    card = read_card(batch)

    assert read_manifest(batch)["statistics"][empty] == {"samples": 0}
    assert overview_row(card, empty) == f"| {empty} | 0 | 0 | – | – | – |"
    assert card_section(card, empty).strip() == "No samples."


def test_empty_split_has_no_data_files_and_the_other_split_still_loads(batch_with_an_empty_split, tmp_path):
    batch, empty, full = batch_with_an_empty_split

    assert not list(batch.glob(f"data/{empty}-*"))
    assert [entry["split"] for entry in default_config(batch)["data_files"]] == [full]
    loaded = datasets.load_dataset(str(batch), cache_dir=str(tmp_path / "cache"))
    assert {split: loaded[split].num_rows for split in loaded} == {full: 2}


# --- the real Fraktur lines ------------------------------------------------------------------------


def test_real_lines_alphabet_counts_long_s_and_combining_e_as_the_gt_files_do(line_gt_copy, tmp_path):
    # Counted straight from the files, independent of how the samples are read.
    gt_text = "".join(path.read_text(encoding="utf-8") for path in sorted(line_gt_copy.glob("*.gt.txt")))
    expected = {LONG_S: gt_text.count(LONG_S), COMBINING_E: gt_text.count(COMBINING_E)}
    assert all(expected.values()), "the real lines should hold both characters"

    result = export(
        line_gt_samples(line_gt_copy),
        "trocr",
        batch_id="fraktur",
        output_dir=tmp_path,
        copy_images=False,
        progress=False,
    )
    batch = Path(result.export_path)
    manifest = read_manifest(batch)

    assert manifest["counts"] == {"input": LINE_GT_LINES, "exported": LINE_GT_LINES, "rejected": 0, "duplicates": 0}
    alphabet = manifest["statistics"]["train"]["alphabet"]
    assert {char: alphabet[char] for char in expected} == expected
    section = card_section(read_card(batch), "train").splitlines()
    assert f"| ſ | U+017F | LATIN SMALL LETTER LONG S | {expected[LONG_S]} |" in section
    assert f"| ◌{COMBINING_E} | U+0364 | COMBINING LATIN SMALL LETTER E | {expected[COMBINING_E]} |" in section


def test_an_empty_reference_has_no_rate_unless_nothing_was_inserted():
    assert (error_rates([("", "abc")])["cer"], error_rates([("", "abc")])["char_edits"]) == (None, 3)
    assert error_rates([("", "")])["cer"] == 0.0
