"""`ocr-datasets eval`: a model's transcriptions of a split scored against a real export, with the
card's definitions (corpus-level, NFC, code points and grapheme clusters), beside the batch's OCR
baseline; and every way a predictions file can fail to match its split, named."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from support.cli import failed_cleanly, run_cli, succeeded
from support.data import line_gt_samples

from ocr_datasets import evaluate_predictions, export, export_all, read_samples
from ocr_datasets.adapters import get_adapter
from ocr_datasets.evaluation import WORST_LINES, write_predictions
from ocr_datasets.training import load_batch

COMBINING_E = "\u0364"
# The real lines write a, o, u with a small e above; a model that reads them as umlauts makes
# one grapheme substitution, but two code-point edits (a + U+0364 against the one code point ä).
UMLAUT_OF = {"a": "ä", "o": "ö", "u": "ü"}
FORMATS = ("trocr", "llama_vision", "generic")


@pytest.fixture(scope="module")
def fraktur(line_gt_copy, tmp_path_factory) -> dict[str, Path]:
    """The 114 real Fraktur lines in three formats, whole works in train, validation and test."""
    results = export_all(
        line_gt_samples(line_gt_copy),
        batch_id="fraktur",
        output_dir=tmp_path_factory.mktemp("exports"),
        formats=FORMATS,
        split="train=0.6,validation=0.2,test=0.2",
        group_by="work",
        progress=False,
    )
    return {result.export_format: Path(result.export_path) for result in results}


@pytest.fixture(scope="module")
def test_lines(fraktur, tmp_path_factory) -> dict[str, str]:
    """id -> reference of the test split, read back with datasets (not the way eval reads it)."""
    rows = load_batch(fraktur["trocr"], cache_dir=tmp_path_factory.mktemp("load-cache"))["test"]
    return dict(zip(rows["id"], rows["text"], strict=True))


def predictions_file(folder: Path, lines, name: str = "predictions.jsonl") -> Path:
    """Write ``lines`` (pairs of id and text, or raw strings) as a predictions file."""
    path = folder / name
    path.write_text(
        "".join(
            (line if isinstance(line, str) else json.dumps({"id": line[0], "text": line[1]}, ensure_ascii=False)) + "\n"
            for line in lines
        ),
        encoding="utf-8",
    )
    return path


def test_perfect_predictions_score_zero_in_every_format_and_list_no_lines(fraktur, test_lines, tmp_path):
    predictions = write_predictions(tmp_path / "perfect.jsonl", test_lines, test_lines.values())

    for batch in fraktur.values():
        figures = evaluate_predictions(batch, predictions)

        assert figures["split"] == "test"  # the default, since the batch has one
        model = figures["model"]
        assert (model["lines"], model["cer"], model["grapheme_cer"], model["wer"]) == (len(test_lines), 0.0, 0.0, 0.0)
        assert model["reference_chars"] == sum(len(text) for text in test_lines.values())
        assert figures["worst_lines"] == []
        # Exported from line folders without OCR text: there is no baseline to beat.
        assert figures["ocr_baseline"] is None


def test_known_edits_give_corpus_level_rates_and_the_worst_lines_first(fraktur, test_lines, tmp_path):
    ids = list(test_lines)
    wrong = {
        ids[0]: "",  # nothing read: every character and word of the line deleted
        ids[1]: test_lines[ids[1]][:-1] + "#",  # the last character misread
        ids[2]: "x" + test_lines[ids[2]],  # one character inserted in front of the first word
    }
    predictions = predictions_file(
        tmp_path, [(line_id, wrong.get(line_id, text)) for line_id, text in test_lines.items()]
    )

    figures = evaluate_predictions(fraktur["llama_vision"], predictions, "test")

    chars = sum(len(text) for text in test_lines.values())
    char_edits = len(test_lines[ids[0]]) + 1 + 1
    words = sum(len(text.split()) for text in test_lines.values())
    word_edits = len(test_lines[ids[0]].split()) + 1 + 1
    model = figures["model"]
    assert (model["char_edits"], model["reference_chars"]) == (char_edits, chars)
    assert model["cer"] == pytest.approx(char_edits / chars)
    assert (model["word_edits"], model["reference_words"]) == (word_edits, words)
    assert [line["id"] for line in figures["worst_lines"]] == [
        ids[0],
        *sorted(ids[1:3], key=lambda line_id: -1 / len(test_lines[line_id])),
    ]
    empty = figures["worst_lines"][0]
    assert empty == {
        "id": ids[0],
        "reference": test_lines[ids[0]],
        "prediction": "",
        "cer": 1.0,
        "grapheme_cer": 1.0,
        "char_edits": len(test_lines[ids[0]]),
        "reference_chars": len(test_lines[ids[0]]),
    }


def test_umlauts_for_combining_e_cost_two_code_points_but_one_grapheme(fraktur, test_lines, tmp_path):
    def as_umlauts(text: str) -> str:
        for base, umlaut in UMLAUT_OF.items():
            text = text.replace(base + COMBINING_E, umlaut)
        return text

    marks = sum(text.count(COMBINING_E) for text in test_lines.values())
    assert marks > 0, "the test split should hold lines with U+0364"
    assert all(text[text.index(COMBINING_E) - 1] in UMLAUT_OF for text in test_lines.values() if COMBINING_E in text)
    predictions = write_predictions(
        tmp_path / "umlauts.jsonl", test_lines, (as_umlauts(text) for text in test_lines.values())
    )

    model = evaluate_predictions(fraktur["generic"], predictions)["model"]

    assert (model["char_edits"], model["grapheme_edits"]) == (2 * marks, marks)
    assert model["reference_graphemes"] == model["reference_chars"] - marks
    assert model["cer"] == pytest.approx(2 * marks / model["reference_chars"])
    assert model["grapheme_cer"] == pytest.approx(marks / (model["reference_chars"] - marks))


def test_predictions_are_normalised_as_the_references_were(fraktur, test_lines, tmp_path):
    # Decomposed (NFD) text with stray spaces, tabs and a line break reads as the same line.
    untidy = {
        line_id: " \t" + unicodedata.normalize("NFD", text).replace(" ", "  \n ") + "  "
        for line_id, text in test_lines.items()
    }
    assert any(untidy[line_id] != f" \t{text}  " for line_id, text in test_lines.items())
    predictions = write_predictions(tmp_path / "untidy.jsonl", untidy, untidy.values())

    assert evaluate_predictions(fraktur["trocr"], predictions)["model"]["char_edits"] == 0


def test_the_ocr_text_as_predictions_scores_exactly_the_cards_ocr_baseline(example_manifest, tmp_path):
    result = export(
        read_samples([example_manifest]),
        "trocr",
        batch_id="example",
        output_dir=tmp_path / "exports",
        split="train=0.5,test=0.5",
        progress=False,
    )
    records = [json.loads(line) for line in example_manifest.read_text(encoding="utf-8").splitlines()]
    test_ids = _references(Path(result.export_path), "test")
    predictions = predictions_file(
        tmp_path, [(record["id"], record["ocr_text"]) for record in records if record["id"] in test_ids]
    )

    figures = evaluate_predictions(result.export_path, predictions)

    baseline = result.read_manifest()["statistics"]["test"]["ocr_baseline"]
    assert baseline["char_edits"] > 0
    assert figures["ocr_baseline"] == baseline
    assert figures["model"] == baseline


def test_cli_prints_the_rates_beside_the_baseline_and_writes_json(example_manifest, tmp_path):
    succeeded(
        run_cli(
            "export", "--input", example_manifest, "--format", "generic", "--batch-id", "b1",
            "--output", tmp_path / "exports", "--split", "train=0.5,validation=0.5",
        )
    )  # fmt: skip
    batch = tmp_path / "exports" / "generic" / "b1"
    references = _references(batch, "validation")
    first = next(iter(references))
    predictions = predictions_file(
        tmp_path, [(line_id, "" if line_id == first else text) for line_id, text in references.items()]
    )

    completed = succeeded(run_cli("eval", batch, "--predictions", predictions, "--json", tmp_path / "eval.json"))

    figures = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert figures == json.loads(json.dumps(evaluate_predictions(batch, predictions)))
    assert figures["split"] == "validation"  # no test split: the validation split
    baseline, model = figures["ocr_baseline"], figures["model"]
    assert figures["worst_lines"][0]["id"] == first and len(figures["worst_lines"]) == 1
    lines = completed.stdout.splitlines()
    assert lines[0] == f"generic batch b1, split validation: {predictions}"
    assert lines[2].split() == [
        "predictions", f"{model['cer']:.2%}", f"{model['grapheme_cer']:.2%}", f"{model['wer']:.2%}", str(model["lines"])
    ]  # fmt: skip
    assert lines[3].split() == [
        "OCR", "baseline", f"{baseline['cer']:.2%}", f"{baseline['grapheme_cer']:.2%}", f"{baseline['wer']:.2%}",
        str(baseline["lines"]),
    ]  # fmt: skip
    assert "grapheme CER" in lines[1] and "code points" in completed.stdout
    assert f"    reference:  {references[first]}" in lines
    assert "    prediction: " in lines
    assert completed.stdout.rstrip().endswith(f"figures written to {tmp_path / 'eval.json'}")


def _references(batch: Path, split: str) -> dict[str, str]:
    import pyarrow.parquet as pq

    adapter = get_adapter(json.loads((batch / "manifest.json").read_text())["format"])
    return {
        row["id"]: adapter.transcription(row)
        for shard in sorted(batch.glob(f"data/{split}-*.parquet"))
        for row in pq.read_table(shard).to_pylist()
    }


def test_cli_names_missing_unknown_repeated_and_malformed_lines_with_their_line_numbers(fraktur, test_lines, tmp_path):
    ids = list(test_lines)
    train_id = next(iter(_references(fraktur["trocr"], "train")))
    predictions = predictions_file(
        tmp_path,
        [
            *((line_id, test_lines[line_id]) for line_id in ids[2:]),  # line 1 on
            (ids[3], "again"),  # repeats the prediction of line 2
            (train_id, "a train line"),
            ("no-such-line", "?"),
            "{not json",
            '["a list"]',
            json.dumps({"id": 7, "text": "x"}),
            json.dumps({"id": ids[0]}),
            "",  # blank lines are passed over
        ],
    )
    start = len(ids) - 2  # the line numbers after the predictions of ids[2:]

    stderr = failed_cleanly(run_cli("eval", fraktur["trocr"], "--predictions", predictions))

    assert f"{predictions}: 5 line(s) are not predictions" in stderr
    assert f"line {start + 1}: id {ids[3]!r} was predicted on line 2 already" in stderr
    assert f"line {start + 4}: not JSON" in stderr
    assert f"line {start + 5}: a JSON array, not an object" in stderr
    assert f"line {start + 6}: the id 7 is not a string" in stderr
    assert f"line {start + 7}: no text for id {ids[0]!r}" in stderr

    # Once every line is well formed, the ids are matched against the split.
    fixed = predictions_file(
        tmp_path,
        [*((line_id, test_lines[line_id]) for line_id in ids[2:]), (train_id, "a train line"), ("no-such-line", "?")],
        name="fixed.jsonl",
    )
    stderr = failed_cleanly(run_cli("eval", fraktur["trocr"], "--predictions", fixed, "--split", "test"))

    assert f"{fixed} does not match split 'test'" in stderr
    assert f"{train_id!r} (line {len(ids) - 1}, a line of split 'train')" in stderr
    assert f"'no-such-line' (line {len(ids)}, not in the batch)" in stderr
    assert f"2 of the {len(ids)} lines of split 'test' have no prediction" in stderr
    assert f"  - {ids[0]!r}\n  - {ids[1]!r}\n" in stderr
    # In the command's terms: its flag, not the Python keyword.
    assert "--split NAME" in stderr and "split (" not in stderr


def test_cli_names_the_splits_when_the_batch_has_no_test_or_validation_split(example_manifest, tmp_path):
    succeeded(
        run_cli("export", "--input", example_manifest, "--format", "trocr", "--batch-id", "only-train",
                "--output", tmp_path)
    )  # fmt: skip
    predictions = predictions_file(tmp_path, [("x", "y")])

    stderr = failed_cleanly(run_cli("eval", tmp_path / "trocr" / "only-train", "--predictions", predictions))
    assert "has neither a test nor a validation split (its splits: train (12 lines))" in stderr
    assert "--split NAME" in stderr

    stderr = failed_cleanly(
        run_cli("eval", tmp_path / "trocr" / "only-train", "--predictions", predictions, "--split", "test")
    )
    assert "has no split 'test' (its splits: train (12 lines))" in stderr

    stderr = failed_cleanly(
        run_cli("eval", tmp_path / "trocr" / "only-train", "--predictions", tmp_path / "none.jsonl", "--split", "train")
    )
    assert f"{tmp_path / 'none.jsonl'}: no such predictions file" in stderr


def test_worst_lines_stop_at_twenty_highest_cer_first(fraktur, tmp_path):
    train = _references(fraktur["trocr"], "train")
    assert len(train) > WORST_LINES
    predictions = write_predictions(tmp_path / "all-wrong.jsonl", train, ("#" + text[1:] for text in train.values()))

    figures = evaluate_predictions(fraktur["trocr"], predictions, "train")

    # One character misread on every line weighs most on the shortest lines: 1 / length.
    assert [line["cer"] for line in figures["worst_lines"]] == pytest.approx(
        sorted((1 / len(text) for text in train.values()), reverse=True)[:WORST_LINES]
    )
    assert figures["model"]["char_edits"] == len(train)


def test_cli_says_when_the_split_has_no_ocr_baseline(fraktur, test_lines, tmp_path):
    predictions = write_predictions(tmp_path / "perfect.jsonl", test_lines, test_lines.values())

    lines = succeeded(run_cli("eval", fraktur["generic"], "--predictions", predictions)).stdout.splitlines()

    assert lines[2].split() == ["predictions", "0.00%", "0.00%", "0.00%", str(len(test_lines))]
    assert lines[3] == "  OCR baseline  none: no sample of this split had an ocr_text"
    assert not any("worst lines" in line for line in lines)


def test_cli_names_lines_a_json_reader_would_misread_or_choke_on(fraktur, test_lines, tmp_path):
    # Read as the input manifest is: a repeated key is not silently taken at its last value, and
    # a number too long or a value nested too deep is a named line, not a traceback.
    line_id = next(iter(test_lines))
    predictions = predictions_file(
        tmp_path,
        [
            f'{{"id": "{line_id}", "text": "right", "text": "wrong"}}',
            f'{{"id": "{line_id}x", "text": "t", "score": {"9" * 5000}}}',
            f'{{"id": "{line_id}y", "text": "t", "deep": {"[" * 100_000}{"]" * 100_000}}}',
            json.dumps({"id": line_id + "z", "text": "ab\ud800cd"}),
        ],
    )

    stderr = failed_cleanly(run_cli("eval", fraktur["trocr"], "--predictions", predictions))

    assert f"{predictions}: 4 line(s) are not predictions" in stderr
    assert "line 1: the key 'text' twice in one object" in stderr
    assert "line 2: a number of 5,000 digits" in stderr
    assert "line 3: nested too deeply to read" in stderr
    assert "line 4: the text holds a lone surrogate (U+D800)" in stderr
    assert "Traceback" not in stderr


def test_cli_names_the_line_that_is_not_utf8(fraktur, test_lines, tmp_path):
    lines = [json.dumps({"id": line_id, "text": text}, ensure_ascii=False) for line_id, text in test_lines.items()]
    predictions = tmp_path / "latin1.jsonl"
    predictions.write_bytes("\n".join(lines).encode("utf-8") + '\n{"id": "x", "text": "ü"}\n'.encode("latin-1"))

    stderr = failed_cleanly(run_cli("eval", fraktur["trocr"], "--predictions", predictions))

    assert f"{predictions}:{len(lines) + 1} is not UTF-8 text (byte 0xFC at column 22)" in stderr


@pytest.mark.parametrize(
    ("manifest", "what"),
    [
        ('{"format": "trocr"}', "the key(s) splits are missing"),
        ("{not json", "is not JSON"),
        ("[]", "is not a JSON object"),
    ],
)
def test_cli_names_a_batch_whose_manifest_is_damaged(manifest, what, tmp_path):
    batch = tmp_path / "trocr" / "b1"
    batch.mkdir(parents=True)
    (batch / "manifest.json").write_text(manifest, encoding="utf-8")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text('{"id": "a", "text": "x"}\n', encoding="utf-8")

    stderr = failed_cleanly(run_cli("eval", batch, "--predictions", predictions))

    assert f"{batch / 'manifest.json'}" in stderr and what in stderr
    assert "ocr-datasets verify" in stderr
