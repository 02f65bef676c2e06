"""Nothing lost, nothing half-written: SIGKILL at any moment, two processes at once, full or
read-only disks, and no file left outside the export folder."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ocr_datasets import FORMAT_NAMES, list_exports, verify_batch
from ocr_datasets.adapters import get_adapter
from ocr_datasets.example import write_example_manifest

EXPORT_SCRIPT = textwrap.dedent(
    """
    import sys
    from ocr_datasets import export_all, read_manifest
    manifest, root, batch_id, overwrite = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    export_all(read_manifest(manifest), batch_id=batch_id, output_dir=root, overwrite=overwrite, progress=False)
    print("done")
    """
)


def start_export(
    manifest: Path, root: Path, batch_id: str, *, overwrite: bool = False, env: dict | None = None, prelude: str = ""
) -> subprocess.Popen:
    """A process exporting every format of ``manifest``, after running ``prelude``."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [
        sys.executable,
        "-c",
        prelude + EXPORT_SCRIPT,
        str(manifest),
        str(root),
        batch_id,
        "1" if overwrite else "0",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def visible_state(root: Path) -> list[tuple[str, str]]:
    return sorted((result.export_format, result.batch_id) for result in list_exports(output_dir=root))


def every_format(batch_id: str) -> list[tuple[str, str]]:
    """``visible_state`` when a batch ``batch_id`` of every format is all there is."""
    return sorted((export_format, batch_id) for export_format in FORMAT_NAMES)


def hidden_leftovers(root: Path) -> list[str]:
    return sorted(path.name for path in root.glob("*/.*"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_example_manifest(tmp_path_factory.mktemp("corpus"), count=120)


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_whole_batches_or_none(corpus, tmp_path):
    root = tmp_path / "exports"
    rng = random.Random(7)
    completed = set()
    for attempt in range(24):
        batch_id = f"b{attempt}"
        process = start_export(corpus, root, batch_id)
        time.sleep(rng.uniform(0.3, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        listed = visible_state(root)
        # What list_exports shows is exactly the batches that finished, and each is whole.
        for export_format, listed_id in listed:
            assert verify_batch(root / get_adapter(export_format).folder / listed_id) == [], (attempt, export_format)
        completed |= {listed_id for _, listed_id in listed}
    assert len(completed) < 24, "some kills should land while an export runs"

    finisher = start_export(corpus, root, "after-the-kills")
    assert finisher.wait(timeout=300) == 0, finisher.stderr.read()
    assert hidden_leftovers(root) == [], "the next export removes what killed ones left behind"


@pytest.mark.slow
def test_two_exports_of_different_batches_at_once_both_succeed(corpus, tmp_path):
    root = tmp_path / "exports"
    first, second = start_export(corpus, root, "left"), start_export(corpus, root, "right")
    assert (first.wait(timeout=300), second.wait(timeout=300)) == (0, 0), first.stderr.read() + second.stderr.read()
    assert {batch_id for _, batch_id in visible_state(root)} == {"left", "right"}
    assert all(verify_batch(path) == [] for path in root.glob("[!.]*/[!.]*"))


@pytest.mark.slow
def test_two_exports_of_one_batch_id_at_once_one_wins_the_other_says_why(corpus, tmp_path):
    root = tmp_path / "exports"
    contenders = [start_export(corpus, root, "same"), start_export(corpus, root, "same")]
    codes = [process.wait(timeout=300) for process in contenders]
    assert sorted(codes) == [0, 1]
    message = contenders[codes.index(1)].stderr.read()
    assert "already exists" in message or "appeared" in message, message
    assert visible_state(root) == every_format("same")
    for path in root.glob("*/same"):
        assert verify_batch(path) == []
    assert hidden_leftovers(root) == []


@pytest.mark.slow
def test_overwrite_replaces_the_old_batch_only_when_the_new_one_is_whole(corpus, tmp_path):
    root = tmp_path / "exports"
    assert start_export(corpus, root, "b1").wait(timeout=300) == 0
    old_manifest = (root / "trocr" / "b1" / "manifest.json").read_bytes()
    process = start_export(corpus, root, "b1", overwrite=True)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Killed before it finished: the old batch is still there, whole (or, if it finished, the new one).
    assert verify_batch(root / "trocr" / "b1") == []
    assert start_export(corpus, root, "b1", overwrite=True).wait(timeout=300) == 0
    assert (root / "trocr" / "b1" / "manifest.json").read_bytes() != old_manifest
    assert hidden_leftovers(root) == []


def test_an_export_leaves_nothing_in_home_caches_or_the_temp_folder(corpus, tmp_path):
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), temp.mkdir()
    # A fresh process with its own home and temp folder and no Hugging Face variables: whatever
    # datasets would cache by default lands there, where the test can see it.
    environment = {"HOME": str(home), "TMPDIR": str(temp), "HF_HOME": "", "HF_DATASETS_CACHE": "", "XDG_CACHE_HOME": ""}
    environment = {
        key: value for key, value in {**os.environ, **environment}.items() if value and not key.startswith("HF_")
    }
    command = [sys.executable, "-c", EXPORT_SCRIPT, str(corpus), str(tmp_path / "exports"), "b1", "0"]
    completed = subprocess.run(command, check=False, capture_output=True, text=True, env=environment, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert sorted(str(path.relative_to(tmp_path)) for path in [*home.rglob("*"), *temp.rglob("*")]) == []
    assert hidden_leftovers(tmp_path / "exports") == []


def export_in_a_small_mount(
    tmp_path: Path, corpus: Path, mount_options: str, export_format: str = "trocr"
) -> subprocess.CompletedProcess:
    """Export ``export_format`` into a tmpfs mounted (in a private mount namespace) with
    ``mount_options``; stdout lists what the mount holds afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only file system needs root (CI runs as root)")
    target = tmp_path / "mount"
    target.mkdir()
    script = (
        f"mount -t tmpfs -o {mount_options} tmpfs {target} && "
        f"{sys.executable} -m ocr_datasets.cli export --input {corpus} --format {export_format} --output "
        f"{target}/exports --batch-id b1 --quiet; "
        f'code=$?; find {target} -mindepth 1 | sed "s|{target}/||"; exit $code'
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def test_a_full_disk_gives_a_clear_error_and_no_partial_batch(corpus, tmp_path):
    completed = export_in_a_small_mount(tmp_path, corpus, "size=256k")
    assert completed.returncode == 2, completed.stderr
    assert "No space left on device" in completed.stderr and "nothing was written" in completed.stderr
    assert "Traceback" not in completed.stderr
    # The format folder may remain, empty; no batch and no staging folder.
    assert [line for line in completed.stdout.splitlines() if line not in ("exports", "exports/trocr")] == []


def test_a_read_only_output_gives_a_clear_error(corpus, tmp_path):
    completed = export_in_a_small_mount(tmp_path, corpus, "ro,size=1m")
    assert completed.returncode == 2, completed.stderr
    assert "Read-only file system" in completed.stderr and "nothing was written" in completed.stderr
    assert completed.stdout.strip() == ""
