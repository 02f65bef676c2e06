"""The options of an export, each declared once: its type, default, meaning and checks.

``export()`` and ``build_dataset()`` take them as keyword arguments, the CLI builds its flags
from them (``add_flags``), the manifest records them, and the docs are checked against them.
As in ``datasets``' ``BuilderConfig`` subclasses, a dataclass's ``__post_init__`` checks
them, so a wrong value fails before anything is read. What the format adapters read
(``ViewOptions``) is separate from how the samples are validated, split and written.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import OptionError
from .notices import warn

DEFAULT_INSTRUCTION = (
    "Du bist ein OCR-Experte für deutsche Handschrift. "
    "Lies den handgeschriebenen Text im Bild und gib ihn wortgetreu wieder."
)
NORMALIZATION_FORMS = ("NFC", "NFD", "NFKC", "none")
SPLIT_STRATEGIES = ("hash", "balanced")
ENGINES = ("local", "ray")
# Where an image goes in a turn's text, for LLaMA-Factory and ms-swift (one per image, in order).
IMAGE_PLACEHOLDER = "<image>"
RAY_INSTALL = 'pip install "ocr-datasets[ray]"'
_SPLIT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# A language as the Hub's dataset cards name it: an ISO 639-1 (de) or ISO 639-3 (deu, and gmh
# for Middle High German, which has no two-letter code) code.
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
# The license identifiers the Hub shows on a card: the right column of the table in
# huggingface/hub-docs, docs/hub/repositories-licenses.md (https://huggingface.co/docs/hub/repositories-licenses,
# as of August 2026), which huggingface_hub's DatasetCardData points to. Any other value shows no license.
HUB_LICENSES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0",
    "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1",
    "lgpl-3.0", "isc", "h-research", "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0",
    "odc-by", "odbl", "openmdw-1.0", "openmdw-1.1", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa",
    "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2",
    "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "grok2-community", "gemma", "unknown", "other",
)  # fmt: skip
_SHARD_SIZE = re.compile(r"(?P<number>\d+)\s*(?:(?P<prefix>[KMGT])(?P<binary>i?)B)?", re.IGNORECASE)


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    choices=None,
    cli_type=None,
    recorded: bool = True,
    build: bool = False,
):
    """A dataclass field that is an option: ``help`` says what it means (in ``--help`` and the
    docs); ``flag`` when the CLI's name is not ``--`` plus the field's name; ``recorded=False``
    for how an export runs rather than what it writes (kept out of the manifest); ``build``
    when ``build_dataset`` takes it too."""
    metadata = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "choices": choices,
        "cli_type": cli_type,
        "recorded": recorded,
        "build": build,
    }
    return field(default=default, metadata=metadata)


def parse_split_spec(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"train=0.8,validation=0.1,test=0.1"`` (or a dict) to ordered ratios that sum to 1."""
    if spec is None:
        return {"train": 1.0}
    example = "for example train=0.8,validation=0.1,test=0.1"
    if isinstance(spec, str):
        pairs = []
        for part in filter(None, (piece.strip() for piece in spec.split(","))):
            name, equals, value = part.partition("=")
            try:
                pairs.append((name.strip(), float(value) if equals else float("nan")))
            except ValueError:
                pairs.append((name.strip(), float("nan")))
    else:
        pairs = [(name, float(value)) for name, value in spec.items()]
    if not pairs:
        raise OptionError(f"empty split specification: {example}")
    # Split names become file names, and macOS and Windows disks do not tell case apart.
    seen: dict[str, str] = {}
    for name, _ in pairs:
        if name.casefold() in seen:
            raise OptionError(
                f"split {name!r} is named twice ({seen[name.casefold()]!r} and {name!r}; names differing only in case "
                f"would share one file on macOS and Windows): name each split once ({example})"
            )
        seen[name.casefold()] = name
    ratios = dict(pairs)
    for name, ratio in ratios.items():
        if not _SPLIT_NAME.fullmatch(name):
            raise OptionError(
                f"split name {name!r} must start with a letter and hold only letters, digits and '_' ({example})"
            )
        if not 0.0 < ratio <= 1.0:
            raise OptionError(f"split {name!r} needs a ratio above 0 and at most 1, got {ratio} ({example})")
    total = sum(ratios.values())
    if abs(total - 1.0) > 1e-6:
        raise OptionError(f"split ratios sum to {total:g}, not 1 ({example})")
    return ratios


def check_normalization(form: str) -> str:
    if form not in NORMALIZATION_FORMS:
        raise OptionError(f"unknown normalisation {form!r}: choose NFC (default), NFD, none, or NFKC by name")
    if form == "NFKC":
        warn("NFKC folds compatibility characters: long s (ſ) becomes s and ligatures split; NFC keeps them")
    return form


