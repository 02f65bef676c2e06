"""Every rejection carries stable machine-readable codes: each code is registered once in
ocr_datasets/problems.py, documented in docs/validation.md, used by the package only through its
constant, and given by validation and the sources for the problems they find."""

from __future__ import annotations

import ast
import json
import pickle
import re
from pathlib import Path

import pytest
from PIL import Image
from test_source_label_studio import project, read_project  # noqa: F401 (project: a fixture)
from test_source_page_alto import draw_page, one_line_region, write_page_xml
from test_validation import corpus, png_bytes  # noqa: F401 (corpus: a fixture)

from ocr_datasets import SampleError, TrainingSample, export, problems, read_manifest, read_samples, validate
from ocr_datasets.problems import PROBLEM_CODES, Problem

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ocr_datasets"
REGISTRY = PACKAGE / "problems.py"
TABLE_ROW = re.compile(r"^\| `(?P<code>[^`]+)` \| (?P<meaning>.+) \|$", re.MULTILINE)


def package_modules() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py")) if path != REGISTRY
    }


def test_the_docs_list_exactly_the_registered_codes_with_their_meanings():
    documented = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8").split("## Problem codes", 1)[1]
    assert {row["code"]: row["meaning"] for row in TABLE_ROW.finditer(documented)} == PROBLEM_CODES


def test_codes_are_dotted_lower_case_and_registered_once():
    assert all(re.fullmatch(r"[a-z_]+\.[a-z_0-9]+", code) for code in PROBLEM_CODES), PROBLEM_CODES
    registered = [
        node
        for node in ast.walk(ast.parse(REGISTRY.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_code"
    ]
    assert len(registered) == len(PROBLEM_CODES), "a code is registered twice in ocr_datasets/problems.py"


def test_the_package_uses_every_code_and_only_through_its_constant():
    constants = {name for name, value in vars(problems).items() if isinstance(value, str) and value in PROBLEM_CODES}
    assert len(constants) == len(PROBLEM_CODES)
    used: set[str] = set()
    for path, module in package_modules().items():
        for node in ast.walk(module):
            if isinstance(node, ast.Name):
                used.add(node.id)
            # A literal would bypass the registry: a typo in it would be a code no document names.
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in PROBLEM_CODES, (
                    f"{path.relative_to(ROOT)}:{node.lineno} writes the code {node.value!r}: use its constant"
                )
            if isinstance(node, ast.keyword) and node.arg == "code":
                assert not isinstance(node.value, ast.Constant), (
                    f"{path.relative_to(ROOT)}:{node.value.lineno} gives a code as a literal: register it"
                )
    assert constants - used == set(), "registered codes nothing in the package gives"


def test_a_sample_error_that_names_no_code_is_an_unreadable_input():
    assert SampleError("a", "is odd", "make it even").codes == (problems.INPUT_UNREADABLE,)


# The codes of the bad corpus of test_validation.py, by rejected id.
BAD_CORPUS_CODES = {
    "missing-file": "image.not_found",
    "directory": "image.not_regular_file",
    "zero-bytes": "image.empty",
    "truncated-png": "image.damaged",
    "truncated-jpeg": "image.damaged",
    "text-as-png": "image.not_an_image",
    "jpeg-named-png": "image.misnamed",
    "bomb": "image.decompression_bomb",
    "one-pixel": "image.too_small",
    "empty-text": "text.empty",
    "whitespace-text": "text.empty",
    "missing-text": "text.missing",
    "control-characters": "text.control_character",
    "nan-confidence": "confidence.out_of_range",
    "negative-confidence": "confidence.out_of_range",
    "confidence-above-one": "confidence.out_of_range",
    "text-confidence": "confidence.not_number",
    "list-metadata": "metadata.not_object",
    "string-metadata": "metadata.not_object",
    "good-0": "id.repeated",
    "conflict-a": "duplicate.conflict",
    "conflict-b": "duplicate.conflict",
}


# corpus: the fixture imported above, which pyflakes takes for a redefinition (F811).
def test_validation_gives_each_rejection_the_code_of_its_problem(corpus):  # noqa: F811
    samples, _, reasons, _ = corpus
    assert set(BAD_CORPUS_CODES) == set(reasons)
    report = validate(samples)
    assert {error.sample_id: error.codes for error in report.rejected} == {
        sample_id: (code,) for sample_id, code in BAD_CORPUS_CODES.items()
    }


def test_a_sample_with_several_problems_has_one_code_per_problem_in_the_order_of_the_text(tmp_path):
    sample = TrainingSample(id=" ", image_path=tmp_path / "nowhere.png", ground_truth=None, ocr_confidence="hoch")
    [error] = validate([sample]).rejected
    assert error.codes == ("id.empty", "text.missing", "confidence.not_number", "image.not_found")
    assert len(error.problem.split("; ")) == len(error.codes) == len(error.fix.split("; "))


def deeply_nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (dict(id=7), "id.not_string"),
        (dict(id="zeile\udc9f"), "id.lone_surrogate"),
        (dict(ground_truth=b"Zeile"), "text.not_string"),
        (dict(ocr_text="Ze\ud800ile"), "text.lone_surrogate"),
        (dict(metadata={1: "page"}), "metadata.key_not_string"),
        (dict(metadata={"page": float("inf")}), "metadata.not_json"),
        (dict(metadata={"writer": "\udcfc"}), "metadata.lone_surrogate"),
        (dict(metadata={"a": deeply_nested(40)}), "metadata.too_deep"),
        (dict(image_path=None), "image.missing"),
        (dict(image_path=7), "image.path_invalid"),
        (dict(image_bytes="not bytes"), "image_bytes.not_bytes"),
    ],
)
def test_each_field_problem_has_its_code(tmp_path, fields, code):
    image = tmp_path / "line.png"
    image.write_bytes(png_bytes())
    sample = TrainingSample(**{"id": "line", "image_path": image, "ground_truth": "Zeile", **fields})
    assert [error.codes for error in validate([sample]).rejected] == [(code,)]


