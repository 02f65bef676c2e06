"""Real files' quirks the page sources must survive (issue #13): pages of another size than the
file declares, ALTO without SP, soft hyphens, two books' 0001.xml, folders holding several kinds,
files named .alto, empty files and draft-only tasks, file-level rejections counted in lines, text
only on words, and messages a user can act on. Every test builds the small file it needs, or
reads the Kant workspace the repository carries (tests/data)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageStat
from support.data import repo_copy

from ocr_datasets import CropOptions, SampleError, ValidationError, export, read_samples, validate, verify_batch
from ocr_datasets.sources import SourceNotice, guess_source

PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
RED = (220, 0, 0)


@pytest.fixture(scope="module")
def kant(tmp_path_factory) -> Path:
    """A writable copy of the OCR-D workspace's ``data`` folder (it holds mets.xml)."""
    return repo_copy("ocrd-kant-1784", tmp_path_factory) / "data"


def draw_page(path: Path, size=(400, 300), boxes: dict[tuple, tuple] | None = None) -> Path:
    """A top-to-bottom gradient (so no two lines' crops are alike), with filled ``boxes``."""
    page = Image.linear_gradient("L").resize(size).convert("RGB")
    for box, colour in (boxes or {}).items():
        ImageDraw.Draw(page).rectangle(box, fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path)
    return path


def box_points(left, top, right, bottom) -> str:
    return f"{left},{top} {right},{top} {right},{bottom} {left},{bottom}"


def page_line(line_id: str, box=(10, 10, 200, 40), text: str | None = "Zeile", inner: str = "") -> str:
    """A PAGE TextLine: ``text`` as its own TextEquiv (None: no TextEquiv), ``inner`` before it (words)."""
    equiv = f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv>" if text is not None else ""
    return f'<TextLine id="{line_id}"><Coords points="{box_points(*box)}"/>{inner}{equiv}</TextLine>'


def write_page(path: Path, image_name: str | None, lines: list[str], size=(400, 300)) -> Path:
    image = f' imageFilename="{image_name}"' if image_name is not None else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="{PAGE_2019}">
  <Metadata><Creator>test</Creator></Metadata>
  <Page{image} imageWidth="{size[0]}" imageHeight="{size[1]}">
    <TextRegion id="r1">{"".join(lines)}</TextRegion>
  </Page>
</PcGts>
""",
        encoding="utf-8",
    )
    return path


def write_alto(
    path: Path, lines: str, size=(400, 300), image_name: str = "scan.png", with_sp_elsewhere: bool = False
) -> Path:
    sp_line = (
        '<TextLine ID="other"><String CONTENT="a"/><SP/><String CONTENT="b"/></TextLine>' if with_sp_elsewhere else ""
    )
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">
  <Description><MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation><fileName>{image_name}</fileName></sourceImageInformation></Description>
  <Layout><Page ID="p1" WIDTH="{size[0]}" HEIGHT="{size[1]}"><PrintSpace>
    <TextBlock ID="b1">{lines}{sp_line}</TextBlock>
  </PrintSpace></Page></Layout>
</alto>
""",
        encoding="utf-8",
    )
    return path


def string(content: str, left: float, width: float, top: float = 10, height: float = 30) -> str:
    return f'<String CONTENT="{content}" HPOS="{left}" VPOS="{top}" WIDTH="{width}" HEIGHT="{height}"/>'


def alto_line(line_id: str, inner: str, box=(10, 10, 380, 30)) -> str:
    left, top, width, height = box
    return f'<TextLine ID="{line_id}" HPOS="{left}" VPOS="{top}" WIDTH="{width}" HEIGHT="{height}">{inner}</TextLine>'


def items_of(*args, **kwargs) -> list:
    return list(read_samples(*args, errors="report", **kwargs))


