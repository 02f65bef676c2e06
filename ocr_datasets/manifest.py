"""The batch manifest: what the original service wrote, plus what a careful user checks."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, TextIO

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = "1.0"


@dataclass(frozen=True)
class ExportResult:
    """The original service's result of one export (paths as strings, ``created_at`` ISO 8601 UTC)."""

    export_format: str
    export_path: str
    sample_count: int
    batch_id: str
    created_at: str
    manifest_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def read_manifest(self) -> dict[str, Any]:
        return json.loads(Path(self.manifest_path).read_text(encoding="utf-8"))


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("ocr-datasets", "datasets", "pyarrow", "pillow", "huggingface-hub"):
        try:
            versions[package] = package_metadata.version(package)
        except package_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def build_manifest(
    *,
    export_format: str,
    batch_id: str,
    created_at: str,
    config_name: str,
    fingerprint: str,
    counts: dict[str, int],
    image_checks: dict[str, int],
    splits: dict[str, int],
    statistics: dict[str, dict],
    options: dict[str, Any],
    model_config: dict[str, Any],
    files: Iterable[str],
    rejection_reasons: dict[str, int],
) -> dict[str, Any]:
    """The first seven keys are the original service's, with the same meaning. ``checksums``
    (sha256 and size of every file in ``files``) is added by ``write_manifest``.
    ``rejection_reasons`` counts the rejected samples by reason, most common first;
    ``image_checks`` how many images were decoded and how many verdicts came from the cache."""
    return {
        "format": export_format,
        "version": MANIFEST_VERSION,
        "batch_id": batch_id,
        "sample_count": counts["exported"],
        "created_at": created_at,
        "files": files,
        "model_config": model_config,
        "counts": counts,
        "rejection_reasons": rejection_reasons,
        "image_checks": image_checks,
        "splits": splits,
        "statistics": statistics,
        "config_name": config_name,
        "fingerprint": fingerprint,
        "options": options,
        "library_versions": library_versions(),
    }


def write_manifest(path: Path, manifest: dict[str, Any], checksums: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Write ``manifest`` plus a last key ``checksums``, key by key. ``files`` and ``checksums``
    are written one entry per line as they come: with an entry per image they run to megabytes,
    and an export's memory must not grow with its batch."""
    streamed = {
        "files": ("[]", (json.dumps(name, ensure_ascii=False) for name in manifest["files"])),
        "checksums": (
            "{}",
            (f"{json.dumps(name, ensure_ascii=False)}: {json.dumps(checksum)}" for name, checksum in checksums),
        ),
    }
    keys = [key for key in manifest if key != "checksums"] + ["checksums"]
    with path.open("w", encoding="utf-8") as file:
        file.write("{")
        for number, key in enumerate(keys):
            file.write(f"{',' if number else ''}\n  {json.dumps(key)}: ")
            if key in streamed:
                _write_entries(file, *streamed[key])
            else:
                # Nested values indented as json.dumps(indent=2) does at this depth.
                file.write(json.dumps(manifest[key], ensure_ascii=False, indent=2).replace("\n", "\n  "))
        file.write("\n}\n")


def _write_entries(file: TextIO, brackets: str, entries: Iterable[str]) -> None:
    file.write(brackets[0])
    for number, entry in enumerate(entries):
        file.write(f"{',' if number else ''}\n    {entry}")
    file.write(f"\n  {brackets[1]}")


def result_from_manifest(manifest_path: Path, manifest: dict[str, Any]) -> ExportResult:
    return ExportResult(
        export_format=manifest["format"],
        export_path=str(manifest_path.parent),
        sample_count=manifest["sample_count"],
        batch_id=manifest["batch_id"],
        created_at=manifest["created_at"],
        manifest_path=str(manifest_path),
    )
