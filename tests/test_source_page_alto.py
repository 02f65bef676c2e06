"""PAGE XML and ALTO sources: real OCR-D pages (Kant 1784) and small pages drawn here, read line by
line into crops with their own texts, in reading order, with images found the way OCR-D finds them."""

from __future__ import annotations

import io
import math
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import datasets
import pytest
from PIL import Image, ImageDraw
from support.data import REPO_DATA, repo_copy

from ocr_datasets import CropOptions, SampleError, export_all, read_samples, validate
from ocr_datasets.adapters import FORMAT_NAMES, get_adapter

KANT = REPO_DATA / "ocrd-kant-1784"
PAGE_2019 = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"
ALTO_2 = "{http://www.loc.gov/standards/alto/ns-v2#}"
LINES_PER_PAGE = {"0017": 24, "0020": 31}


@pytest.fixture(scope="module")
def kant(tmp_path_factory) -> Path:
    """A private copy of the OCR-D workspace (its ``data`` folder, which holds mets.xml)."""
    return repo_copy(KANT.name, tmp_path_factory) / "data"


def decoded(sample) -> Image.Image:
    image = Image.open(io.BytesIO(sample.read_image_bytes()))
    image.load()
    return image


def clipped_box(polygon, page_size) -> tuple[int, int, int, int]:
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    width, height = page_size
    return (
        max(0, math.floor(min(xs))),
        max(0, math.floor(min(ys))),
        min(width, math.ceil(max(xs))),
        min(height, math.ceil(max(ys))),
    )


# --- the real workspace ---------------------------------------------------------------------


def expected_page_lines(page_file: Path) -> list[tuple[str, str]]:
    """(line id, text) read independently of the source: the regions of the OrderedGroup by
    index, their TextLines, each line's own TextEquiv/Unicode."""
    page = ET.parse(page_file).getroot().find(f"{PAGE_2019}Page")
    refs = page.findall(f"{PAGE_2019}ReadingOrder/{PAGE_2019}OrderedGroup/{PAGE_2019}RegionRefIndexed")
    regions = {region.get("id"): region for region in page.iter(f"{PAGE_2019}TextRegion")}
    assert len(refs) == len(regions), "the Kant pages name every region in their reading order"
    lines = []
    for ref in sorted(refs, key=lambda ref: int(ref.get("index"))):
        for line in regions[ref.get("regionRef")].findall(f"{PAGE_2019}TextLine"):
            lines.append((line.get("id"), line.find(f"{PAGE_2019}TextEquiv/{PAGE_2019}Unicode").text))
    return lines


def expected_alto_line_ids(alto_file: Path) -> list[str]:
    return [line.get("ID") for line in ET.parse(alto_file).getroot().iter(f"{ALTO_2}TextLine")]


def test_page_lines_are_their_own_text_equiv_in_reading_order(kant):
    # The whole workspace: mets.xml and the ALTO files beside the PAGE files are not PAGE.
    samples = list(read_samples(kant, "page"))
    expected = []
    for number in LINES_PER_PAGE:
        stem = f"PAGE_{number}_PAGE"
        # Ids name the file by its path below the input folder (the workspace's data/).
        expected += [
            (f"OCR-D-GT-PAGE/{stem}_{line_id}", text)
            for line_id, text in expected_page_lines(kant / "OCR-D-GT-PAGE" / f"{stem}.xml")
        ]
    assert len(samples) == sum(LINES_PER_PAGE.values()) == 55
    assert [(sample.id, sample.ground_truth) for sample in samples] == expected
    first = samples[0]
    assert first.metadata == {
        "document": "OCR-D-GT-PAGE/PAGE_0017_PAGE",
        "page": "INPUT_0017.tif",
        "region": "r_1_1",
        "line": "tl_1",
        "polygon": [[114, 366], [918, 366], [918, 438], [114, 438]],
    }
    assert first.source == "OCR-D-GT-PAGE/PAGE_0017_PAGE.xml:tl_1"


