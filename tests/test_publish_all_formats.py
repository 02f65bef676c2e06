"""Every format of an export or none: ``--format all`` (and ``--overwrite``) killed, interrupted or
out of disk at any moment, recovered by the next export; and the command's behaviour around it:
Ctrl-C, ``--overwrite`` onto a folder that is not a batch, a reader that stops early, standard
input."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from test_atomic_batches import export_in_a_small_mount

from ocr_datasets import export, list_exports, read_manifest, verify_batch
from ocr_datasets.cli import main
from ocr_datasets.example import write_example_manifest
from ocr_datasets.writer import STAGING_SUFFIX, clean_leftovers

FOLDERS = ("trocr", "llama-vision", "generic")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "ocr_datasets.cli", *map(str, args)]


def start(command: list[str], **popen) -> subprocess.Popen:
    """A process in its own process group, so a signal can reach it and every worker it forked,
    as Ctrl-C in a terminal does."""
    settings = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "start_new_session": True, "env": {**os.environ, **OFFLINE}}
    return subprocess.Popen(command, **(settings | popen))


def export_all(corpus: Path, root: Path, batch_id: str, *extra) -> list[str]:
    return cli("export", "--input", corpus, "--format", "all", "--output", root, "--batch-id", batch_id, "--quiet", *extra)


def timed_run(command: list[str]) -> float:
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=300)
    assert completed.returncode == 0, completed.stderr
    return time.monotonic() - started


def manifests(root: Path, batch_id: str) -> dict[str, bytes | None]:
    paths = {folder: root / folder / batch_id / "manifest.json" for folder in FOLDERS}
    return {folder: path.read_bytes() if path.exists() else None for folder, path in paths.items()}


def whole_set(root: Path, batch_id: str, before: dict[str, bytes | None]) -> str:
    """``"before"`` if every format holds what it held before (``before``: manifests, or None
    for no batch), ``"new"`` if every format holds a new batch; anything else fails."""
    now = manifests(root, batch_id)
    unchanged = [now[folder] == before[folder] for folder in FOLDERS]
    assert all(unchanged) or not any(unchanged), {folder: now[folder] is not None and not same for folder, same in zip(FOLDERS, unchanged)}
    for folder in FOLDERS:
        if now[folder] is not None:
            assert verify_batch(root / folder / batch_id) == [], folder
    if all(unchanged):
        return "before"
    assert all(now[folder] is not None for folder in FOLDERS)
    return "new"


def hidden_leftovers(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in [*root.glob(".*"), *root.glob("*/.*")])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_example_manifest(tmp_path_factory.mktemp("corpus"), count=24)


def writing(root: Path, folder: str = "*") -> bool:
    """Whether an export is writing under ``root`` (into ``folder``): a staging folder exists."""
    return any(root.glob(f"{folder}/.*{STAGING_SUFFIX}"))


def wait_until(process: subprocess.Popen, condition) -> bool:
    """Wait until ``condition()`` holds (True) or the process has ended (False)."""
    while process.poll() is None:
        if condition():
            return True
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("signal_number", [signal.SIGKILL], ids=["SIGKILL"])
def test_export_all_killed_or_interrupted_at_any_moment_publishes_every_format_or_none(signal_number, corpus, tmp_path):
    root = tmp_path / "exports"
    rng = random.Random(signal_number)
    # An uninterrupted export is the batch every second attempt overwrites, and times how long
    # an export writes (starting Python and validating come before, and are no concern here).
    first = start(export_all(corpus, root, "kept"))
    wait_until(first, lambda: writing(root))
    began = time.monotonic()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    writing_time = time.monotonic() - began
    interrupted = []
    for attempt in range(8):
        overwrite = attempt % 2 == 1
        batch_id = "kept" if overwrite else f"fresh-{attempt}"
        command = export_all(corpus, root, batch_id, *(["--overwrite"] if overwrite else []))
        before = manifests(root, batch_id)
        process = start(command)
        wait_until(process, lambda: writing(root))
        time.sleep(rng.uniform(0, writing_time))
        os.killpg(process.pid, signal_number)
        process.communicate(timeout=120)
        clean_leftovers(root)
        if whole_set(root, batch_id, before) == "before":
            interrupted.append(command)
        assert hidden_leftovers(root) == [], attempt
    assert interrupted, "some signals should land while an export writes"
    # The same command again completes, whatever the interrupted one left.
    timed_run(interrupted[-1])
    assert hidden_leftovers(root) == []


def killed_at_rename(root: Path, dies_at: int, work) -> bool:
    """Run ``work()`` in a forked copy of this process that is killed (SIGKILL) just before its
    ``dies_at``-th rename of something into ``root`` or a format folder in it: the moves that
    publish batches, set old ones aside and put them back. True if it was killed. (Forked
    rather than started afresh: the libraries are imported already.)"""
    child = os.fork()
    if child == 0:
        try:
            renames = 0

            def dying(rename):
                def rename_or_die(source, target, *args, **kwargs):
                    nonlocal renames
                    if root in Path(os.path.abspath(target)).parents[:2]:
                        renames += 1
                        if renames == dies_at:
                            os.kill(os.getpid(), signal.SIGKILL)
                    return rename(source, target, *args, **kwargs)

                return rename_or_die

            os.rename, os.replace = dying(os.rename), dying(os.replace)
            work()
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) in (0, -signal.SIGKILL)
    return os.waitstatus_to_exitcode(status) == -signal.SIGKILL


@pytest.mark.parametrize("overwrite", [False, True], ids=["new batch", "overwrite"])
def test_a_kill_between_any_two_moves_of_the_swap_is_undone_by_the_next_export(overwrite, tmp_path):
    corpus = write_example_manifest(tmp_path / "corpus", count=12)
    root = tmp_path / "exports"
    if overwrite:
        export(read_manifest(corpus), "all", batch_id="b1", output_dir=root, progress=False)
    before = manifests(root, "b1")
    command = export_all(corpus, root, "b1", *(["--overwrite"] if overwrite else []))[3:]
    dies_at = 1
    while killed_at_rename(root, dies_at, lambda: main(command)):
        # The recovery itself killed once, after its first move, then run to the end.
        killed_at_rename(root, 2, lambda: clean_leftovers(root))
        clean_leftovers(root)
        assert whole_set(root, "b1", before) == "before", dies_at
        assert hidden_leftovers(root) == [], dies_at
        dies_at += 1
    # Every format moved, set aside and committed: at least one rename per format and a commit.
    assert dies_at > len(FOLDERS) + 1
    assert whole_set(root, "b1", before) == "new"
    assert hidden_leftovers(root) == []


def allocated_bytes(folder: Path) -> int:
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*"))


def test_a_full_disk_during_the_third_format_publishes_none(corpus, tmp_path):
    measured = tmp_path / "measured"
    timed_run(export_all(corpus, measured, "b1"))
    sizes = [allocated_bytes(measured / folder) for folder in FOLDERS]
    # Room for the first two formats and half the third.
    room = sizes[0] + sizes[1] + sizes[2] // 2
    completed = export_in_a_small_mount(tmp_path, corpus, f"size={room // 1024}k", "all")
    assert completed.returncode == 2, completed.stderr
    assert "No space left on device" in completed.stderr and "nothing was written" in completed.stderr
    assert "/generic" in completed.stderr, "the disk should fill during the third format"
    assert "Traceback" not in completed.stderr
    assert [line for line in completed.stdout.splitlines() if line not in ("exports", *(f"exports/{folder}" for folder in FOLDERS))] == []


def test_overwrite_refuses_a_folder_that_is_not_a_batch(example_manifest, tmp_path):
    root = tmp_path / "exports"
    precious = root / "generic" / "b1"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("not a batch", encoding="utf-8")

    with pytest.raises(FileExistsError, match="not a batch") as raised:
        export(read_manifest(example_manifest), "all", batch_id="b1", output_dir=root, overwrite=True, progress=False)
    assert str(precious) in str(raised.value)
    assert (precious / "notes.txt").read_text(encoding="utf-8") == "not a batch"
    assert list_exports(output_dir=root) == []

    completed = subprocess.run(
        cli("export", "--input", example_manifest, "--format", "generic", "--output", root, "--batch-id", "b1", "--overwrite", "--quiet"),
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )
    assert completed.returncode == 2 and completed.stderr.startswith("ocr-datasets: error:") and str(precious) in completed.stderr
    assert (precious / "notes.txt").exists() and list_exports(output_dir=root) == []
