"""The figures of a batch: per split, counts, alphabet, text lengths, image sizes, and the OCR baseline."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

from .validation import CheckedSample


def error_rates(pairs: Sequence[tuple[str, str]]) -> dict[str, float | int]:
    """Character and word error rate of hypotheses against references, over the whole corpus:
    total edit distance divided by total reference length (characters are code points of the
    normalised text; words are whitespace-separated)."""
    char_edits = sum(Levenshtein.distance(reference, hypothesis) for reference, hypothesis in pairs)
    word_edits = sum(Levenshtein.distance(reference.split(), hypothesis.split()) for reference, hypothesis in pairs)
    reference_chars = sum(len(reference) for reference, _ in pairs)
    reference_words = sum(len(reference.split()) for reference, _ in pairs)
    return {
        "lines": len(pairs),
        "cer": _rate(char_edits, reference_chars),
        "wer": _rate(word_edits, reference_words),
        "char_edits": char_edits,
        "reference_chars": reference_chars,
        "word_edits": word_edits,
        "reference_words": reference_words,
    }


def _rate(edits: int, reference_length: int) -> float | None:
    # Against an empty reference any edit is an infinite rate: undefined, not perfect.
    if reference_length:
        return edits / reference_length
    return 0.0 if not edits else None


def split_statistics(checked: Sequence[CheckedSample]) -> dict:
    """The figures of one split; an empty split has only its count."""
    if not checked:
        return {"samples": 0}
    texts = [item.sample.ground_truth for item in checked]
    alphabet = Counter(char for text in texts for char in text)
    with_ocr = [(item.sample.ground_truth, item.sample.ocr_text) for item in checked if item.sample.ocr_text is not None]
    return {
        "samples": len(checked),
        "characters": sum(alphabet.values()),
        "alphabet": dict(sorted(alphabet.items(), key=lambda entry: (-entry[1], entry[0]))),
        "text_length": _distribution([len(text) for text in texts]),
        "image_width": _distribution([item.width for item in checked]),
        "image_height": _distribution([item.height for item in checked]),
        "ocr_baseline": error_rates(with_ocr) if with_ocr else None,
    }


def _distribution(values: list[int]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "mean": round(statistics.fmean(values), 2), "max": max(values)}
