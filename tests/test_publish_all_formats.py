"""Every format of an export or none: ``--format all`` (and ``--overwrite``) killed, interrupted or
out of disk at any moment, recovered by the next export; and the command's behaviour around it:
Ctrl-C, ``--overwrite`` onto a folder that is not a batch, a reader that stops early, standard
input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from PIL import Image
from support.cli import run_cli
from test_atomic_batches import export_in_a_small_mount

from ocr_datasets import export_all, list_exports, read_manifest, verify_batch
from ocr_datasets.adapters import FORMAT_NAMES, get_adapter
from ocr_datasets.cli import main
from ocr_datasets.errors import InterruptedAfterPublishing
from ocr_datasets.example import write_example_manifest
from ocr_datasets.manifest import ExportResult
from ocr_datasets.verdicts import CACHE_FOLDER
from ocr_datasets.writer import STAGING_SUFFIX, BatchWriter, clean_leftovers

# Kills, interrupts and full disks in subprocesses: a minute in all.
pytestmark = pytest.mark.slow

FOLDERS = tuple(get_adapter(name).folder for name in FORMAT_NAMES)
INTERRUPTED = "ocr-datasets: interrupted: nothing was published\n"
INTERRUPTED_ONCE_PUBLISHED = "ocr-datasets: interrupted after publishing "
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "ocr_datasets.cli", *map(str, args)]


def start(command: list[str], **popen) -> subprocess.Popen:
    """A process in its own process group, so a signal can reach it and every worker it forked,
    as Ctrl-C in a terminal does."""
    settings = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        "start_new_session": True,
        "env": {**os.environ, **OFFLINE},
    }
    return subprocess.Popen(command, **(settings | popen))


def finished(process: subprocess.Popen) -> tuple[str, str]:
    """The process's output once it has ended; a process (group) that hangs is killed, so that
    a failing test leaves none behind."""
    try:
        return process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def export_all_command(corpus: Path, root: Path, batch_id: str, *extra) -> list[str]:
    return cli(
        "export", "--input", corpus, "--format", "all", "--output", root, "--batch-id", batch_id, "--quiet", *extra
    )


def timed_run(command: list[str]) -> float:
    started = time.monotonic()
    completed = subprocess.run(
        command, check=False, capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=300
    )
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
    assert all(unchanged) or not any(unchanged), {
        folder: now[folder] is not None and not same for folder, same in zip(FOLDERS, unchanged, strict=True)
    }
    for folder in FOLDERS:
        if now[folder] is not None:
            assert verify_batch(root / folder / batch_id) == [], folder
    if all(unchanged):
        return "before"
    assert all(now[folder] is not None for folder in FOLDERS)
    return "new"


def hidden_leftovers(root: Path) -> list[str]:
    """What exports left hidden under ``root``, but the verdict cache, which is meant to stay."""
    hidden = [*root.glob(".*"), *root.glob("*/.*")]
    return sorted(str(path.relative_to(root)) for path in hidden if path.relative_to(root).parts[0] != CACHE_FOLDER)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_example_manifest(tmp_path_factory.mktemp("corpus"), count=24)


def writing(root: Path, folder: str = "*") -> bool:
    """Whether an export is writing under ``root`` (into ``folder``): a staging folder exists."""
    return any(root.glob(f"{folder}/.*{STAGING_SUFFIX}"))


def rows_written(root: Path, folder: str = "*") -> bool:
    """Whether an export has written rows under ``root`` (into ``folder``): a parquet file exists."""
    return any(root.glob(f"{folder}/.*{STAGING_SUFFIX}/data/*"))


def wait_until(process: subprocess.Popen, condition) -> bool:
    """Wait until ``condition()`` holds (True) or the process has ended (False)."""
    while process.poll() is None:
        if condition():
            return True
        time.sleep(0.002)
    return False


def assert_interrupted_or_done(
    process: subprocess.Popen, stderr: str, root: Path, batch_id: str, before: dict[str, bytes | None]
) -> None:
    """After Ctrl-C: one line and exit 130, with every format as it was (the export put back
    what it had done itself, before any clean-up) or, once it had published, with every new
    batch in place; or the export was done."""
    if process.returncode == 130 and stderr.startswith(INTERRUPTED_ONCE_PUBLISHED):
        assert whole_set(root, batch_id, before) == "new"
    elif process.returncode == 130:
        assert stderr == INTERRUPTED
        assert whole_set(root, batch_id, before) == "before"
    else:
        # Done, or done and then interrupted while Python shut down (no message, killed by the signal).
        assert process.returncode in (0, -signal.SIGINT) and stderr == "", (process.returncode, stderr)
        assert whole_set(root, batch_id, before) == "new"


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_export_all_killed_or_interrupted_at_any_moment_publishes_every_format_or_none(signal_number, corpus, tmp_path):
    root = tmp_path / "exports"
    rng = random.Random(signal_number)
    # An uninterrupted export is the batch every second attempt overwrites, and times how long
    # an export writes (starting Python and validating come before, and are no concern here).
    first = start(export_all_command(corpus, root, "kept"))
    wait_until(first, lambda: writing(root))
    began = time.monotonic()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    writing_time = time.monotonic() - began
    interrupted = []
    for attempt in range(8):
        overwrite = attempt % 2 == 1
        batch_id = "kept" if overwrite else f"fresh-{attempt}"
        command = export_all_command(corpus, root, batch_id, *(["--overwrite"] if overwrite else []))
        before = manifests(root, batch_id)
        process = start(command)
        wait_until(process, lambda: writing(root))
        time.sleep(rng.uniform(0, writing_time))
        os.killpg(process.pid, signal_number)
        _, stderr = finished(process)
        if signal_number == signal.SIGINT:
            assert_interrupted_or_done(process, stderr, root, batch_id, before)
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
        export_all(read_manifest(corpus), batch_id="b1", output_dir=root, progress=False)
    before = manifests(root, "b1")
    command = export_all_command(corpus, root, "b1", *(["--overwrite"] if overwrite else []))[3:]
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


def test_a_full_disk_while_the_formats_are_written_publishes_none(corpus, tmp_path):
    measured = tmp_path / "measured"
    timed_run(export_all_command(corpus, measured, "b1"))
    # Room for half of the three formats, which are written side by side.
    room = sum(allocated_bytes(measured / folder) for folder in FOLDERS) // 2
    completed = export_in_a_small_mount(tmp_path, corpus, f"size={room // 1024}k", "all")
    assert completed.returncode == 2, completed.stderr
    assert "No space left on device" in completed.stderr and "nothing was written" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert [
        line
        for line in completed.stdout.splitlines()
        if line not in ("exports", *(f"exports/{folder}" for folder in FOLDERS))
    ] == []


@pytest.fixture(scope="module")
def many_lines(tmp_path_factory) -> Path:
    """Over 2,000 small line images that differ from each other (quicker to make than rendered
    text): enough for validation and the parquet writer to run two worker processes each."""
    folder, count = tmp_path_factory.mktemp("many-lines"), 2100
    (folder / "images").mkdir()
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as manifest:
        for number in range(count):
            image = Image.new("L", (48, 16), 255)
            for bit in range(16):
                if number >> bit & 1:
                    image.paste(0, (2 + 2 * bit, 4, 3 + 2 * bit, 12))
            image.save(folder / "images" / f"line-{number}.png")
            manifest.write(
                json.dumps(
                    {
                        "id": f"line-{number}",
                        "image_path": f"images/line-{number}.png",
                        "ground_truth": f"Zeile {number}",
                    }
                )
                + "\n"
            )
    return folder / "samples.jsonl"


def worker_processes(process: subprocess.Popen) -> int:
    return len(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split())


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(lambda root: not rows_written(root), id="validating"),
        pytest.param(lambda root: rows_written(root, "trocr"), id="writing the first format"),
        pytest.param(lambda root: rows_written(root, "generic"), id="writing the third format"),
    ],
)
def test_ctrl_c_while_worker_processes_run_prints_one_line_and_exits_130(moment, many_lines, tmp_path):
    root = tmp_path / "exports"
    process = start(
        cli(
            "export",
            "--input",
            many_lines,
            "--format",
            "all",
            "--output",
            root,
            "--batch-id",
            "b1",
            "--quiet",
            "--num-proc",
            "2",
        )
    )
    assert wait_until(process, lambda: worker_processes(process) >= 2 and moment(root)), (
        "the export ended before the moment came"
    )
    # Not while Python forks: a KeyboardInterrupt raised in its at-fork hooks is printed and lost.
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = finished(process)
    assert (process.returncode, stderr) == (130, INTERRUPTED)
    assert manifests(root, "b1") == dict.fromkeys(FOLDERS) and hidden_leftovers(root) == []
    # No worker outlives the command.
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.killpg(process.pid, 0)
            time.sleep(0.1)


def test_ctrl_c_in_code_python_runs_with_exec_still_exits_130(example_manifest, tmp_path):
    # A module imported mid-export makes its dataclasses and named tuples with exec(). CPython
    # remembers an interrupt that left exec'd code and, run with -m, kills the process with
    # SIGINT at exit (status -2) even once it is handled and main returned 130.
    (tmp_path / "interrupted_in_exec.py").write_text(
        """