def notices_of(*args, **kwargs) -> tuple[list, list[str]]:
    """The items read and the text of every SourceNotice raised while reading them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = items_of(*args, **kwargs)
    return items, [str(warning.message) for warning in caught if issubclass(warning.category, SourceNotice)]


def decoded(sample) -> Image.Image:
    image = Image.open(io.BytesIO(sample.read_image_bytes()))
    image.load()
    return image


# --- 1. a page image of another size than the file declares ------------------------------------


def test_page_image_of_another_size_is_reported_once_for_the_file_with_its_line_count(tmp_path):
    draw_page(tmp_path / "scan.png", size=(400, 300))
    lines = [page_line(f"l{n}", (10, 10 + 40 * n, 300, 40 + 40 * n)) for n in range(3)]
    xml = write_page(tmp_path / "big.xml", "scan.png", lines, size=(800, 600))

    [problem] = items_of(xml, "page")

    assert isinstance(problem, SampleError) and problem.sample_id is None and problem.location == "big.xml"
    assert "image is 400×300, the file declares 800×600" in problem.problem
    assert problem.sample_count == 3
    assert "--scale-to-image" in problem.fix  # same aspect ratio: a scaled copy


def test_alto_page_size_is_checked_too(tmp_path):
    draw_page(tmp_path / "scan.png", size=(400, 300))
    xml = write_alto(tmp_path / "scan.xml", alto_line("l1", string("Wort", 10, 100)), size=(1200, 300))

    [problem] = items_of(xml, "alto")

    assert "image is 400×300, the file declares 1200×300" in problem.problem and problem.sample_count == 1
    # Another aspect ratio: not a scaled copy, so scaling is not offered and not done.
    assert "--scale-to-image" not in problem.fix and "aspect" in problem.fix
    [still] = items_of(xml, "alto", crop=CropOptions(scale_to_image=True))
    assert isinstance(still, SampleError) and "aspect ratio" in still.problem


def test_scale_to_image_cuts_the_line_from_a_scaled_copy(tmp_path):
    # Drawn on an 800x600 scan; the folder holds the 400x300 copy with the line's box in red.
    draw_page(tmp_path / "scan.png", size=(400, 300), boxes={(20, 30, 219, 59): RED})
    xml = write_page(tmp_path / "page.xml", "scan.png", [page_line("l1", (40, 60, 440, 120))], size=(800, 600))

    [sample] = read_samples(xml, "page", crop=CropOptions(scale_to_image=True))

    assert sample.polygon == ((20, 30), (220, 30), (220, 60), (20, 60))
    assert sample.metadata["polygon"] == [[20, 30], [220, 30], [220, 60], [20, 60]]
    assert sample.metadata["scaled_from"] == [800, 600]
    crop = decoded(sample).convert("RGB")
    assert crop.size == (200, 30) and ImageStat.Stat(crop).mean == list(RED)


def test_lines_drawn_on_a_photo_as_stored_are_not_cut_from_it_turned(tmp_path):
    # Stored 200x100 with EXIF orientation 6 (shown 100x200); the file declares the stored size,
    # so its coordinates do not fit the page as it is cut (upright).
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (200, 100), "white").save(tmp_path / "phone.jpg", exif=exif)
    xml = write_page(tmp_path / "phone.xml", "phone.jpg", [page_line("l1", (10, 10, 190, 40))], size=(200, 100))
    [problem] = items_of(xml, "page")
    assert "image is 100×200, the file declares 200×100" in problem.problem and "as stored" in problem.problem
    assert "EXIF orientation" in problem.fix


def test_a_downscaled_real_scan_is_caught_and_can_be_scaled(kant, tmp_path):
    # As with the Transkribus export whose JPEG had been halved: the lines were cut from the wrong place.
    workspace = tmp_path / "kant"
    (workspace / "OCR-D-IMG").mkdir(parents=True)
    (workspace / "OCR-D-GT-PAGE").mkdir()
    with Image.open(kant / "OCR-D-IMG" / "INPUT_0017.tif") as full:
        full.resize((full.width // 2, full.height // 2)).save(workspace / "OCR-D-IMG" / "INPUT_0017.tif")
    xml = workspace / "OCR-D-GT-PAGE" / "PAGE_0017_PAGE.xml"
    xml.write_bytes((kant / "OCR-D-GT-PAGE" / "PAGE_0017_PAGE.xml").read_bytes())
    (workspace / "mets.xml").write_bytes((kant / "mets.xml").read_bytes())

    [problem] = items_of(xml, "page")
    assert "image is 728×1041, the file declares 1457×2083" in problem.problem and problem.sample_count == 24

    full_size = {
        sample.id: decoded(sample).size
        for sample in read_samples(kant / "OCR-D-GT-PAGE" / "PAGE_0017_PAGE.xml", "page")
    }
    scaled = {
        sample.id: decoded(sample).size for sample in read_samples(xml, "page", crop=CropOptions(scale_to_image=True))
    }
    assert scaled.keys() == full_size.keys() and len(scaled) == 24
    for line_id, (width, height) in full_size.items():
        assert abs(scaled[line_id][0] - width / 2) <= 1.5 and abs(scaled[line_id][1] - height / 2) <= 1.5, line_id


# --- 2. ALTO without SP: spaces from the String boxes' gaps ---------------------------------------


def texts_by_line(folder: Path, source: str) -> dict[str, str]:
    """ "<page number>/<line id>" -> text: PAGE_0017_PAGE.xml and PAGE_0017_ALTO.xml name page 0017 alike."""
    return {
        f"{sample.metadata['document'].split('_')[1]}/{sample.metadata['line']}": sample.ground_truth
        for sample in read_samples(folder, source)
    }


def test_alto_without_sp_reads_like_page_on_the_real_pages(kant):
    page, alto = texts_by_line(kant / "OCR-D-GT-PAGE", "page"), texts_by_line(kant / "OCR-D-GT-ALTO", "alto")
    assert page.keys() == alto.keys() and len(page) == 55
    assert alto["0017/tl_1"] == "Berliniſche Monatsſchrift."  # was "Berliniſche Monatsſchrift ."
    differing = {line for line in page if page[line] != alto[line]}
    assert differing == {
        # The PAGE text has a space before the full stop that the print does not have: "1784."
        "0017/tl_2",
        # Likewise "Stuͤk ." and "December ." in the PAGE text; the print has "Stük. December."
        "0017/tl_3",
        # Likewise "bedienen ." in the PAGE text; printed "bedienen."
        "0017/tl_12",
        # Likewise "Menſchen ," in the PAGE text; printed "Menschen,"
        "0017/tl_20",
        # The ALTO box of "eine" ends where "Revolution" begins (HPOS 1009 + WIDTH 61 = 1070):
        # the boxes touch although the print has a space, so the ALTO reading is "eineRevolution".
        "0020/tl_6",
    }
    assert (page["0017/tl_2"], alto["0017/tl_2"]) == ("1784 .", "1784.")
    assert (page["0020/tl_6"], alto["0020/tl_6"]) == (
        "Aufklaͤrung gelangen. Durch eine Revolution wird",
        "Aufklaͤrung gelangen. Durch eineRevolution wird",
    )


def test_alto_gaps_make_spaces_touching_boxes_none(tmp_path):
    draw_page(tmp_path / "scan.png")
    # Line height 30: a gap of 3 pixels (a tenth of it) or less is no space, 5 pixels are one.
    inner = (
        string("Guten", 10, 80)
        + string("Tag", 100, 50)
        + string(",", 150, 5)
        + string("sagt", 165, 40)
        + string("er", 210, 20)
        + string(".", 233, 4)
    )
    xml = write_alto(tmp_path / "scan.xml", alto_line("l1", inner))
    [sample] = read_samples(xml, "alto")
    assert sample.ground_truth == "Guten Tag, sagt er."


def test_alto_strings_that_all_carry_the_line_box_are_joined_by_spaces(tmp_path):
    # eScriptorium-style: every String has the line's box, so the gaps say nothing.
    draw_page(tmp_path / "scan.png")
    inner = "".join(string(word, 10, 300) for word in ("Guten", "Tag", "allerseits"))
    xml = write_alto(tmp_path / "scan.xml", alto_line("l1", inner))
    [sample] = read_samples(xml, "alto")
    assert sample.ground_truth == "Guten Tag allerseits"


def test_alto_strings_without_boxes_are_joined_by_spaces(tmp_path):
    draw_page(tmp_path / "scan.png")
    xml = write_alto(tmp_path / "scan.xml", alto_line("l1", '<String CONTENT="Guten"/><String CONTENT="Tag"/>'))
    [sample] = read_samples(xml, "alto")
    assert sample.ground_truth == "Guten Tag"


def test_alto_with_sp_elements_follows_them_not_the_gaps(tmp_path):
    draw_page(tmp_path / "scan.png")
    # Far apart but without an SP between them: the file says they are one word.
    inner = string("Zusammen", 10, 100) + string("geschrieben", 200, 100)
    xml = write_alto(tmp_path / "scan.xml", alto_line("l1", inner), with_sp_elsewhere=True)
    first, _ = read_samples(xml, "alto")
    assert first.ground_truth == "Zusammengeschrieben"


# --- 3. soft hyphens ----------------------------------------------------------------------------


def test_soft_hyphen_at_the_line_end_becomes_the_printed_hyphen(tmp_path):
    draw_page(tmp_path / "scan.png")
    lines = alto_line("hyp", string("Sil", 10, 60) + '<HYP CONTENT="\u00ad"/>', box=(10, 10, 380, 30))
    lines += alto_line("in-string", string("tren\u00ad", 10, 60, top=50), box=(10, 50, 380, 30))
    lines += alto_line("plain", string("nung", 10, 60, top=90) + '<HYP CONTENT="-"/>', box=(10, 90, 380, 30))
    xml = write_alto(tmp_path / "scan.xml", lines)
    assert [sample.ground_truth for sample in read_samples(xml, "alto")] == ["Sil-", "tren-", "nung-"]


# --- 4. the same file name in two folders -------------------------------------------------------


def test_two_books_with_the_same_file_names_never_collide(tmp_path):
    for book in ("bookA", "bookB"):
        draw_page(
            tmp_path / "corpus" / book / "0001.png", boxes={(10, 10, 20, 20): RED if book == "bookA" else (0, 0, 220)}
        )
        write_page(tmp_path / "corpus" / book / "0001.xml", "0001.png", [page_line("l1", text=f"Zeile aus {book}")])

    samples = list(read_samples(tmp_path / "corpus", "page"))

    assert [sample.id for sample in samples] == ["bookA/0001_l1", "bookB/0001_l1"]
    assert [sample.metadata["document"] for sample in samples] == ["bookA/0001", "bookB/0001"]
    assert [sample.source for sample in samples] == ["bookA/0001.xml:l1", "bookB/0001.xml:l1"]
    report = validate(samples)
    assert report.counts == {"input": 2, "exported": 2, "rejected": 0, "duplicates": 0}
    # A file given on its own keeps the id of its stem.
    [alone] = read_samples(tmp_path / "corpus" / "bookA" / "0001.xml", "page")
    assert (alone.id, alone.metadata["document"]) == ("0001_l1", "0001")


def test_errors_of_files_in_subfolders_name_their_path_below_the_input(tmp_path):
    write_page(tmp_path / "corpus" / "bookA" / "0001.xml", "missing.png", [page_line("l1")])
    [problem] = items_of(tmp_path / "corpus", "page")
    assert problem.location == "bookA/0001.xml"


# --- 5. a folder holding several kinds ----------------------------------------------------------


def test_a_folder_holding_lines_and_page_files_asks_for_from_naming_each_kind(tmp_path):
    for name in ("a", "b"):
        draw_page(tmp_path / "mixed" / f"{name}.png", size=(100, 20))
        (tmp_path / "mixed" / f"{name}.gt.txt").write_text("Zeile\n", encoding="utf-8")
    write_page(tmp_path / "mixed" / "pages" / "p1.xml", "p1.png", [page_line("l1")])

    with pytest.raises(ValueError) as raised:
        list(read_samples(tmp_path / "mixed"))

    message = str(raised.value)
    assert "2 .gt.txt lines" in message and "1 PAGE file" in message and "--from" in message


def test_line_metadata_json_does_not_make_a_line_folder_ambiguous(tmp_path):
    draw_page(tmp_path / "lines" / "a.png", size=(100, 20))
    (tmp_path / "lines" / "a.gt.txt").write_text("Zeile\n", encoding="utf-8")
    (tmp_path / "lines" / "a.json").write_text('{"writer": "A"}', encoding="utf-8")
    assert guess_source(tmp_path / "lines") == "gt-folder"


# --- 6. files recognised by their root element --------------------------------------------------


def test_alto_and_page_files_with_their_own_suffixes_are_read(tmp_path):
    draw_page(tmp_path / "scan.png")
    alto = write_alto(tmp_path / "scan.alto", alto_line("l1", string("Wort", 10, 100)))
    assert guess_source(alto) == "alto"
    assert [sample.ground_truth for sample in read_samples(alto)] == ["Wort"]

    folder = tmp_path / "pages"
    draw_page(folder / "scan.png")
    write_page(folder / "one.page", "scan.png", [page_line("l1", text="eins")])
    write_page(folder / "two.xml", "scan.png", [page_line("l1", (10, 50, 200, 80), text="zwei")])
    assert guess_source(folder) == "page"
    assert [sample.ground_truth for sample in read_samples(folder)] == ["eins", "zwei"]


def test_files_skipped_in_a_folder_are_named_unless_skipping_them_is_normal(tmp_path):
    folder = tmp_path / "pages"
    draw_page(folder / "scan.png")
    write_page(folder / "good.xml", "scan.png", [page_line("l1")])
    (folder / "mets.xml").write_text(
        '<mets:mets xmlns:mets="http://www.loc.gov/METS/"/>', encoding="utf-8"
    )  # normal: another kind
    (folder / "notes.page").write_text("<html><body>not PAGE</body></html>", encoding="utf-8")  # named .page but is not
    (folder / "broken.xml").write_text("Zeile ohne XML", encoding="utf-8")  # an .xml that is no XML at all
    (folder / "blank.xml").write_bytes(b"")  # holds nothing to lose
    (folder / "cut.xml").write_text(
        f'<PcGts xmlns="{PAGE_2019}"><Page imageFilename="scan.png"><TextRegion', encoding="utf-8"
    )

    items, notices = notices_of(folder, "page")

    samples = [item for item in items if not isinstance(item, SampleError)]
    problems = {item.location: item.problem for item in items if isinstance(item, SampleError)}
    assert [sample.id for sample in samples] == ["good_l1"]
    # A PAGE file cut short, and an .xml file that is not XML: either may have held lines.
    assert set(problems) == {"broken.xml", "cut.xml"}
    assert "not well-formed XML" in problems["cut.xml"] and "not XML" in problems["broken.xml"]
    [summary] = notices
    assert "notes.page (named .page, but its root element is <html>, not <PcGts>)" in summary
    assert "blank.xml (empty)" in summary
    assert "mets.xml" not in summary and "scan.png" not in summary


# --- 7. what was read, and what holds nothing ---------------------------------------------------


def test_a_page_file_without_lines_is_a_notice_not_a_missing_image(tmp_path):
    folder = tmp_path / "pages"
    draw_page(folder / "scan.png")
    write_page(folder / "a-lines.xml", "scan.png", [page_line("l1")])
    write_page(folder / "b-empty.xml", "nowhere.png", [])

    items, notices = notices_of(folder, "page")

    assert [type(item).__name__ for item in items] == ["CroppedSample"]
    [summary] = notices
    assert "2 PAGE files" in summary and "1 line" in summary and "b-empty.xml" in summary and "no TextLine" in summary


def test_a_label_studio_task_with_only_a_draft_is_named(tmp_path):
    draw_page(tmp_path / "images" / "page.png")
    box = {"x": 5, "y": 5, "width": 50, "height": 10, "rotation": 0}
    region = {"id": "r1", "type": "rectangle", "original_width": 400, "original_height": 300, "value": box}
    textarea = {**region, "type": "textarea", "value": {**region["value"], "text": ["Zeile"]}}
    annotated = {
        "id": 1,
        "data": {"image": "/data/upload/1/page.png"},
        "annotations": [{"id": 10, "result": [region, textarea]}],
    }
    drafted = {
        "id": 2,
        "data": {"image": "/data/upload/1/page.png"},
        "annotations": [],
        "drafts": [{"id": 20, "result": [region, textarea]}],
    }
    untouched = {"id": 3, "data": {"image": "/data/upload/1/page.png"}, "annotations": []}
    export_file = tmp_path / "project.json"
    export_file.write_text(json.dumps([annotated, drafted, untouched]), encoding="utf-8")

    items, notices = notices_of(export_file, "label-studio", image_dir=tmp_path / "images")

    assert [item.id for item in items] == ["1-r1"]
    [summary] = notices
    assert "3 tasks" in summary and "1 line" in summary
    assert "task 2 (only a draft" in summary and "task 3 (no annotation" in summary


# --- 8. file-level rejections count their lines -------------------------------------------------


def test_a_rejected_file_counts_its_lines_in_the_input_and_rejected_counts(tmp_path):
    folder = tmp_path / "pages"
    draw_page(folder / "scan.png")
    write_page(folder / "found.xml", "scan.png", [page_line("l1"), page_line("l2", (10, 50, 200, 80))])
    write_page(
        folder / "lost.xml", "lost.png", [page_line(f"l{n}", (10, 10 + 40 * n, 200, 40 + 40 * n)) for n in range(3)]
    )

    report = validate(read_samples(folder, "page", errors="report"))

    assert report.counts == {"input": 5, "exported": 2, "rejected": 3, "duplicates": 0}
    [result] = [
        export(
            read_samples(folder, "page", errors="report"),
            "generic",
            batch_id="b",
            output_dir=tmp_path / "out",
            skip_invalid=True,
            progress=False,
        )
    ]
    counts = result.read_manifest()["counts"]
    assert counts == {"input": 5, "exported": 2, "rejected": 3, "duplicates": 0}
    assert counts["input"] == counts["exported"] + counts["rejected"] + counts["duplicates"]
    [record] = [
        json.loads(line)
        for line in (Path(result.export_path) / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert (record["location"], record["samples"]) == ("lost.xml", 3)
    assert verify_batch(result.export_path) == []
    with pytest.raises(ValidationError, match="3 of 5 samples are not valid"):
        export(
            read_samples(folder, "page", errors="report"),
            "generic",
            batch_id="c",
            output_dir=tmp_path / "out",
            progress=False,
        )


# --- 9. text only on words, or only as PlainText ------------------------------------------------


def test_line_text_falls_back_to_its_words_then_to_plain_text(tmp_path):
    draw_page(tmp_path / "scan.png")
    words = "".join(
        f'<Word id="w{n}"><Coords points="{box_points(10 + 60 * n, 10, 60 + 60 * n, 40)}"/>'
        f"<TextEquiv><Unicode>{word}</Unicode></TextEquiv></Word>"
        for n, word in enumerate(("Guten", "Tag"))
    )
    plain = "<TextEquiv><PlainText>nur Klartext</PlainText><Unicode></Unicode></TextEquiv>"
    lines = [
        page_line("own", text="eigener Text", inner=words),
        page_line("words", (10, 50, 200, 80), text=None, inner=words),
        page_line("plain", (10, 90, 200, 120), text=None, inner=plain),
    ]
    xml = write_page(tmp_path / "page.xml", "scan.png", lines)

    own, from_words, from_plain = read_samples(xml, "page")

    assert (own.ground_truth, "text_from" in own.metadata) == ("eigener Text", False)
    assert (from_words.ground_truth, from_words.metadata["text_from"]) == ("Guten Tag", "words")
    assert (from_plain.ground_truth, from_plain.metadata["text_from"]) == ("nur Klartext", "plain_text")


# --- 10.-12. messages a user can act on ---------------------------------------------------------


def test_an_images_folder_that_does_not_exist_or_is_a_file_is_refused_first(tmp_path):
    draw_page(tmp_path / "scan.png")
    xml = write_page(tmp_path / "page.xml", "scan.png", [page_line("l1")])
    with pytest.raises(FileNotFoundError, match=r"images folder.*nowhere"):
        list(read_samples(xml, "page", image_dir=tmp_path / "nowhere"))
    with pytest.raises(NotADirectoryError, match=r"images folder.*scan\.png"):
        list(read_samples(xml, "page", image_dir=tmp_path / "scan.png"))


def test_an_image_name_that_differs_only_in_case_is_found_and_noted(tmp_path):
    draw_page(tmp_path / "scans" / "AletheiaExamplePage.jpg")
    xml = write_page(tmp_path / "xml" / "page.xml", "aletheiaexamplepage.jpg", [page_line("l1")])

    items, notices = notices_of(xml, "page", image_dir=tmp_path / "scans")

    [sample] = items
    assert Path(sample.page_image).name == "AletheiaExamplePage.jpg"
    [summary] = notices
    assert "aletheiaexamplepage.jpg" in summary and "AletheiaExamplePage.jpg" in summary and "case" in summary


def test_a_file_naming_no_image_lists_the_names_tried(tmp_path):
    xml = write_page(tmp_path / "page.xml", None, [page_line("l1")])
    [problem] = items_of(xml, "page")
    assert "names no page image" in problem.problem
    assert "page.png" in problem.problem and "page.tif" in problem.problem and "page.jpg" in problem.problem


def test_a_folder_holding_a_manifest_says_to_give_the_manifest_as_a_file(tmp_path):
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "samples.jsonl").write_text(
        '{"id": "a", "image_path": "a.png", "ground_truth": "x"}\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"samples\.jsonl.*as a file"):
        list(read_samples(tmp_path / "batch"))


def test_a_json_file_holding_jsonl_is_read_as_a_manifest(tmp_path):
    draw_page(tmp_path / "a.png", size=(100, 20))
    records = [
        {"id": "a", "image_path": "a.png", "ground_truth": "eins"},
        {"id": "b", "image_path": "a.png", "ground_truth": "zwei"},
    ]
    manifest = tmp_path / "samples.json"
    manifest.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    assert guess_source(manifest) == "jsonl"
    assert [sample.ground_truth for sample in read_samples(manifest)] == ["eins", "zwei"]
    # A Label Studio export (a list of tasks) stays one.
    (tmp_path / "export.json").write_text('[\n {"id": 1, "data": {}}\n]', encoding="utf-8")
    assert guess_source(tmp_path / "export.json") == "label-studio"