def check_split_strategy(strategy: str) -> str:
    if strategy not in SPLIT_STRATEGIES:
        raise OptionError(f"unknown split strategy {strategy!r}: choose hash (stable) or balanced (exact proportions)")
    return strategy


def check_num_proc(num_proc: int | None) -> int | None:
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise OptionError(
            f"num_proc={num_proc!r}: give a whole number of processes, 1 or more (1: serial), or None for one per core"
        )
    return num_proc


def check_engine(engine: str, ray_address: str | None, ray_temp_dir: str | None, num_proc: int | None) -> None:
    if engine not in ENGINES:
        raise OptionError(f"unknown engine {engine!r} (--engine): choose local (default) or ray")
    if engine != "ray":
        for name, value in (("ray_address", ray_address), ("ray_temp_dir", ray_temp_dir)):
            if value is not None:
                flag = "--" + name.replace("_", "-")
                raise OptionError(f"{name}={value!r} ({flag}) is for the Ray engine: add engine='ray' (--engine ray)")
        return
    if ray_address is not None and num_proc is not None:
        raise OptionError(
            f"num_proc={num_proc!r} (--num-proc) sizes a local Ray instance; the cluster joined at ray_address "
            "(--ray-address) runs on the CPUs it has: give one of them"
        )
    if ray_address is not None and ray_temp_dir is not None:
        raise OptionError(
            "ray_temp_dir (--ray-temp-dir) is for the local Ray instance; a cluster joined at ray_address "
            "(--ray-address) keeps its sessions where it was started (ray start --temp-dir): give one of them"
        )
    if importlib.util.find_spec("ray") is None:
        raise OptionError(f"engine='ray' (--engine ray) needs Ray, which is not installed: {RAY_INSTALL}")