def test_page_images_are_found_relative_to_the_mets_folder(kant):
    # imageFilename="OCR-D-IMG/INPUT_0017.tif" does not resolve beside the XML, only from data/.
    assert not (kant / "OCR-D-GT-PAGE" / "OCR-D-IMG").exists()
    images = {
        (sample.metadata["document"], Path(sample.page_image))
        for sample in read_samples(kant / "OCR-D-GT-PAGE", "page")
    }
    assert images == {(f"PAGE_{number}_PAGE", kant / "OCR-D-IMG" / f"INPUT_{number}.tif") for number in LINES_PER_PAGE}


def test_alto_lines_in_document_order_with_images_from_the_mets(kant):
    # Their texts (Strings joined by the gaps between their boxes, as these files have no SP)
    # are compared with the PAGE texts in test_source_quirks.py.
    samples = list(read_samples(kant, "alto"))
    expected = []
    for number in LINES_PER_PAGE:
        stem = f"OCR-D-GT-ALTO/PAGE_{number}_ALTO"
        expected += [
            f"{stem}_{line_id}"
            for line_id in expected_alto_line_ids(kant / "OCR-D-GT-ALTO" / f"PAGE_{number}_ALTO.xml")
        ]
    assert len(samples) == len(expected) == 55
    assert [sample.id for sample in samples] == expected
    assert all(sample.ground_truth.strip() for sample in samples)
    # The ALTO files name no image: only the METS page that lists both leads to the scan.
    assert {(sample.metadata["document"], Path(sample.page_image)) for sample in samples} == {
        (f"OCR-D-GT-ALTO/PAGE_{number}_ALTO", kant / "OCR-D-IMG" / f"INPUT_{number}.tif") for number in LINES_PER_PAGE
    }
    assert [sample.metadata["page"] for sample in samples].count("INPUT_0020.tif") == LINES_PER_PAGE["0020"]


@pytest.mark.parametrize("source", ["page", "alto"])
def test_every_real_crop_is_the_line_box_inside_its_page(kant, source):
    samples = list(read_samples(kant, source))
    page_sizes = {}
    for sample in samples:
        if sample.page_image not in page_sizes:
            with Image.open(sample.page_image) as page:
                page_sizes[sample.page_image] = page.size
        page_width, page_height = page_sizes[sample.page_image]
        left, top, right, bottom = clipped_box(sample.polygon, (page_width, page_height))
        assert 0 <= left < right <= page_width and 0 <= top < bottom <= page_height, sample.id
        crop = decoded(sample)
        assert min(crop.size) >= 4, sample.id
        assert crop.size == (right - left, bottom - top), sample.id


@pytest.mark.parametrize("source", ["page", "alto"])
def test_line_ids_are_the_same_on_every_read(kant, source):
    first = [sample.id for sample in read_samples(kant, source)]
    second = [sample.id for sample in read_samples(kant, source)]
    assert first == second
    assert len(set(first)) == len(first)


@pytest.mark.parametrize(
    "source, xml_file", [("page", "OCR-D-GT-PAGE/PAGE_0017_PAGE.xml"), ("alto", "OCR-D-GT-ALTO/PAGE_0017_ALTO.xml")]
)
def test_real_lines_export_to_every_format_and_load_back(kant, source, xml_file, tmp_path):
    samples = list(read_samples(kant / xml_file, source))
    expected = {sample.id: " ".join(unicodedata.normalize("NFC", sample.ground_truth).split()) for sample in samples}
    assert len(expected) == LINES_PER_PAGE["0017"]
    results = export_all(
        read_samples(kant / xml_file, source), batch_id=source, output_dir=tmp_path / "exports", progress=False
    )
    assert len(results) == len(FORMAT_NAMES)
    for result in results:
        rows = datasets.load_dataset(result.export_path, split="train", cache_dir=str(tmp_path / "cache"))
        loaded = {row["id"]: get_adapter(result.export_format).transcription(row) for row in rows}
        assert loaded == expected, result.export_format


# --- small pages drawn here -------------------------------------------------------------------


def draw_page(path: Path, size=(400, 300), color: str | None = None) -> Path:
    """A page of one ``color``, or by default a top-to-bottom gradient, so that lines at different
    heights differ (validation rejects identical crops with different texts as a conflict)."""
    page = Image.new("RGB", size, color) if color else Image.linear_gradient("L").resize(size).convert("RGB")
    page.save(path)
    return path


