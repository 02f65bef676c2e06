"""The CLI reads every source kind: repeated --input, --from guessed or named, --images."""

from __future__ import annotations

import json
import shutil

from support.cli import run_cli
from support.data import REPO_DATA

KANT = REPO_DATA / "ocrd-kant-1784" / "data"


def export(*args: str):
    return run_cli("export", "--format", "generic", "--quiet", *args)


def exported_ids(batch) -> list[str]:
    return [json.loads(line)["id"] for line in (batch / "data.jsonl").read_text(encoding="utf-8").splitlines()]


def test_two_page_files_given_as_repeated_inputs_are_guessed_and_cut(tmp_path):
    workspace = shutil.copytree(KANT, tmp_path / "kant")
    pages = sorted((workspace / "OCR-D-GT-PAGE").glob("*.xml"))
    completed = export(
        *(argument for page in pages for argument in ("--input", page)),
        "--output",
        tmp_path / "out",
        "--batch-id",
        "kant",
    )
    assert completed.returncode == 0, completed.stderr
    ids = exported_ids(tmp_path / "out" / "generic" / "kant")
    assert len(ids) == 55 and ids[0].startswith("PAGE_0017_PAGE_") and ids[-1].startswith("PAGE_0020_PAGE_")


def test_alto_pages_with_padding_and_masking_from_a_folder(tmp_path):
    workspace = shutil.copytree(KANT, tmp_path / "kant")
    completed = export(
        "--input",
        workspace / "OCR-D-GT-ALTO",
        "--from",
        "alto",
        "--crop-padding",
        "3",
        "--mask-outside",
        "--output",
        tmp_path / "out",
        "--batch-id",
        "alto",
    )
    assert completed.returncode == 0, completed.stderr
    manifest = json.loads((tmp_path / "out" / "generic" / "alto" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["exported"] == 55


def test_a_page_whose_image_is_elsewhere_needs_images_and_says_so(tmp_path):
    page = shutil.copy(KANT / "OCR-D-GT-PAGE" / "PAGE_0017_PAGE.xml", tmp_path / "page.xml")
    images = shutil.copytree(KANT / "OCR-D-IMG", tmp_path / "scans")
    missing = export("--input", page, "--output", tmp_path / "out", "--batch-id", "p")
    assert missing.returncode == 2 and "--images" in missing.stderr
    found = export("--input", page, "--images", images, "--output", tmp_path / "out", "--batch-id", "p")
    assert found.returncode == 0, found.stderr
    assert len(exported_ids(tmp_path / "out" / "generic" / "p")) == 24


def test_a_folder_holding_both_page_and_alto_asks_for_from(tmp_path):
    workspace = shutil.copytree(KANT, tmp_path / "kant")
    completed = export("--input", workspace, "--output", tmp_path / "out")
    assert completed.returncode == 2 and "--from" in completed.stderr
