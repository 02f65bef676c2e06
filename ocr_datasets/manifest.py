"""The batch manifest: what the original service wrote, plus what a careful user checks."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

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
    splits: dict[str, int],
    statistics: dict[str, dict],
    options: dict[str, Any],
    model_config: dict[str, Any],
    checksums: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The first seven keys are the original service's, with the same meaning."""
    return {
        "format": export_format,
        "version": MANIFEST_VERSION,
        "batch_id": batch_id,
        "sample_count": counts["exported"],
        "created_at": created_at,
        "files": sorted(checksums),
        "model_config": model_config,
        "counts": counts,
        "splits": splits,
        "statistics": statistics,
        "config_name": config_name,
        "fingerprint": fingerprint,
        "options": options,
        "library_versions": library_versions(),
        "checksums": checksums,
    }


def result_from_manifest(manifest_path: Path, manifest: dict[str, Any]) -> ExportResult:
    return ExportResult(
        export_format=manifest["format"],
        export_path=str(manifest_path.parent),
        sample_count=manifest["sample_count"],
        batch_id=manifest["batch_id"],
        created_at=manifest["created_at"],
        manifest_path=str(manifest_path),
    )