def write_page_xml(
    path: Path, image_name: str, lines: str, reading_order: str = "", namespace="2013-07-15", size=(400, 300)
) -> Path:
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/{namespace}" pcGtsId="{path.stem}">
  <Metadata><Creator>test</Creator></Metadata>
  <Page imageFilename="{image_name}" imageWidth="{size[0]}" imageHeight="{size[1]}">
    {reading_order}
    {lines}
  </Page>
</PcGts>
""",
        encoding="utf-8",
    )
    return path


def one_line_region(points: str, text: str = "Zeile", line_id: str = "l1") -> str:
    return f"""<TextRegion id="r_{line_id}"><TextLine id="{line_id}"><Coords points="{points}"/>
      <TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine></TextRegion>"""


SYNTHETIC_PAGE_2013 = """
    <TextRegion id="r1">
      <Coords points="0,0 400,0 400,100 0,100"/>
      <TextLine id="l1">
        <Coords points="10,10 200,10 200,40 10,40"/>
        <Word id="w1"><Coords points="10,10 50,10 50,40 10,40"/><TextEquiv><Unicode>WORT</Unicode></TextEquiv></Word>
        <TextEquiv><Unicode>Zeile eins</Unicode></TextEquiv>
      </TextLine>
      <TextRegion id="r1a">
        <TextLine id="l2">
          <Coords><Point x="10" y="50"/><Point x="200" y="50"/><Point x="200" y="80"/><Point x="10" y="80"/></Coords>
          <TextEquiv><Unicode>verschachtelt</Unicode></TextEquiv>
        </TextLine>
      </TextRegion>
    </TextRegion>
    <TextRegion id="r2">
      <TextLine id="l3">
        <Coords points="10,110 200,110 200,140 10,140"/>
        <TextEquiv index="2"><Unicode>zweite Wahl</Unicode></TextEquiv>
        <TextEquiv index="1"><Unicode>zuerst gelesen</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="l4"><Coords points="10,150 200,150 200,180 10,180"/></TextLine>
    </TextRegion>
    <TextRegion id="r3">
      <TextLine>
        <Coords points="350,200 450,200 450,230 350,230"/>
        <TextEquiv><Unicode>am Rand</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="l6">
        <Coords points="1000,1000 1100,1000 1100,1030 1000,1030"/>
        <TextEquiv><Unicode>draußen</Unicode></TextEquiv>
      </TextLine>
    </TextRegion>"""

# r2 before r1 (the reverse of the document); r1a and r3 are not named, so they follow where the document has them.
REVERSED_READING_ORDER = """<ReadingOrder><OrderedGroup id="ro">
      <RegionRefIndexed index="1" regionRef="r1"/>
      <RegionRefIndexed index="0" regionRef="r2"/>
    </OrderedGroup></ReadingOrder>"""


def test_synthetic_page_2013_reading_order_own_text_and_what_validation_rejects(tmp_path):
    draw_page(tmp_path / "page.png")
    xml = write_page_xml(tmp_path / "synthetic.xml", "page.png", SYNTHETIC_PAGE_2013, REVERSED_READING_ORDER)
    samples = list(read_samples(xml, "page"))

    assert [(sample.metadata["region"], sample.metadata["line"], sample.ground_truth) for sample in samples] == [
        ("r2", "l3", "zuerst gelesen"),
        ("r2", "l4", ""),
        ("r1", "l1", "Zeile eins"),
        ("r1a", "l2", "verschachtelt"),
        ("r3", "l0005", "am Rand"),  # no id: named by its place among the file's lines
        ("r3", "l6", "draußen"),
    ]
    assert [sample.id for sample in samples][:3] == ["synthetic_l3", "synthetic_l4", "synthetic_l1"]
    assert samples[3].polygon == ((10, 50), (200, 50), (200, 80), (10, 80))

    report = validate(samples)
    accepted = {item.sample.id: (item.width, item.height) for item in report.accepted}
    assert accepted == {
        "synthetic_l3": (190, 30),
        "synthetic_l1": (190, 30),
        "synthetic_l2": (190, 30),
        "synthetic_l0005": (50, 30),
    }
    rejected = {error.sample_id: error for error in report.rejected}
    assert set(rejected) == {"synthetic_l4", "synthetic_l6"}
    assert "ground_truth is empty" in rejected["synthetic_l4"].problem
    assert rejected["synthetic_l4"].location == "synthetic.xml:l4"
    assert "0x0 pixels after clipping to the 400x300 page" in rejected["synthetic_l6"].problem


def test_padding_widens_the_crop_up_to_the_page_border(tmp_path):
    draw_page(tmp_path / "page.png")
    lines = one_line_region("100,100 200,100 200,130 100,130", line_id="middle") + one_line_region(
        "2,250 150,250 150,298 2,298", line_id="corner"
    )
    xml = write_page_xml(tmp_path / "padded.xml", "page.png", lines)
    plain = {sample.metadata["line"]: decoded(sample).size for sample in read_samples(xml, "page")}
    padded = {
        sample.metadata["line"]: decoded(sample).size
        for sample in read_samples(xml, "page", crop=CropOptions(padding=5))
    }
    assert plain == {"middle": (100, 30), "corner": (148, 48)}
    # The corner line is 2 pixels from the left and bottom border: its padding stops there.
    assert padded == {"middle": (110, 40), "corner": (148 + 2 + 5, 48 + 5 + 2)}


def test_mask_outside_paints_what_lies_outside_the_polygon_white(tmp_path):
    draw_page(tmp_path / "black.png", size=(100, 100), color="black")
    triangle = """<TextRegion id="r"><TextLine id="triangle"><Coords points="10,10 90,10 10,90"/>
      <TextEquiv><Unicode>Dreieck</Unicode></TextEquiv></TextLine></TextRegion>"""
    xml = write_page_xml(tmp_path / "triangle.xml", "black.png", triangle, size=(100, 100))
    [unmasked] = read_samples(xml, "page")
    [masked] = read_samples(xml, "page", crop=CropOptions(mask_outside=True))
    inside, outside_corner = (10, 10), (78, 78)  # in crop coordinates: the crop starts at (10, 10)
    assert decoded(unmasked).convert("L").getpixel(outside_corner) == 0
    assert decoded(masked).convert("L").getpixel(outside_corner) == 255
    assert decoded(masked).convert("L").getpixel(inside) == 0


def test_exif_orientation_is_applied_before_cropping(tmp_path):
    # As displayed: 100 wide, 200 high, black top half, white bottom half. Stored turned a quarter
    # left with orientation 6 ("turn right to display"), as cameras and phone scanners do.
    displayed = Image.new("RGB", (100, 200), "white")
    ImageDraw.Draw(displayed).rectangle((0, 0, 99, 99), fill="black")
    exif = Image.Exif()
    exif[0x0112] = 6
    displayed.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", "JPEG", exif=exif, quality=95)
    lines = one_line_region("10,10 90,10 90,60 10,60", "oben", "top") + one_line_region(
        "10,120 90,120 90,190 10,190", "unten", "bottom"
    )
    # The size the file declares is the page as displayed, as its coordinates are.
    xml = write_page_xml(tmp_path / "phone.xml", "phone.jpg", lines, size=(100, 200))
    top, bottom = (decoded(sample).convert("L") for sample in read_samples(xml, "page"))
    assert (top.size, bottom.size) == ((80, 50), (80, 70))
    assert top.getextrema()[1] < 40
    assert bottom.getextrema()[0] > 215


def test_page_whose_image_cannot_be_found_says_to_pass_the_images_folder(tmp_path):
    (tmp_path / "xml").mkdir()
    (tmp_path / "scans").mkdir()
    draw_page(tmp_path / "scans" / "scan_7.png")
    xml = write_page_xml(
        tmp_path / "xml" / "p7.xml", "/somewhere/else/scan_7.png", one_line_region("10,10 100,10 100,40 10,40")
    )
    with pytest.raises(SampleError) as raised:
        list(read_samples(xml, "page"))
    message = str(raised.value)
    # An absolute reference is named by its file name: its folders may be a user's.
    assert (
        "p7.xml" in message
        and "'scan_7.png'" in message
        and "/somewhere/else" not in message
        and "--images DIR" in message
    )
    assert [type(item).__name__ for item in read_samples(xml, "page", errors="report")] == ["SampleError"]

    [sample] = read_samples(xml, "page", image_dir=tmp_path / "scans")
    assert Path(sample.page_image) == tmp_path / "scans" / "scan_7.png"


def test_image_reference_resolves_from_ancestor_folders_up_to_the_mets_or_the_input(tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "IMG").mkdir(parents=True)
    (workspace / "GT").mkdir()
    draw_page(workspace / "IMG" / "scan.png")
    xml = write_page_xml(workspace / "GT" / "page.xml", "IMG/scan.png", one_line_region("10,10 100,10 100,40 10,40"))

    # No METS above: the search stops at the folder given as input.
    with pytest.raises(SampleError, match=r"'IMG/scan\.png' not found"):
        list(read_samples(xml, "page"))
    [from_folder] = read_samples(workspace, "page")
    assert Path(from_folder.page_image) == workspace / "IMG" / "scan.png"

    # A METS that lists nothing still marks the workspace root the reference is relative to.
    (workspace / "mets.xml").write_text('<mets:mets xmlns:mets="http://www.loc.gov/METS/"/>', encoding="utf-8")
    [from_file] = read_samples(xml, "page")
    assert Path(from_file.page_image) == workspace / "IMG" / "scan.png"
    assert from_file.metadata["page"] == "scan.png"


SYNTHETIC_ALTO_4 = """<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">
  <Description>
    <MeasurementUnit>{unit}</MeasurementUnit>
    <sourceImageInformation><fileName>scan.png</fileName></sourceImageInformation>
  </Description>
  <Layout><Page ID="p1" WIDTH="400" HEIGHT="300"><PrintSpace>
    <TextBlock ID="b1">
      <TextLine ID="spaced" HPOS="10" VPOS="10" WIDTH="300" HEIGHT="30">
        <String CONTENT="Guten" HPOS="10" VPOS="10" WIDTH="80" HEIGHT="30"/><SP WIDTH="10"/>
        <String CONTENT="Tag" HPOS="100" VPOS="10" WIDTH="50" HEIGHT="30"/>
        <String CONTENT="," HPOS="150" VPOS="10" WIDTH="5" HEIGHT="30"/>
      </TextLine>
      <TextLine ID="hyphenated" HPOS="0" VPOS="0" WIDTH="400" HEIGHT="300">
        <Shape><Polygon POINTS="20,50 220,50 220,90 20,90"/></Shape>
        <String CONTENT="Silben"/><SP/><String CONTENT="tren"/><HYP CONTENT="-"/>
      </TextLine>
    </TextBlock>
  </PrintSpace></Page></Layout>