def test_a_sample_without_the_group_key_has_its_code(tmp_path):
    samples = [
        TrainingSample(
            id=f"line-{shade}", image_path=tmp_path / f"{shade}.png", ground_truth="Zeile", metadata=metadata
        )
        for shade, metadata in ((0, {"page": 1}), (1, {}))
    ]
    for shade in (0, 1):
        (tmp_path / f"{shade}.png").write_bytes(png_bytes(shade=shade))
    assert [error.codes for error in validate(samples, group_by="page").rejected] == [("metadata.group_key_missing",)]


def test_a_multi_frame_image_has_its_code(tmp_path):
    frames = [Image.new("L", (60, 20), shade) for shade in (0, 255)]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    [error] = validate([TrainingSample(id="line", image_path=tmp_path / "pages.tif", ground_truth="Zeile")]).rejected
    assert error.codes == ("image.multi_frame",)


def test_manifest_records_that_cannot_be_read_have_their_codes(tmp_path):
    (tmp_path / "line.png").write_bytes(png_bytes())
    records = {
        "{": "manifest.json_invalid",
        '{"id": "a", "id": "b"}': "manifest.key_repeated",
        '{"id": "a", "ocr_confidence": 1' + "0" * 5000 + "}": "manifest.number_too_long",
        "[1, 2]": "manifest.not_object",
        '{"id": "a", "image_path": "line.png", "ground_truth": "x", "page": 3}': "manifest.unknown_field",
        '{"image_path": "line.png", "ground_truth": "x"}': "id.missing",
        '{"id": [1], "image_path": "line.png", "ground_truth": "x"}': "id.not_string",
        '{"id": "a", "ground_truth": "x"}': "image.missing",
        '{"id": "a", "image_base64": "aGFsbG8=", "ground_truth": "x"}': "image.not_data_url",
        '{"id": "a", "image_path": "gone.png", "ground_truth": "x"}': "image.not_found",
        '{"id": "a", "metadata": ' + "[" * 5000 + "]" * 5000 + "}": "metadata.too_deep",
    }
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text("\n".join(records) + "\n", encoding="utf-8")
    assert [item.codes for item in read_manifest(manifest, errors="report")] == [(code,) for code in records.values()]

    table = tmp_path / "samples.csv"
    table.write_text("id,image_path,ground_truth,metadata\na,line.png,x\nb,line.png,x,{broken\n", encoding="utf-8")
    assert [item.codes for item in read_manifest(table, errors="report")] == [
        ("manifest.cell_count",),
        ("manifest.json_invalid",),
    ]


