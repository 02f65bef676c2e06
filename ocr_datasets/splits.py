"""Deterministic, leak-free splits: a group's split follows from a hash of its key and the seed alone."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from .errors import OptionError
from .notices import warn
from .options import check_split_strategy
from .packed import PackedSamples
from .samples import TrainingSample
from .validation import CheckedSample


def group_key(sample: TrainingSample, group_by: str | None) -> str:
    """The key whose samples always share a split: a metadata value, or the sample's own id."""
    return sample.id if group_by is None else json.dumps(sample.metadata[group_by], ensure_ascii=False, sort_keys=True)


def _hash_point(key: str, seed: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{key}".encode()).digest()[:8], "big") / 2**64


def split_of(key: str, ratios: Mapping[str, float], seed: int) -> str:
    """The split of one group under the ``hash`` strategy: from the hash of seed and key only, so
    the same key always lands in the same split whatever other samples are added."""
    point = _hash_point(key, seed)
    cumulative = 0.0
    for name, ratio in ratios.items():
        cumulative += ratio
        if point < cumulative:
            return name
    return name  # only reached when rounding leaves the ratios' sum a hair under 1


def split_of_sample(
    ratios: Mapping[str, float], group_by: str | None, seed: int, strategy: str
) -> Callable[[TrainingSample], str] | None:
    """The split of each sample, decided from the sample alone, if the strategy allows it (one
    split, or ``hash``); None for ``balanced``, which needs every group first."""
    check_split_strategy(strategy)
    if len(ratios) == 1:
        [only] = ratios
        return lambda sample: only
    if strategy == "hash":
        return lambda sample: split_of(group_key(sample, group_by), ratios, seed)
    return None


def assign_splits(
    checked: PackedSamples[CheckedSample],
    ratios: Mapping[str, float],
    group_by: str | None,
    seed: int,
    strategy: str = "hash",
    allow_empty: bool = False,
    spill_to: Path | None = None,
) -> dict[str, PackedSamples[CheckedSample]]:
    """The samples of each split, in input order; every group wholly in one split. A split
    that comes out empty raises ``ValueError`` (with ``allow_empty``, a warning). The splits
    are held packed, in files in ``spill_to`` if given (see ``PackedSamples``).

    No assignment can both keep every group where it was when groups are added and hit the
    ratios on every corpus (a group's split would have to depend on its key alone, and a sum of
    independent choices strays from its mean), so the strategy says which one matters:

    - ``hash``: a group's split follows from the hash of its key and the seed alone. Adding
      samples or whole groups never moves a sample; proportions approach the ratios as the number
      of groups grows (with few groups they can stray by a few groups).
    - ``balanced``: groups are taken in the order of that hash, each into the split furthest
      below its ratio, so every split is within one group of its target; adding samples can move
      groups that come later in hash order.
    """
    if len(ratios) == 1:
        return {name: checked for name in ratios}
    split_for = split_of_sample(ratios, group_by, seed, strategy)
    if split_for is None:
        balanced = _balanced(Counter(group_key(item.sample, group_by) for item in checked), ratios, seed)
        split_for = lambda sample: balanced[group_key(sample, group_by)]  # noqa: E731
    # Packed as they are assigned: every sample is held until the batch is written.
    splits: dict[str, PackedSamples[CheckedSample]] = {name: PackedSamples(spill_to=spill_to) for name in ratios}
    for item in checked:
        splits[split_for(item.sample)].append(item)
    empty = [name for name, samples in splits.items() if not samples]
    if empty:
        # load_dataset does not show an empty split: training code asking for it fails later.
        groups = len({group_key(item.sample, group_by) for item in checked})
        grouped = f"group{'s' if groups != 1 else ''} ({f'by {group_by!r}' if group_by else 'one per sample'})"
        advice = (
            "use split_strategy='balanced' (--split-strategy balanced), which fills every split it can; "
            if strategy == "hash"
            else ""
        )
        message = (
            f"split {empty[0]!r} came out empty: the {groups} {grouped} all went to the other splits; "
            f"{advice}give more groups, or leave the split out (--split); "
            "allow_empty_splits=True (--allow-empty-splits) writes it empty"
        )
        if not allow_empty:
            raise OptionError(message)
        warn(message)
    return splits


def _balanced(group_sizes: Mapping[str, int], ratios: Mapping[str, float], seed: int) -> dict[str, str]:
    sizes = dict.fromkeys(ratios, 0)
    chosen = {}
    for key in sorted(group_sizes, key=lambda key: (_hash_point(key, seed), key)):
        total = sum(sizes.values()) + group_sizes[key]
        split = max(ratios, key=lambda name: ratios[name] * total - sizes[name])
        sizes[split] += group_sizes[key]
        chosen[key] = split
    return chosen