</alto>
"""


def test_synthetic_alto_4_spaces_hyphens_and_polygon(tmp_path):
    draw_page(tmp_path / "scan.png")
    (tmp_path / "scan.xml").write_text(SYNTHETIC_ALTO_4.format(unit="pixel"), encoding="utf-8")
    spaced, hyphenated = read_samples(tmp_path, "alto")
    assert (spaced.id, spaced.ground_truth) == ("scan_spaced", "Guten Tag,")
    assert (hyphenated.id, hyphenated.ground_truth) == ("scan_hyphenated", "Silben tren-")
    # The box of the first line, the polygon of the second (not its page-sized box).
    assert decoded(spaced).size == (300, 30)
    assert hyphenated.metadata["polygon"] == [[20, 50], [220, 50], [220, 90], [20, 90]]
    assert decoded(hyphenated).size == (200, 40)
    assert spaced.metadata["region"] == "b1" and spaced.metadata["page"] == "scan.png"


def test_alto_in_mm10_is_refused_saying_only_pixels_are_supported(tmp_path):
    draw_page(tmp_path / "scan.png")
    xml = tmp_path / "scan.xml"
    xml.write_text(SYNTHETIC_ALTO_4.format(unit="mm10"), encoding="utf-8")
    with pytest.raises(SampleError, match=r"'mm10'.*only 'pixel'") as raised:
        list(read_samples(xml, "alto"))
    assert raised.value.location == "scan.xml"
    assert len(list(read_samples(xml, "alto", errors="report"))) == 1
