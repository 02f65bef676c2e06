"""Memory that does not grow with the corpus: validation reads its input as it checks it, and the
samples it accepts are held packed (pickled and compressed in blocks) until written."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import pytest
from PIL import Image
from support.data import batch_files, lines_with_twins

import ocr_datasets.validation as validation
from ocr_datasets import TrainingSample, export_all, ledger, validate
from ocr_datasets.ledger import Ledger
from ocr_datasets.packed import BLOCK_SIZE, PackedSamples, unpack_block
from ocr_datasets.sources.crop import CropOptions, CroppedSample
from ocr_datasets.verdicts import Verdict


def png(width: int, shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, 12), color=shade).save(buffer, format="PNG")
    return buffer.getvalue()


def sample(number: int, *, image: bytes | None = None, text: str | None = None) -> TrainingSample:
    return TrainingSample(
        id=f"line-{number}",
        image_path=f"line-{number}.png",
        image_bytes=image or png(20 + number % 80, number // 80),
        ground_truth=text or f"Zeile ſ {number}",
        ocr_text=f"Zeile s {number}" if number % 2 else None,
        ocr_confidence=0.5 if number % 3 else None,
        metadata={"page": number // 10, "writer": "Schreiber ä"},
        source=f"samples.jsonl:{number + 1}",
    )


@pytest.mark.parametrize("spilled", [False, True], ids=["in memory", "in a scratch folder"])
def test_packed_samples_hold_every_sample_in_order_across_blocks(spilled, tmp_path):
    samples = [sample(number) for number in range(2 * BLOCK_SIZE + 17)]
    packed = PackedSamples(samples, spill_to=tmp_path if spilled else None)
    # Spilled, the sealed blocks are in one file there.
    assert len(list(tmp_path.iterdir())) == spilled

    assert len(packed) == len(samples)
    assert list(packed) == samples
    assert list(packed) == samples  # every pass unpacks afresh
    assert (packed[0], packed[BLOCK_SIZE], packed[-1]) == (samples[0], samples[BLOCK_SIZE], samples[-1])
    assert packed[BLOCK_SIZE - 2 : BLOCK_SIZE + 2] == samples[BLOCK_SIZE - 2 : BLOCK_SIZE + 2]
    with pytest.raises(IndexError):
        packed[len(samples)]
    blocks = packed.blocks()
    assert [len(unpack_block(block)) for block in blocks] == [BLOCK_SIZE, BLOCK_SIZE, 17]
    assert [item for block in blocks for item in unpack_block(block)] == samples
    assert len(PackedSamples()) == 0 and list(PackedSamples()) == [] and PackedSamples().blocks() == []


def test_packed_samples_with_images_in_memory_round_trip():
    # Blocks whose samples carry their image bytes are kept uncompressed, the others compressed.
    lines = [sample(number) for number in range(BLOCK_SIZE)]
    scans = [
        dataclasses.replace(sample(number), image_bytes=png(2000, number % 256) + bytes(range(256)) * 40)
        for number in range(BLOCK_SIZE + 5)
    ]
    for samples in (lines, scans, lines + scans):
        packed = PackedSamples(samples)
        assert list(packed) == samples
        assert [item for block in packed.blocks() for item in unpack_block(block)] == samples


@dataclasses.dataclass
class AnnotatedSample(TrainingSample):
    """A caller's own subclass: a field left out of __init__, and room for attributes of its own."""

    reviewed: bool = dataclasses.field(default=False, init=False)


@dataclasses.dataclass(slots=True)
class MarkedSample(TrainingSample):
    """A caller's own slotted subclass whose __post_init__ changes a field."""

    def __post_init__(self):
        self.ground_truth += "!"


def test_a_callers_subclass_comes_back_as_pickle_would_bring_it():
    item = AnnotatedSample("line-1", None, "Zeile", image_bytes=b"...")
    item.reviewed, item.reviewer = True, "Anna"
    marked = MarkedSample("line-2", None, "Zeile")
    back, marked_back = unpack_block(PackedSamples([item, marked]).blocks()[0])
    assert (back, back.reviewed, back.reviewer) == (item, True, "Anna")
    # Not made again (which would run __post_init__ once more): its fields as they were.
    assert marked_back.ground_truth == "Zeile!"