def test_line_folder_problems_have_their_codes(tmp_path):
    for name in ("alone.png", "two.png", "meta.png"):
        (tmp_path / name).write_bytes(png_bytes())
    (tmp_path / "textless.gt.txt").write_text("Zeile\n", encoding="utf-8")
    (tmp_path / "two.gt.txt").write_text("eins\nzwei\n", encoding="utf-8")
    (tmp_path / "meta.gt.txt").write_text("Zeile\n", encoding="utf-8")
    (tmp_path / "meta.yml").write_text("- a list\n", encoding="utf-8")
    (tmp_path / "latin1.gt.txt").write_bytes("Straße".encode("latin-1"))
    (tmp_path / "latin1.png").write_bytes(png_bytes(shade=3))
    items = {item.sample_id: item.codes for item in read_samples(tmp_path, "gt-folder", errors="report")}
    assert items == {
        "alone": ("line.no_text",),
        "latin1": ("line.text_unreadable",),
        "meta": ("line.metadata_invalid",),
        "textless": ("line.no_image",),
        "two": ("line.several_lines",),
    }


def test_page_file_problems_have_their_codes(tmp_path):
    draw_page(tmp_path / "page.png")
    write_page_xml(tmp_path / "missing.xml", "elsewhere.png", one_line_region("10,10 100,10 100,40 10,40"))
    write_page_xml(tmp_path / "resized.xml", "page.png", one_line_region("10,10 100,10 100,40 10,40"), size=(300, 300))
    (tmp_path / "broken.xml").write_text(
        '<?xml version="1.0"?><PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"><Page>',
        encoding="utf-8",
    )
    write_page_xml(tmp_path / "outside.xml", "page.png", one_line_region("1000,1000 1100,1000 1100,1030 1000,1030"))
    items = list(read_samples(tmp_path, "page", errors="report"))
    assert {item.location: item.codes for item in items if isinstance(item, SampleError)} == {
        "broken.xml": ("page.unreadable",),
        "missing.xml": ("page.image_not_found",),
        "resized.xml": ("page.size_mismatch",),
    }
    [outside] = validate(item for item in items if not isinstance(item, SampleError)).rejected
    assert outside.codes == ("crop.too_small",)


def test_label_studio_problems_have_their_codes(project):  # noqa: F811 (project: the fixture imported above)
    codes = {
        sample_id: item.codes for sample_id, item in read_project(project).items() if isinstance(item, SampleError)
    }
    assert codes == {"1-untranscribed": ("region.no_text",), "3-far": ("page.image_not_found",)}


# corpus: the fixture imported above (F811 as above).
def test_rejected_jsonl_lists_the_codes_of_every_rejection(corpus, tmp_path):  # noqa: F811
    samples, _, _, _ = corpus
    result = export(
        samples, "generic", batch_id="b1", output_dir=tmp_path / "exports", skip_invalid=True, progress=False
    )
    listed = [
        json.loads(line)
        for line in (Path(result.export_path) / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {record["id"]: record["codes"] for record in listed} == {
        sample_id: [code] for sample_id, code in BAD_CORPUS_CODES.items()
    }


def test_a_sample_error_survives_the_trip_from_a_worker_process():
    # Pickled by multiprocessing when a worker raises it; unpicklable, it hung the pool.
    error = SampleError.from_problems(
        "a",
        [Problem("image.too_small", "too small", "crop more"), Problem("id.empty", "no id", "give one")],
        location="x.jsonl:3",
    )
    error.sample_count = 4
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.sample_id, copy.problem, copy.fix, copy.codes, copy.location, copy.sample_count, str(copy)) == (
        error.sample_id,
        error.problem,
        error.fix,
        error.codes,
        error.location,
        error.sample_count,
        str(error),
    )
