"""Every platform its users have: Windows (no fcntl, and os.kill terminates rather than probes),
macOS and Linux."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

from test_atomic_batches import every_format, start_export, visible_state
from test_publish_all_formats import hidden_leftovers, manifests

from ocr_datasets import list_exports, verify_batch
from ocr_datasets.example import write_example_manifest

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