def test_checked_and_cropped_samples_come_back_whole_of_their_own_class():
    # They pickle as their class called with their fields (``pickled_as_its_fields``): a field
    # left out, or a subclass's own fields, would come back wrong here.
    cropped = CroppedSample(
        id="crop-1",
        image_path="crop-1.png",
        ground_truth="Zeile",
        metadata={"page": 3},
        source="page.xml:12",
        page_image="page.tif",
        polygon=((1, 2), (30, 2), (30, 14)),
        crop=CropOptions(padding=2, mask_outside=True),
    )
    verdict = Verdict(30, 12, "L", "PNG", False, "b" * 64, "PNG")
    checked = [validation.CheckedSample(item, "a" * 64, verdict, row) for row, item in enumerate([cropped, sample(5)])]
    back = unpack_block(PackedSamples(checked).blocks()[0])
    assert back == checked
    assert [type(item.sample) for item in back] == [CroppedSample, TrainingSample]
    assert back[0].sample.crop == CropOptions(padding=2, mask_outside=True)
    assert type(back[0]) is validation.CheckedSample


def test_with_a_scratch_folder_validation_keeps_what_it_remembers_there_and_judges_the_same(tmp_path):
    lines = [sample(number) for number in range(2 * BLOCK_SIZE + 5)]
    repeated = [dataclasses.replace(lines[7], ground_truth="anders"), dataclasses.replace(lines[3], id="twin")]
    repeated.append(dataclasses.replace(lines[9], id=lines[2].id))
    in_memory = validate([*lines, *repeated])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    kept = validate([*lines, *repeated], scratch=scratch)

    assert [item.sample for item in kept.accepted] == [item.sample for item in in_memory.accepted]
    assert [str(problem) for problem in kept.rejected] == [str(problem) for problem in in_memory.rejected]
    assert kept.duplicates == in_memory.duplicates == [("twin", lines[3].id)]
    assert "id is used by an earlier sample" in str(kept.rejected[-1])
    # The samples stay packed in files there; the table of ids and images is gone.
    assert sorted(path.suffix for path in scratch.iterdir()) == [".bin", ".bin"]


@pytest.mark.parametrize("num_proc", [1, 2])
def test_a_generator_is_validated_as_it_is_read_with_duplicates_and_conflicts_found_far_apart(monkeypatch, num_proc):
    # A pool for the first 50 samples' worth of images, fed a few images at a time.
    monkeypatch.setattr(validation, "_WINDOW", 50)
    monkeypatch.setattr(validation, "_MIN_IMAGES_PER_PROCESS", 10)
    monkeypatch.setattr(validation, "_CHUNK", 4)
    pulled = []

    def source():
        for number in range(230):
            if number == 120:  # the image and text of line 3, two windows later
                item = sample(number, image=png(23, 0), text="Zeile ſ 3")
            elif number in (60, 199):  # the image of line 7 with other texts
                item = sample(number, image=png(27, 0), text=f"anders {number}")
            else:
                item = sample(number)
            pulled.append(number)
            yield item

    report = validate(source(), num_proc=num_proc)

    assert pulled == list(range(230))
    assert report.counts == {"input": 230, "exported": 226, "rejected": 3, "duplicates": 1}
    assert report.duplicates == [("line-120", "line-3")]
    assert [problem.sample_id for problem in report.rejected] == ["line-7", "line-60", "line-199"]
    assert "the same image as 'line-60' ('anders 60'), 'line-199' ('anders 199')" in report.rejected[0].problem
    assert isinstance(report.accepted, PackedSamples)
    expected = [f"line-{number}" for number in range(230) if number not in (7, 60, 120, 199)]
    assert [item.sample.id for item in report.accepted] == expected
    # The same samples given as a list are judged the same way.
    listed = validate(list(source()), num_proc=num_proc)
    assert [item.sample for item in listed.accepted] == [item.sample for item in report.accepted]
    assert [str(problem) for problem in listed.rejected] == [str(problem) for problem in report.rejected]
    assert listed.duplicates == report.duplicates


# A ledger in dicts, and one in sqlite from its first key (an export's past 50,000 keys).
in_dicts_and_in_sqlite = pytest.mark.parametrize("keys_in_memory", [None, 0], ids=["dicts", "sqlite"])