def parse_languages(languages: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"de,la"`` (or a list) to the card's language codes, in lower case, each once."""
    if languages is None:
        return None
    example = "for example de, or de,la for German and Latin"
    codes = languages.split(",") if isinstance(languages, str) else languages
    if not isinstance(codes, (list, tuple)) or not all(isinstance(code, str) for code in codes):
        raise OptionError(f"language={languages!r} (--language): give language codes as text ({example})")
    codes = [code.strip() for code in codes if code.strip()]
    if not codes:
        raise OptionError(f"language (--language) names no language: {example}")
    for code in codes:
        if not _LANGUAGE_CODE.fullmatch(code.lower()):
            raise OptionError(
                f"language {code!r} (--language) is not an ISO 639-1 or 639-3 code: give two or three letters, "
                f"without a region or script (de, not de-DE), {example}"
            )
    return tuple(dict.fromkeys(code.lower() for code in codes))


def check_license(license: str | None) -> str | None:
    """A license identifier the Hub knows, in lower case."""
    if license is None:
        return None
    if not isinstance(license, str):
        raise OptionError(f"license={license!r} (--license): give a license identifier as text, e.g. cc-by-4.0")
    identifier = license.strip().lower()
    if identifier not in HUB_LICENSES:
        close = difflib.get_close_matches(identifier, HUB_LICENSES, n=1)
        raise OptionError(
            f"license {license!r} (--license) is not a license identifier the Hub knows"
            + (f" (did you mean {close[0]}?)" if close else "")
            + ": choose one from https://huggingface.co/docs/hub/repositories-licenses, such as cc-by-4.0 or "
            "cc0-1.0, or other for terms of your own"
        )
    return identifier


def positive_int(value: str) -> int:
    """The CLI's reading of a count of 1 or more."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of 1 or more")
    return int(value)


@dataclass(frozen=True)
class ViewOptions:
    """What a format adapter reads: how rows and their JSONL views show the sample."""

    copy_images: bool = option(
        True,
        "the JSONL views and the images/ folder they point into; without them (copy_images=False, --no-copy-images) "
        "the batch holds only the parquet files (images embedded), card and manifest",
        flag="--no-copy-images",
    )
    include_base64: bool = option(
        False, "views carry each image inline as a data: URL (OpenAI style for llama_vision, images_base64 for vlm)"
    )
    instruction: str = option(
        DEFAULT_INSTRUCTION,
        "user-turn instruction of llama_vision and vlm rows (default: German OCR instruction)",
        metavar="TEXT",
    )

    def __post_init__(self):
        if not isinstance(self.instruction, str):
            raise TypeError(f"instruction (--instruction) must be text, not {type(self.instruction).__name__}")
        try:
            self.instruction.encode("utf-8")
        except UnicodeEncodeError:
            # What a command line argument holding bytes in another encoding (Latin-1 "ä") becomes.
            raise OptionError(
                "instruction (--instruction) holds bytes that are not UTF-8 text: write it in UTF-8 "
                "(set the terminal to UTF-8, or pass it from Python as a str)"
            ) from None
        if IMAGE_PLACEHOLDER in self.instruction:
            raise OptionError(
                f"instruction (--instruction) holds {IMAGE_PLACEHOLDER}, which LLaMA-Factory and ms-swift read as "
                "an image in the chat formats' views: leave it out (the image comes before the instruction)"
            )


@dataclass(frozen=True)
class ExportOptions(ViewOptions):
    """Every option of an export: the view options, and how samples are validated, split and written."""

    skip_invalid: bool = option(
        False,
        "export the valid samples and list the others in rejected.jsonl "
        "(default: report every problem and write nothing)",
        build=True,
    )
    keep_duplicates: bool = option(
        False, "keep samples whose image and text repeat another's (default: export once)", build=True
    )
    normalize: str = option(
        "NFC",
        "Unicode normalisation of texts (default: NFC; NFKC folds long s ſ to s)",
        choices=NORMALIZATION_FORMS,
        build=True,
    )
    keep_image_metadata: bool = option(
        False,
        "keep images byte for byte (default: apply EXIF orientation, drop EXIF, GPS, XMP, ICC, comments, PNG text)",
        build=True,
    )
    split: Mapping[str, float] | str | None = option(
        None, "split ratios, e.g. train=0.8,validation=0.1,test=0.1 (default: all in train)", metavar="SPEC"
    )
    group_by: str | None = option(
        None, "metadata key whose samples share a split, e.g. document_id, page or writer", metavar="KEY"
    )
    seed: int = option(0, "seed of the split hash (default: 0)", metavar="N", cli_type=int)
    split_strategy: str = option(
        "hash",
        "hash (default): a group's split depends on its key and the seed alone, so adding samples never moves one; "
        "balanced: every split within one group of its ratio, but added groups can move others",
        choices=SPLIT_STRATEGIES,
    )
    allow_empty_splits: bool = option(
        False, "write a split that comes out empty (too few groups) with a warning (default: an error naming the split)"
    )
    max_shard_size: str | int = option(
        "500MB", "largest parquet file before the next one starts (default: 500MB)", metavar="SIZE"
    )
    language: str | Sequence[str] | None = option(
        None,
        "language of the transcriptions, for the dataset card: an ISO 639-1 or 639-3 code such as de, "
        "or several separated by commas, e.g. de,la (default: none stated)",
        metavar="CODES",
    )
    license: str | None = option(
        None,
        "license of the images and transcriptions, for the dataset card: a Hub license identifier such as "
        "cc-by-4.0 (default: the card says other and asks you to set it)",
        metavar="ID",
    )
    num_proc: int | None = option(
        None,
        "processes that validate images (one per 500; build_dataset also builds its parquet in them, "
        "one per 1,000 rows); default: one per core, 1 for serial",
        metavar="N",
        cli_type=positive_int,
        recorded=False,
        build=True,
    )
    engine: str = option(
        "local",
        "local (default): this machine's processes; ray: validation's and the writer's tasks on a Ray cluster, "
        "the same rows in the same order (needs the ray extra: " + RAY_INSTALL + ")",
        choices=ENGINES,
        recorded=False,
    )
    ray_address: str | None = option(
        None,
        "with --engine ray, the Ray cluster to join (auto on one of its nodes, or its head's host:port); "
        "default: a local Ray instance sized by --num-proc, started for the export and stopped after it",
        metavar="ADDRESS",
        recorded=False,
    )
    ray_temp_dir: str | None = option(
        None,
        "with --engine ray and no --ray-address, where the local Ray instance keeps its session (sockets, logs, "
        "spilled objects) in a folder of its own, removed after the export; default: the export folder's .ocr-datasets",
        metavar="DIR",
        recorded=False,
    )
    overwrite: bool = option(
        False, "replace an existing batch of the same id, once the new one is complete", recorded=False
    )
    cache: bool = option(
        True,
        "remember each image's verdict in the export folder (.ocr-datasets/verdicts.sqlite: sha256 and sizes, "
        "no image data, no text), so a re-export decodes only new images; --no-cache decodes every image",
        flag="--no-cache",
        recorded=False,
    )

    def __post_init__(self):
        super().__post_init__()
        # Kept as the ratios the split was read into, so the manifest records them.
        object.__setattr__(self, "split", parse_split_spec(self.split))
        check_normalization(self.normalize)
        check_split_strategy(self.split_strategy)
        check_num_proc(self.num_proc)
        check_engine(self.engine, self.ray_address, self.ray_temp_dir, self.num_proc)
        # Kept as the codes and identifier the card shows, so the manifest records them.
        object.__setattr__(self, "language", parse_languages(self.language))
        object.__setattr__(self, "license", check_license(self.license))
        # Kept as a Python int when given as any integer (numpy's too), so the manifest records it.
        given = self.max_shard_size
        if not isinstance(given, (str, bool)) and hasattr(given, "__index__"):
            object.__setattr__(self, "max_shard_size", operator.index(given))
        valid = isinstance(self.max_shard_size, int) and not isinstance(self.max_shard_size, bool)
        valid = valid or (isinstance(self.max_shard_size, str) and bool(_SHARD_SIZE.fullmatch(self.max_shard_size)))
        if not valid or self.max_shard_bytes < 1:
            raise OptionError(
                f"max_shard_size={given!r} (--max-shard-size): give bytes as a whole number of 1 or more, "
                "or a size such as 500MB"
            )

    @property
    def max_shard_bytes(self) -> int:
        """``max_shard_size`` in bytes: 500MB is 500 * 1000**2, 500MiB 500 * 1024**2, whatever the case."""
        if isinstance(self.max_shard_size, int):
            return self.max_shard_size
        size = _SHARD_SIZE.fullmatch(self.max_shard_size)
        assert size is not None, "checked in __post_init__"
        if not size["prefix"]:
            return int(size["number"])
        base = 1024 if size["binary"] else 1000
        return int(size["number"]) * base ** ("KMGT".index(size["prefix"].upper()) + 1)

    def view(self) -> ViewOptions:
        """Only what the format adapters read."""
        return ViewOptions(**{option.name: getattr(self, option.name) for option in fields(ViewOptions)})

    def recorded(self) -> dict[str, Any]:
        """The options that decide what the batch holds, as its manifest records them."""
        return {option.name: getattr(self, option.name) for option in fields(self) if option.metadata["recorded"]}


def options_of(options_class: type, keywords: Mapping[str, Any], *, where: str, only_build: bool = False):
    """``options_class(**keywords)``, with an unknown keyword named like Python names one."""
    known = {option.name for option in fields(options_class) if option.metadata["build"] or not only_build}
    unknown = sorted(set(keywords) - known)
    if unknown:
        raise TypeError(
            f"{where}() got an unexpected keyword argument {unknown[0]!r} (its options: {', '.join(sorted(known))})"
        )
    return options_class(**keywords)


def add_flags(
    parser: argparse.ArgumentParser | Any, options_class: type, only: Callable[[Any], bool] = lambda option: True
) -> None:
    """A flag for each option of ``options_class`` (those ``only`` accepts), with its choices,
    default and help as the option declares them."""
    for option in fields(options_class):
        if not only(option):
            continue
        metadata = option.metadata
        default = option.default
        flag = metadata["flag"] or "--" + option.name.replace("_", "-")
        keywords: dict[str, Any] = {"dest": option.name, "help": metadata["help"], "default": default}
        if isinstance(default, bool):
            keywords["action"] = "store_false" if default else "store_true"
        else:
            keywords.update(
                {
                    key: value
                    for key, value in (
                        ("metavar", metadata["metavar"]),
                        ("choices", metadata["choices"]),
                        ("type", metadata["cli_type"]),
                    )
                    if value
                }
            )
        parser.add_argument(flag, **keywords)


def reference() -> str:
    """Every option as the Markdown of docs/options.md (written by scripts/reference_docs.py; a
    test checks that the file is what this returns)."""
    view_options = {option.name for option in fields(ViewOptions)}
    lines = [
        "# Export options",
        "",
        "Generated from `ocr_datasets/options.py` by `scripts/reference_docs.py`; do not edit by hand.",
        "`export()` and `export_all()` take every option as a keyword, `build_dataset()` those marked *build*;",
        "the command line takes the flag. *view*: what the format adapters read; "
        "*recorded*: kept in the batch's manifest.",
        "",
        "| option | default | flag | meaning | |",
        "|---|---|---|---|---|",
    ]
    for option in fields(ExportOptions):
        metadata = option.metadata
        flag = metadata["flag"] or "--" + option.name.replace("_", "-")
        marks = ", ".join(
            mark
            for mark, applies in (
                ("view", option.name in view_options),
                ("recorded", metadata["recorded"]),
                ("build", metadata["build"]),
            )
            if applies
        )
        default = "German OCR instruction" if option.name == "instruction" else repr(option.default)
        lines.append(f"| `{option.name}` | `{default}` | `{flag}` | {metadata['help']} | {marks} |")
    return "\n".join(lines) + "\n"