import os, signal, sys, time
from ocr_datasets import api, cli

def export_all(*args, **kwargs):
    exec("os.kill(os.getpid(), signal.SIGINT)\\ntime.sleep(30)")

api.export_all = export_all
sys.exit(cli.main(sys.argv[1:]))
"""
    )
    command = [sys.executable, "-m", "interrupted_in_exec", "export", "--input", example_manifest]
    process = start([*command, "--format", "all", "--output", tmp_path / "exports"], cwd=tmp_path)
    _, stderr = finished(process)
    assert (process.returncode, stderr) == (130, INTERRUPTED)


def test_ctrl_c_while_python_exits_after_the_command_ends_it_quietly_with_its_code(example_manifest, tmp_path):
    # Once the command has done its work and said so, Python's exit handlers run (filelock's
    # releases its locks, multiprocessing's joins its workers): a Ctrl-C then printed "Exception
    # ignored in atexit callback" and a traceback under the finished export's summary.
    (tmp_path / "interrupted_at_exit.py").write_text(
        """
import atexit, os, signal, sys
from ocr_datasets import cli

atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))
sys.exit(cli.run(sys.argv[1:]))
"""
    )
    command = [sys.executable, "-m", "interrupted_at_exit", "export", "--input", example_manifest]
    process = start([*command, "--format", "trocr", "--output", tmp_path / "exports", "--quiet"], cwd=tmp_path)
    _, stderr = finished(process)
    assert (process.returncode, stderr) == (0, "")
    assert len(list((tmp_path / "exports" / "trocr").glob("*/manifest.json"))) == 1


def test_ctrl_c_once_published_says_so_with_the_batches_in_place(example_manifest, tmp_path, monkeypatch):
    tidy_up = BatchWriter.__exit__

    def interrupted_while_tidying_up(self, *error):
        tidy_up(self, *error)
        raise KeyboardInterrupt

    monkeypatch.setattr(BatchWriter, "__exit__", interrupted_while_tidying_up)
    with pytest.raises(InterruptedAfterPublishing) as interrupted:
        export_all(read_manifest(example_manifest), batch_id="b1", output_dir=tmp_path, progress=False)
    assert [result.export_format for result in interrupted.value.results] == list(FORMAT_NAMES)
    for result in interrupted.value.results:
        assert verify_batch(result.export_path) == []


def test_ctrl_c_as_the_committed_journal_is_removed_keeps_the_new_batches(example_manifest, tmp_path, monkeypatch):
    # The interrupt raised when the unlink returns: the journal that told "committed" is gone.
    export_all(read_manifest(example_manifest), batch_id="b1", output_dir=tmp_path, progress=False)
    before = manifests(tmp_path, "b1")
    unlink = Path.unlink

    def interrupted_once_removed(path, *args, **kwargs):
        unlink(path, *args, **kwargs)
        if path.name.endswith(".committed"):
            raise KeyboardInterrupt

    monkeypatch.setattr(Path, "unlink", interrupted_once_removed)
    with pytest.raises(InterruptedAfterPublishing):
        export_all(read_manifest(example_manifest), batch_id="b1", output_dir=tmp_path, progress=False, overwrite=True)
    monkeypatch.undo()
    assert whole_set(tmp_path, "b1", before) == "new"


def test_ctrl_c_while_the_summary_prints_names_what_was_published(example_manifest, tmp_path, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(ExportResult, "read_manifest", interrupted)
    completed = run_cli(
        "export", "--input", example_manifest, "--format", "all", "--output", tmp_path, "--batch-id", "b1", "--quiet"
    )
    published = ", ".join(str(tmp_path / folder / "b1") for folder in FOLDERS)
    assert (completed.returncode, completed.stderr) == (130, f"{INTERRUPTED_ONCE_PUBLISHED}{published}\n")
    for folder in FOLDERS:
        assert verify_batch(tmp_path / folder / "b1") == []


def test_overwrite_refuses_a_folder_that_is_not_a_batch(example_manifest, tmp_path):
    root = tmp_path / "exports"
    precious = root / "generic" / "b1"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("not a batch", encoding="utf-8")

    with pytest.raises(FileExistsError, match="not a batch") as raised:
        export_all(read_manifest(example_manifest), batch_id="b1", output_dir=root, overwrite=True, progress=False)
    assert str(precious) in str(raised.value)
    assert (precious / "notes.txt").read_text(encoding="utf-8") == "not a batch"
    assert list_exports(output_dir=root) == []

    completed = subprocess.run(
        cli(
            "export",
            "--input",
            example_manifest,
            "--format",
            "generic",
            "--output",
            root,
            "--batch-id",
            "b1",
            "--overwrite",
            "--quiet",
        ),
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )
    assert (
        completed.returncode == 2
        and completed.stderr.startswith("ocr-datasets: error:")
        and str(precious) in completed.stderr
    )
    assert (precious / "notes.txt").exists() and list_exports(output_dir=root) == []


@pytest.mark.parametrize("command", ["export", "list"])
def test_a_reader_that_stops_early_is_no_error(command, example_manifest, tmp_path):
    root = tmp_path / "exports"
    export_all(read_manifest(example_manifest), batch_id="listed", output_dir=root, progress=False)
    args = (
        ("export", "--input", example_manifest, "--format", "all", "--batch-id", "b1", "--quiet")
        if command == "export"
        else ("list",)
    )
    # `... | head -1` once head has gone: the pipe is closed before the command writes to it.
    process = start(cli(*args, "--output", root))
    process.stdout.close()
    _, stderr = finished(process)
    assert process.returncode == 0 and stderr == ""
    if command == "export":
        assert {result.batch_id for result in list_exports(output_dir=root)} == {"listed", "b1"}


@pytest.mark.parametrize("how", ["- from a pipe", "/dev/stdin from a pipe", "/dev/stdin from a file"])
def test_the_manifest_can_come_from_standard_input(how, example_manifest, tmp_path):
    root = tmp_path / "exports"
    name = "-" if how.startswith("-") else "/dev/stdin"
    command = cli(
        "export",
        "--input",
        name,
        "--from",
        "jsonl",
        "--format",
        "trocr",
        "--output",
        root,
        "--batch-id",
        "b1",
        "--quiet",
    )
    environment = {**os.environ, **OFFLINE}
    # Image paths are relative to the current folder: the manifest's own folder is unknown.
    if how.endswith("pipe"):
        completed = subprocess.run(
            command,
            check=False,
            input=example_manifest.read_text(encoding="utf-8"),
            capture_output=True,
            text=True,
            cwd=example_manifest.parent,
            env=environment,
            timeout=120,
        )
    else:
        with example_manifest.open("rb") as manifest:
            completed = subprocess.run(
                command,
                check=False,
                stdin=manifest,
                capture_output=True,
                text=True,
                cwd=example_manifest.parent,
                env=environment,
                timeout=120,
            )
    assert completed.returncode == 0, completed.stderr
    [result] = list_exports(output_dir=root)
    assert result.sample_count == 12