@in_dicts_and_in_sqlite
@pytest.mark.parametrize("on_disk", [False, True])
def test_a_ledger_remembers_each_key_with_its_first_value(on_disk, keys_in_memory, tmp_path):
    ledger = Ledger(tmp_path / "seen.sqlite" if on_disk else None, keys_in_memory=keys_in_memory)
    assert ledger.remember("ids", "a", "samples.jsonl:1") == (True, "samples.jsonl:1")
    assert ledger.remember("ids", "b", None) == (True, None)
    assert ledger.remember("ids", "a", "samples.jsonl:9") == (False, "samples.jsonl:1")
    assert ledger.remember("ids", "b", "samples.jsonl:3") == (False, None)
    assert ledger.remember("images", b"\x00" * 16, 4) == (True, 4)
    assert ledger.remember("images", b"\x00" * 16, 8) == (False, 4)
    assert ledger.remember("ids", b"a", 1) == (True, 1)  # bytes and text are different keys
    ledger.add("paths", (pair for pair in [("z", "1"), ("y", "2"), ("z", "3")]))
    assert list(ledger.items("paths")) == [("y", "2"), ("z", "1")]
    assert list(ledger.items("never written")) == []
    ledger.close()
    assert list(tmp_path.iterdir()) == []


def test_a_ledger_moves_its_keys_into_sqlite_once_it_holds_more_than_it_keeps_in_memory(tmp_path):
    path = tmp_path / "seen.sqlite"
    ledger = Ledger(path, keys_in_memory=4)
    assert ledger.remember("ids", "b", 1) == (True, 1)
    assert ledger.remember("ids", "a", 2) == (True, 2)
    ledger.add("paths", [("z", "1"), ("y", "2")])
    assert not path.exists()  # four keys: held in memory
    assert ledger.remember("ids", "c", 3) == (True, 3)
    assert path.exists()
    assert ledger.remember("ids", "a", 9) == (False, 2)  # remembered before the move
    assert ledger.remember("ids", "d", 4) == (True, 4)
    assert ledger.remember("ids", "d", 5) == (False, 4)
    ledger.add("paths", [("x", "3"), ("z", "4")])
    assert list(ledger.items("paths")) == [("x", "3"), ("y", "2"), ("z", "1")]
    ledger.close()
    assert list(tmp_path.iterdir()) == []


def test_a_ledger_in_dicts_lists_a_table_in_the_order_sqlite_does():
    paths = [("b/é", "1"), ("b/\U0001d400", "2"), ("b/\uffff", "3"), ("B/a", "4"), ("b/a", "5"), ("b/a\u0301", "6")]
    listed = []
    for keys_in_memory in (None, 0):
        ledger = Ledger(keys_in_memory=keys_in_memory)
        ledger.add("paths", paths)
        listed.append(list(ledger.items("paths")))
        ledger.close()
    assert listed[0] == listed[1]
    assert [key for key, _ in listed[0]] == ["B/a", "b/a", "b/a\u0301", "b/é", "b/\uffff", "b/\U0001d400"]


class _FailingKeeper:
    """An ImageKeeper whose disk fills up at the sixth sample."""

    def spool(self, chunk, items):
        pass

    def keep(self, checked, spooled, decoded, first_of_image):
        if checked.row == 5:
            raise OSError(28, "No space left on device")

    def using(self, workers):
        return contextlib.nullcontext()


def test_validation_that_fails_midway_leaves_no_ledger_in_its_scratch_folder(tmp_path):
    with pytest.raises(OSError, match="No space left"):
        validate([sample(number) for number in range(20)], keep_image=_FailingKeeper(), scratch=tmp_path)
    assert [path.suffix for path in tmp_path.iterdir()] == [".bin"]


def test_an_export_whose_ledgers_are_in_sqlite_writes_the_same_batches(monkeypatch, tmp_path):
    # Past its first 50,000 keys (a corpus of ~25,000 lines) a ledger holds them in sqlite, which
    # stores no lone surrogates: a repeated id is named with where its first sample was read, a
    # manifest whose file name is not UTF-8.
    first, *others = lines_with_twins()
    repeated = dataclasses.replace(others[0], id=first.id)
    samples = [dataclasses.replace(first, source="\udcff.jsonl:1"), *others, repeated]
    options = {"skip_invalid": True, "progress": False}
    in_dicts = export_all(samples, batch_id="dicts", output_dir=tmp_path, **options)
    monkeypatch.setattr(ledger, "KEYS_IN_MEMORY", 0)
    in_sqlite = export_all(samples, batch_id="sqlite", output_dir=tmp_path, **options)

    for one, other in zip(in_dicts, in_sqlite, strict=True):
        assert batch_files(one) == batch_files(other)
    rejected = (Path(in_sqlite[0].export_path) / "rejected.jsonl").read_text(encoding="utf-8")
    assert "id is used by an earlier sample (\\\\udcff.jsonl:1)" in rejected
