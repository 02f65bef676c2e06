"""Every platform its users have: Windows (no fcntl, no fork, and os.kill terminates rather than
probes), macOS (spawn by default, fork unsafe), Linux; the Python the package says it needs; and an
install that prints no warnings."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from test_atomic_batches import every_format, start_export, visible_state

# many_lines: a fixture, imported for pytest to find (F401).
from test_publish_all_formats import finished, hidden_leftovers, manifests, many_lines  # noqa: F401

from ocr_datasets import list_exports, verify_batch
from ocr_datasets.example import write_example_manifest

# Spawned workers and subprocesses without fcntl, a wheel build.
pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("ocr_datasets", "builders")

# Run before the library is imported: a Python without fcntl, as on Windows, where moreover
# os.kill(pid, 0) terminates the process instead of probing it. The library may not call it;
# anyone else may (the lock package probes a recorded owner with it where that is safe).
WITHOUT_FCNTL = textwrap.dedent(
    """
    import os, sys
    sys.modules["fcntl"] = None
    signal_process = os.kill

    def kill_unless_called_by_the_library(pid, signal_number):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.split(".")[0] == "ocr_datasets":
            raise AssertionError(f"{caller} called os.kill({pid}, {signal_number})")
        signal_process(pid, signal_number)

    os.kill = kill_unless_called_by_the_library
    """
)

# The export is killed just after its first batch moved into place: one format holds the new
# batch, the others the old one, and the journal, the lock and staging folders are left behind.
DIES_ONCE_A_BATCH_IS_IN_PLACE = textwrap.dedent(
    """
    import signal
    from pathlib import Path
    rename = os.rename

    def rename_then_die_once_a_batch_is_in_place(source, target, *args, **kwargs):
        rename(source, target, *args, **kwargs)
        if Path(target).name == sys.argv[3]:
            os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename_then_die_once_a_batch_is_in_place
    """
)


def assert_whole_batches(root: Path, expected: list[tuple[str, str]]) -> None:
    """``root`` holds the batches ``expected`` (as ``visible_state`` lists them), each whole,
    and nothing hidden: no staging folder, journal or lock is left."""
    assert visible_state(root) == expected
    assert all(verify_batch(result.export_path) == [] for result in list_exports(output_dir=root))
    assert hidden_leftovers(root) == []


def test_export_overwrite_and_recovery_of_a_killed_export_work_without_fcntl(tmp_path):
    corpus = write_example_manifest(tmp_path / "corpus", count=12)
    root = tmp_path / "exports"
    for overwrite in (False, True):
        exporting = start_export(corpus, root, "b1", overwrite=overwrite, prelude=WITHOUT_FCNTL)
        assert exporting.wait(timeout=300) == 0, exporting.stderr.read()
    assert_whole_batches(root, every_format("b1"))

    published = manifests(root, "b1")
    killed = start_export(corpus, root, "b1", overwrite=True, prelude=WITHOUT_FCNTL + DIES_ONCE_A_BATCH_IS_IN_PLACE)
    assert killed.wait(timeout=300) == -signal.SIGKILL, killed.stderr.read()
    half_swapped = manifests(root, "b1")
    assert half_swapped["trocr"] not in (None, published["trocr"]) and half_swapped["generic"] == published["generic"]
    assert hidden_leftovers(root) != []

    # The next export, of any batch id, first puts back what the killed one left: its lock is
    # free once its process is gone.
    following = start_export(corpus, root, "b2", prelude=WITHOUT_FCNTL)
    assert following.wait(timeout=300) == 0, following.stderr.read()
    assert manifests(root, "b1") == published
    assert_whole_batches(root, sorted(every_format("b1") + every_format("b2")))


def test_two_exports_of_one_batch_id_at_once_without_fcntl_one_wins(tmp_path):
    corpus = write_example_manifest(tmp_path / "corpus", count=12)
    root = tmp_path / "exports"
    contenders = [start_export(corpus, root, "same", prelude=WITHOUT_FCNTL) for _ in range(2)]
    codes = [process.wait(timeout=300) for process in contenders]
    assert sorted(codes) == [0, 1], [process.stderr.read() for process in contenders]
    message = contenders[codes.index(1)].stderr.read()
    assert "already exists" in message or "appeared" in message, message
    assert_whole_batches(root, every_format("same"))


# A script file: spawn starts each worker afresh and imports the main module into it.
SPAWNING_SCRIPT = '''
"""Export (or only validate) lines with every worker process spawned."""

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import multiprocess

from ocr_datasets import CropOptions, TrainingSample, export, validate
from ocr_datasets.sources.crop import CroppedSample, box_points


class NotingReader(TrainingSample):
    """A sample that notes which pool's worker reads its image (validation's multiprocessing
    pool or datasets' multiprocess pool), and whether that worker was spawned: a spawned
    worker imported this file afresh as __mp_main__, a forked one still runs it as __main__.
    It takes $READ_SECONDS to read an image, so that a test can signal a busy worker."""

    __slots__ = ()

    def read_image_bytes(self):
        for library in (multiprocessing, multiprocess):
            if library.parent_process() is not None:
                Path(os.environ["READERS"], f"{library.__name__} {__name__} {os.getpid()}").touch()
        time.sleep(float(os.environ.get("READ_SECONDS", 0)))
        return TrainingSample.read_image_bytes(self)


def sample(record: dict, folder: Path) -> TrainingSample:
    image = str(folder / record["image_path"])
    if int(record["id"].rpartition("-")[2]) % 3:
        return NotingReader(record["id"], image, record["ground_truth"])
    # Every third line is cut from its image as a line of a PAGE or ALTO page is cut from the
    # page: the worker gets the page's path, the outline and the crop options.
    cut = CropOptions(padding=2, mask_outside=True)
    outline = box_points(1, 1, 46, 14)
    return CroppedSample(
        record["id"], f"{record['id']}.png", record["ground_truth"], page_image=image, polygon=outline, crop=cut
    )


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    multiprocess.set_start_method("spawn", force=True)
    task, manifest, root = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    samples = [sample(record, manifest.parent) for record in records]
    if task == "validate":
        print(validate(samples, num_proc=2).counts["exported"])
    else:
        for num_proc in (1, 2):
            batch_id = f"processes-{num_proc}"
            export(samples, "trocr", batch_id=batch_id, output_dir=root, num_proc=num_proc, progress=False)
'''


def start_spawning(task: str, manifest: Path, tmp_path: Path, **env: str) -> tuple[subprocess.Popen, Path]:
    """The script above running ``task``, and the folder where its readers note themselves."""
    script, readers = tmp_path / "spawning.py", tmp_path / "readers"
    script.write_text(SPAWNING_SCRIPT, encoding="utf-8")
    readers.mkdir()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "READERS": str(readers), **env}
    command = [sys.executable, str(script), task, str(manifest), str(tmp_path / "exports")]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, start_new_session=True
    ), readers


def readers_by_kind(readers: Path) -> dict[tuple[str, str], set[int]]:
    """(pool library, worker's main module name) -> the ids of the worker processes that read."""
    kinds: dict[tuple[str, str], set[int]] = {}
    for note in readers.iterdir():
        library, main_module, pid = note.name.split()
        kinds.setdefault((library, main_module), set()).add(int(pid))
    return kinds


# many_lines: the fixture imported above, which pyflakes takes for a redefinition (F811).
def test_an_export_with_spawned_worker_processes_matches_a_serial_one(many_lines, tmp_path):  # noqa: F811
    process, readers = start_spawning("export", many_lines, tmp_path)
    _, stderr = finished(process)
    assert process.returncode == 0, stderr

    root = tmp_path / "exports" / "trocr"
    serial, parallel = (
        json.loads((root / f"processes-{count}" / "manifest.json").read_text(encoding="utf-8")) for count in (1, 2)
    )
    assert parallel["fingerprint"] == serial["fingerprint"]
    assert parallel["sample_count"] == serial["sample_count"] == 2100
    # Validation decoded in two spawned processes, none forked; the main process wrote the parquet.
    assert {kind: len(pids) for kind, pids in readers_by_kind(readers).items()} == {
        ("multiprocessing", "__mp_main__"): 2,
    }


# many_lines: the fixture imported above (F811 as above).
def test_spawned_validation_workers_leave_ctrl_c_to_the_main_process(many_lines, tmp_path):  # noqa: F811
    """Ctrl-C reaches every process of the terminal's group. A worker that raised
    KeyboardInterrupt would print its traceback and take its share of the images with it; the
    main process alone stops the pool."""
    process, readers = start_spawning("validate", many_lines, tmp_path, READ_SECONDS="0.002")
    workers: set[int] = set()
    while len(workers) < 2 and process.poll() is None:
        time.sleep(0.01)
        workers = set().union(*readers_by_kind(readers).values())
    for pid in workers:
        os.kill(pid, signal.SIGINT)
    stdout, stderr = finished(process)
    assert (process.returncode, stdout) == (0, "2100\n"), stderr
    assert "KeyboardInterrupt" not in stderr and "Traceback" not in stderr, stderr


# Standard-library names that Python 3.11 or later added, and the version that added each.
# Only these names are checked, and only where the code spells them out: a module's attribute
# (itertools.batched), a name imported from a module, a method of any object (Path.walk: any
# .walk() but os.walk() and ast.walk()), or a keyword argument of a call by its name.
NEWER_NAMES = {
    ("hashlib", "file_digest"): (3, 11),
    ("datetime", "UTC"): (3, 11),
    ("tomllib", None): (3, 11),
    ("itertools", "batched"): (3, 12),
    ("typing", "override"): (3, 12),
    ("os.path", "splitroot"): (3, 12),
    ("math", "sumprod"): (3, 12),
    ("os", "process_cpu_count"): (3, 13),
    ("copy", "replace"): (3, 13),
    ("warnings", "deprecated"): (3, 13),
}
NEWER_METHODS = {
    "walk": (3, 12),
    "is_junction": (3, 12),
    "with_segments": (3, 12),
    "full_match": (3, 13),
    "from_uri": (3, 13),
}
NEWER_KEYWORDS = {
    ("warn", "skip_file_prefixes"): (3, 12),
    ("rmtree", "onexc"): (3, 12),
    ("TemporaryDirectory", "delete"): (3, 12),
}
MODULES_WITH_A_WALK = {"os", "ast"}


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (owner := dotted(node.value)) is not None:
        return f"{owner}.{node.attr}"
    return None


def newer_names_used(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """The names listed above that ``tree`` uses, with the Python that added each."""
    used = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used |= {
                alias.name: NEWER_NAMES[alias.name, None] for alias in node.names if (alias.name, None) in NEWER_NAMES
            }
        elif isinstance(node, ast.ImportFrom) and node.module:
            used |= {
                f"{node.module}.{alias.name}": NEWER_NAMES[node.module, alias.name]
                for alias in node.names
                if (node.module, alias.name) in NEWER_NAMES
            }
        elif isinstance(node, ast.Attribute):
            owner = dotted(node.value)
            if (owner, node.attr) in NEWER_NAMES:
                used[f"{owner}.{node.attr}"] = NEWER_NAMES[owner, node.attr]
            elif node.attr in NEWER_METHODS and owner not in MODULES_WITH_A_WALK:
                used[f".{node.attr}()"] = NEWER_METHODS[node.attr]
        elif isinstance(node, ast.Call) and (name := dotted(node.func)) is not None:
            called = name.rsplit(".", 1)[-1]
            used |= {
                f"{called}({keyword.arg}=)": NEWER_KEYWORDS[called, keyword.arg]
                for keyword in node.keywords
                if (called, keyword.arg) in NEWER_KEYWORDS
            }
    return used


def test_the_stated_minimum_python_is_the_real_one():
    requires_python = SpecifierSet(
        tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    )
    minimum = (3, 11)
    assert (
        f"{minimum[0]}.{minimum[1]}.0" in requires_python and f"{minimum[0]}.{minimum[1] - 1}.99" not in requires_python
    )
    needs = {}
    for path in sorted(path for folder in PACKAGE_FOLDERS for path in (PROJECT / folder).rglob("*.py")):
        # Syntax newer than the minimum is refused here even when a newer Python runs the tests.
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=minimum)
        needs |= {f"{path.relative_to(PROJECT)}: {name}": version for name, version in newer_names_used(tree).items()}
    assert {where: version for where, version in needs.items() if version > minimum} == {}
    assert max(needs.values()) == minimum, (
        "the package should need the Python it states, else the stated minimum is too high"
    )


def test_a_wheel_builds_without_warnings_and_carries_the_example_font(tmp_path):
    source = tmp_path / "source"
    # A copy, so the build's own folders (build/, *.egg-info) land outside the checkout.
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(PROJECT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-cache-dir",
        str(source),
        "-w",
        str(tmp_path / "wheels"),
    ]
    completed = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout + completed.stderr
    assert [line for line in output.splitlines() if "warning" in line.lower()] == [], output
    [wheel] = (tmp_path / "wheels").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "ocr_datasets/fonts/DejaVuSans.ttf",
        "ocr_datasets/fonts/DejaVuSans-LICENSE.txt",
        "ocr_datasets/builders/ocr_samples.py",
    } <= names
