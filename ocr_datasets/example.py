"""The built-in example: synthetic German text lines rendered with a real font (umlauts, ß, ſ)."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .samples import TrainingSample

# Pillow's built-in font draws umlauts as boxes, so a DejaVu font ships with the package.
_FONT = resources.files("ocr_datasets") / "fonts" / "DejaVuSans.ttf"

EXAMPLE_LINES = (
    "Größere Übungen für Bücher und Häuser",
    "Die Straße führt über die Brücke",
    "Fräulein Müller schreibt heute Grüße",
    "Äpfel, Öfen und Übermut im Gemüsegarten",
    "Der Bürgermeister ließ die Glocken läuten",
    "Weiß ist die Schneeflocke, süß der Honig",
    "Am Fluſſe ſtand ein altes Gaſthaus",
    "Königsberg, den 30. September 1784",
    "Häufig wechselnde Gefühle der Jugend",
    "Schöne Grüße aus dem schwäbischen Dörfchen",
    "Maß halten ist des Lebens größte Kunst",
    "Zwölf Boxkämpfer jagen Viktor quer über den Sylter Deich",
)

_DOCUMENTS = ("brief-1843", "tagebuch-1911", "rechnung-1789")


def example_samples(count: int = 24, seed: int = 0) -> Iterator[TrainingSample]:
    """``count`` line images with their ground truth, a simulated OCR guess and metadata.

    The same ``count`` and ``seed`` always give the same images. Images are PNG bytes in memory.
    """
    rng = random.Random(seed)
    font = ImageFont.truetype(io.BytesIO(_FONT.read_bytes()), size=28)
    for number in range(count):
        text = EXAMPLE_LINES[number % len(EXAMPLE_LINES)]
        document = _DOCUMENTS[number % len(_DOCUMENTS)]
        yield TrainingSample(
            id=f"{document}-line-{number:04d}",
            image_path=f"{document}-line-{number:04d}.png",
            image_bytes=_render_line(text, font, rng),
            ground_truth=text,
            ocr_text=_ocr_guess(text, rng),
            ocr_confidence=round(rng.uniform(0.55, 0.98), 3),
            metadata={"document_id": document, "page": 1 + number // 8, "line": number % 8, "writer": "synthetic"},
        )


def write_example_manifest(folder: str | Path, count: int = 24, seed: int = 0) -> Path:
    """Write the example as ``folder/samples.jsonl`` plus ``folder/images/*.png``, the input
    layout ``ocr-datasets export --input`` reads. Returns the manifest's path."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    manifest = folder / "samples.jsonl"
    with manifest.open("w", encoding="utf-8") as lines:
        for sample in example_samples(count, seed):
            relative = f"images/{sample.image_path}"
            (folder / relative).write_bytes(sample.read_image_bytes())
            record = {
                "id": sample.id,
                "image_path": relative,
                "ground_truth": sample.ground_truth,
                "ocr_text": sample.ocr_text,
                "ocr_confidence": sample.ocr_confidence,
                "metadata": sample.metadata,
            }
            lines.write(json.dumps(record, ensure_ascii=False) + "\n")
    return manifest


def _render_line(text: str, font: ImageFont.FreeTypeFont, rng: random.Random) -> bytes:
    left, top, right, bottom = font.getbbox(text)
    margin = 8
    # A FreeType font's box is in whole pixels (Pillow types it as floats, for every kind of font).
    size = (int(right - left) + 2 * margin, int(bottom - top) + 2 * margin)
    image = Image.new("L", size, color=rng.randint(225, 255))
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill=rng.randint(0, 60))
    image = image.rotate(rng.uniform(-1.0, 1.0), resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(radius=0.6))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _ocr_guess(text: str, rng: random.Random) -> str:
    """What an untuned engine often makes of such lines: umlauts and ß lost now and then."""
    confusions = {"ä": "a", "ö": "o", "ü": "u", "ß": "B", "ſ": "f", "Ü": "U"}
    return "".join(confusions[char] if char in confusions and rng.random() < 0.4 else char for char in text)
