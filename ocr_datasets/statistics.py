"""The figures of a batch: per split, counts, alphabet, text lengths, image sizes, and the OCR baseline."""

from __future__ import annotations

import bisect
import functools
import itertools
from collections import Counter
from collections.abc import Iterable

from .validation import CheckedSample


def graphemes(text: str) -> list[str]:
    """``text`` cut into extended grapheme clusters."""
    return _grapheme().findall(text)


# regex and rapidfuzz are imported where a line with OCR text is first measured (18 ms at the
# start of an export, which most batches without OCR text never needed).
@functools.cache
def _grapheme():
    import regex

    # An extended grapheme cluster (Unicode UAX #29): what a reader sees as one character, such
    # as u with a combining small letter e above (u + U+0364), or a letter with a decomposed accent.
    return regex.compile(r"\X")


@functools.cache
def _levenshtein():
    from rapidfuzz.distance import Levenshtein

    return Levenshtein


def error_rates(pairs: Iterable[tuple[str, str]]) -> dict[str, float | None]:
    """Character and word error rate of hypotheses against references, over the whole corpus:
    total edit distance divided by total reference length. ``cer`` counts code points of the
    normalised text (u + U+0364 is two characters), ``grapheme_cer`` extended grapheme
    clusters (u + U+0364 is one, as a reader sees it); words are whitespace-separated.
    ``pairs`` is read once."""
    rates = ErrorRates()
    for reference, hypothesis in pairs:
        rates.add(reference, hypothesis)
    return rates.figures()


class ErrorRates:
    """Edit and length counts summed over lines (``add``), and the rates they give (``figures``)."""

    _COUNTS = (
        "lines", "char_edits", "reference_chars", "grapheme_edits", "reference_graphemes", "word_edits",
        "reference_words",
    )  # fmt: skip

    def __init__(self):
        self.lines = self.char_edits = self.reference_chars = 0
        self.grapheme_edits = self.reference_graphemes = self.word_edits = self.reference_words = 0

    def add(self, reference: str, hypothesis: str) -> ErrorRates:
        """Count one more line; the counts of that line alone (so that a caller ranking lines
        does not measure them twice)."""
        line = ErrorRates()
        reference_graphemes, reference_words = graphemes(reference), reference.split()
        line.lines = 1
        levenshtein = _levenshtein()
        line.char_edits = levenshtein.distance(reference, hypothesis)
        line.reference_chars = len(reference)
        line.grapheme_edits = levenshtein.distance(reference_graphemes, graphemes(hypothesis))
        line.reference_graphemes = len(reference_graphemes)
        line.word_edits = levenshtein.distance(reference_words, hypothesis.split())
        line.reference_words = len(reference_words)
        for count in self._COUNTS:
            setattr(self, count, getattr(self, count) + getattr(line, count))
        return line

    def figures(self) -> dict[str, float | None]:
        return {
            "lines": self.lines,
            "cer": _rate(self.char_edits, self.reference_chars),
            "grapheme_cer": _rate(self.grapheme_edits, self.reference_graphemes),
            "wer": _rate(self.word_edits, self.reference_words),
            "char_edits": self.char_edits,
            "reference_chars": self.reference_chars,
            "grapheme_edits": self.grapheme_edits,
            "reference_graphemes": self.reference_graphemes,
            "word_edits": self.word_edits,
            "reference_words": self.reference_words,
        }


def _rate(edits: int, reference_length: int) -> float | None:
    # Against an empty reference any edit is an infinite rate: undefined, not perfect.
    if reference_length:
        return edits / reference_length
    return 0.0 if not edits else None


def split_statistics(checked: Iterable[CheckedSample]) -> dict:
    """The figures of one split, in one pass over its samples; an empty split has only its count."""
    alphabet: Counter[str] = Counter()
    # Each length and size with how many samples have it: a few thousand numbers however many
    # samples there are, where a million lines held 24 MB of them and the median sorted a list
    # of each (36 MB of int objects for the widths).
    text_lengths: Counter[int] = Counter()
    widths: Counter[int] = Counter()
    heights: Counter[int] = Counter()
    ocr_baseline = ErrorRates()
    for item in checked:
        text = item.sample.ground_truth
        alphabet.update(text)
        text_lengths[len(text)] += 1
        widths[item.width] += 1
        heights[item.height] += 1
        if item.sample.ocr_text is not None:
            ocr_baseline.add(text, item.sample.ocr_text)
    if not text_lengths:
        return {"samples": 0}
    return {
        "samples": text_lengths.total(),
        "characters": alphabet.total(),
        "alphabet": dict(sorted(alphabet.items(), key=lambda entry: (-entry[1], entry[0]))),
        "text_length": _distribution(text_lengths),
        "image_width": _distribution(widths),
        "image_height": _distribution(heights),
        "ocr_baseline": ocr_baseline.figures() if ocr_baseline.lines else None,
    }


def _distribution(counts: Counter[int]) -> dict[str, float]:
    """``statistics``' min, median, mean (to 2 places) and max of the values ``counts`` holds,
    each as many times as it counts."""
    values = sorted(counts)
    ends = list(itertools.accumulate(counts[value] for value in values))
    total = ends[-1]

    def value_at(position: int) -> int:
        # The value the sorted values would hold at ``position`` (from 0).
        return values[bisect.bisect_right(ends, position)]

    # statistics.median: the middle value, or the mean of the two middle ones.
    low, high = value_at((total - 1) // 2), value_at(total // 2)
    return {
        "min": values[0],
        "median": low if total % 2 else (low + high) / 2,
        "mean": round(sum(value * count for value, count in counts.items()) / total, 2),
        "max": values[-1],
    }
