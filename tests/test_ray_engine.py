"""The Ray engine (``engine="ray"``, ``--engine ray``): validation's and the writer's tasks on a
local Ray instance of 2 CPUs build the very batches the local engine writes, a lost worker
publishes nothing half-written, and the instance keeps its files in the export folder and its
connections on this machine."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.cli import run_cli, succeeded
from support.data import batch_files, line_gt_samples, line_png, lines_with_twins, repo_copy, split_cases, split_options

from ocr_datasets import TrainingSample, export, export_all, list_exports, read_samples, verify_batch
from ocr_datasets.cli import main
from ocr_datasets.errors import EngineError, OptionError
from ocr_datasets.manifest import result_from_manifest
from ocr_datasets.options import check_num_proc

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from ocr_datasets import ray_engine  # noqa: E402
from ocr_datasets.ray_engine import RayEngine  # noqa: E402


def parquet_rows(result) -> dict[str, list[dict]]:
    """Each split's rows, read from its parquet shards in their order."""
    batch = Path(result.export_path)
    return {
        split: pq.read_table(sorted(batch.glob(f"data/{split}-*.parquet"))).to_pylist()
        for split in result.read_manifest()["splits"]
    }


def assert_same_batches(local, on_ray) -> None:
    """The same rows in the same order, and every other file the same bytes: on Ray the tasks
    write each chunk's parquet shards, which therefore end where the chunks do (a small split's
    parts of several chunks share the driver's)."""
    for alone, cluster in zip(local, on_ray, strict=True):
        assert parquet_rows(alone) == parquet_rows(cluster), alone.export_format

        def other_files(result) -> dict[str, bytes]:
            return {name: data for name, data in batch_files(result).items() if not name.startswith("data/")}

        assert other_files(alone) == other_files(cluster), alone.export_format
        first, second = alone.read_manifest(), cluster.read_manifest()
        for key in ("fingerprint", "counts", "splits", "statistics", "rejection_reasons"):
            assert first.get(key) == second.get(key), key
        assert verify_batch(cluster.export_path) == []


def synthetic_samples(late_conflict: bool) -> list[TrainingSample]:
    """``lines_with_twins``, and a broken image and a repeated id (both rejected)."""
    page = {"page": 0}
    return [
        *lines_with_twins(late_conflict),
        TrainingSample("broken", "broken.png", "kaputt", image_bytes=line_png(9)[:60], metadata=page),
        TrainingSample("line-010", "again.png", "wieder", image_bytes=line_png(2010), metadata=page),
    ]


@contextmanager
def watching_processes(look: Callable[[Any], bool], interval: float) -> Iterator[None]:
    """While the block runs, ``look`` at each process this one started (Ray's among them), again
    and again in a thread, until it returns True."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for process in psutil.Process().children(recursive=True):
                try:
                    if look(process):
                        return
                except psutil.Error:
                    continue
            time.sleep(interval)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


@pytest.fixture
def short_temp_dir():
    """A folder with a short path for the local instance's session, as --ray-temp-dir names one."""
    with tempfile.TemporaryDirectory(prefix="ocr-ray-test-") as folder:
        yield folder


@pytest.mark.slow  # each export starts a local Ray instance (~4 s)
@split_cases
def test_every_format_built_on_ray_is_the_local_batch(strategy, late_conflict, tmp_path):
    options = split_options(strategy) | {"cache": False}
    local = export_all(synthetic_samples(late_conflict), batch_id="local", output_dir=tmp_path, **options)
    on_ray = export_all(
        synthetic_samples(late_conflict), batch_id="ray", output_dir=tmp_path, engine="ray", num_proc=2, **options
    )
    assert_same_batches(local, on_ray)
    manifest = on_ray[0].read_manifest()
    assert manifest["counts"]["duplicates"] == 1
    assert manifest["counts"]["rejected"] == (4 if late_conflict else 2)
    assert manifest["image_checks"]["decoded"] >= 300
    # Nothing of the export's working files, Ray's session included, is left beside the batches.
    assert list(tmp_path.rglob(".*")) == []


@pytest.mark.slow
def test_real_lines_and_page_crops_built_on_ray_are_the_local_batches(line_gt_copy, tmp_path_factory, tmp_path):
    kant = repo_copy("ocrd-kant-1784", tmp_path_factory) / "data"
    options = {"progress": False, "cache": False, "num_proc": 2}
    # Ten copies of the real lines (two chunks of tasks), split by work into balanced parts:
    # written once validation is done, by the tasks; a chunk's ~800 train rows in a shard of
    # their own, its smaller parts (test's, the last chunk's) in shards the driver shares out.
    lines = line_gt_samples(line_gt_copy)
    copies = [dataclasses.replace(sample, id=f"{copy}-{sample.id}") for copy in range(10) for sample in lines]
    balanced = {"split": "train=0.8,test=0.2", "group_by": "work", "split_strategy": "balanced"}
    for name, source, more in (
        ("lines", lambda: copies, {"keep_duplicates": True, **balanced}),
        # Each line cut from its page image along its polygon, in the tasks.
        ("page", lambda: read_samples(kant, "page"), {}),
    ):
        local = export_all(source(), batch_id=f"{name}-local", output_dir=tmp_path, **options, **more)
        on_ray = export_all(source(), batch_id=f"{name}-ray", output_dir=tmp_path, engine="ray", **options, **more)
        assert_same_batches(local, on_ray)
        assert on_ray[0].sample_count == (1140 if name == "lines" else 55)
    shards = {split: len(files) for split, files in on_ray_lines_data_files(tmp_path).items()}
    assert shards == {"train": 2, "test": 1}


def on_ray_lines_data_files(root: Path) -> dict[str, list[Path]]:
    batch = root / "trocr" / "lines-ray"
    return {split: sorted(batch.glob(f"data/{split}-*.parquet")) for split in ("train", "test")}


@pytest.mark.slow
def test_a_task_whose_worker_dies_runs_again_if_it_may_else_it_is_one_clear_error(short_temp_dir, tmp_path):
    def _kills_itself(argument: str) -> str:
        # The first run kills its worker process; a run after that returns. (Defined here, it
        # travels to the worker by value: the workers cannot import a test module.)
        marker = Path(argument)
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return "ran again"

    with RayEngine(num_cpus=2).tasks(Path(short_temp_dir)) as tasks:
        assert tasks.parallelism == 2
        # Within the engine's block, another gets the same tasks (validation's, in an export).
        with RayEngine(num_cpus=1).tasks(None) as inner:
            assert inner is tasks
        assert tasks.submit(_kills_itself, str(tmp_path / "first"), retriable=True).get() == "ran again"
        lost = tasks.submit(_kills_itself, str(tmp_path / "second"))
        with pytest.raises(EngineError, match=r"a Ray task was lost .*published nothing: run it again"):
            lost.get()
        # An error raised in a task is raised here as itself.
        with pytest.raises(OptionError, match="num_proc"):
            tasks.submit(check_num_proc, 0).get()


@pytest.mark.slow
def test_a_worker_killed_mid_export_publishes_the_whole_batch_or_nothing(line_gt_copy, tmp_path):
    lines = line_gt_samples(line_gt_copy)
    samples = [dataclasses.replace(sample, id=f"{copy}-{sample.id}") for copy in range(12) for sample in lines]
    options = {"progress": False, "cache": False, "keep_duplicates": True, "num_proc": 2}
    local = export(samples, "trocr", batch_id="local", output_dir=tmp_path, **options)
    killed: list[int] = []

    def kill_a_task(process) -> bool:
        # Ray names a worker process after the task it runs.
        if process.name().startswith("ray::_run") or "ray::_run" in " ".join(process.cmdline()):
            process.kill()
            killed.append(process.pid)
        return bool(killed)

    with watching_processes(kill_a_task, interval=0.005):
        try:
            result = export(samples, "trocr", batch_id="ray", output_dir=tmp_path, engine="ray", **options)
        except EngineError as error:
            assert "published nothing" in str(error)
            result = None
    assert killed, "no Ray task was running to be killed"
    if result is None:
        assert not (tmp_path / "trocr" / "ray").exists()
    else:
        assert_same_batches([local], [result])
    assert sorted(path.name for path in (tmp_path / "trocr").iterdir()) == (
        ["local"] if result is None else ["local", "ray"]
    )


def links_into(folder: Path) -> set[Path]:
    """The short links in the temporary folder that lead into ``folder``: not another test's."""
    links = set()
    for link in Path(tempfile.gettempdir()).glob("ocr-ray-*"):
        # OSError: removed meanwhile by the export that made it, or a folder (another test's
        # ocr-ray-test-* session parent), which is no link.
        with suppress(OSError):
            if folder in Path(os.readlink(link)).parents:
                links.add(link)
    return links


@pytest.mark.slow
def test_the_local_instance_stays_in_the_export_folder_and_on_this_machine(
    example_manifest, refuse_network, monkeypatch, tmp_path
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # Set on a cluster's nodes (and by ray job submit): the local instance is local all the same.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    output = tmp_path / "a-folder-deep-enough-that-ray-sockets-would-not-fit-in-its-path" / "exports"
    seen: dict[str, set] = {"remote": set(), "sessions": set()}

    def note_connections_and_files(process) -> bool:
        for connection in process.net_connections(kind="inet"):
            if connection.raddr:
                seen["remote"].add(connection.raddr.ip)
        for file in process.open_files():
            if "session_" in file.path:
                seen["sessions"].add(file.path.split("/session_")[0])
        return False

    with (
        watching_processes(note_connections_and_files, interval=0.05),
        pytest.warns(UserWarning, match="started a local Ray instance with 2 CPUs, for this export only"),
    ):
        result = export(
            read_samples(example_manifest), "trocr", output_dir=output, engine="ray", num_proc=2, progress=False
        )
    # Ray's processes talk to each other over the loopback and this machine's own addresses.
    own = {address.address for addresses in psutil.net_if_addrs().values() for address in addresses}
    assert seen["remote"] and {ip.removeprefix("::ffff:") for ip in seen["remote"]} <= own, seen["remote"]
    assert seen["sessions"]
    assert refuse_network == []
    # Ray wrote its session in the export folder's .ocr-datasets, through a short link in the temporary
    # folder, and both are gone; nothing went to ~/.ray.
    assert all(path.startswith(("/tmp/ocr-ray-", str(output))) for path in seen["sessions"]), seen["sessions"]
    assert links_into(output) == set()
    assert list(home.iterdir()) == []
    assert sorted(path.name for path in output.rglob(".*")) == [".ocr-datasets"]
    assert [path.name for path in (output / ".ocr-datasets").iterdir() if not path.name.startswith("verdicts.")] == []
    assert verify_batch(result.export_path) == []


def test_the_cli_names_the_flags_of_the_ray_engine(example_manifest, tmp_path, capsys, monkeypatch):
    arguments = ["export", "--input", str(example_manifest), "--format", "trocr", "--output", str(tmp_path / "out")]
    assert main([*arguments, "--ray-address", "auto"]) == 2
    assert "--ray-address is for the Ray engine: add --engine ray" in capsys.readouterr().err
    assert main([*arguments, "--engine", "ray", "--ray-address", "auto", "--ray-temp-dir", "/tmp"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main([*arguments, "--engine", "ray", "--ray-address", "auto", "--num-proc", "4"]) == 2
    assert "--num-proc sizes a local Ray instance; the cluster joined at --ray-address" in capsys.readouterr().err
    # Without Ray installed (here: hidden from imports), the flag says how to install it.
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    assert main([*arguments, "--engine", "ray"]) == 2
    assert 'needs Ray, which is not installed: pip install "ocr-datasets[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_export_joins_the_cluster_at_ray_address_and_leaves_it_running(example_manifest, short_temp_dir, tmp_path):
    # A one-node cluster started as Ray's docs start one with token authentication (`ray start
    # --head`, RAY_AUTH_MODE=token); the export, a process of its own, is given the token and
    # the address. (Without RAY_AUTH_MODE, a driver joining at an address sends no token.)
    token = secrets.token_hex(32)
    environment = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_command = Path(sys.executable).with_name("ray")
    start = [ray_command, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    start += ["--node-ip-address=127.0.0.1", f"--temp-dir={short_temp_dir}", "--disable-usage-stats"]
    subprocess.run(start, check=True, capture_output=True, env={**os.environ, **environment}, timeout=120)
    try:
        completed = succeeded(
            run_cli(
                *("export", "--input", example_manifest, "--format", "trocr", "--output", tmp_path / "out"),
                *("--batch-id", "b1", "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"),
                env=environment,
                console_script=True,
            )
        )
        assert f"ocr-datasets: note: joined the Ray cluster at 127.0.0.1:{port}" in completed.stderr
        # The cluster still runs: the export left it as it found it.
        assert _cluster_processes(short_temp_dir)
        # A wrong token is one error saying what to check, and nothing is published.
        refused = run_cli(
            *("export", "--input", example_manifest, "--format", "trocr", "--output", tmp_path / "out"),
            *("--batch-id", "b2", "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"),
            env={**environment, "RAY_AUTH_TOKEN": secrets.token_hex(32)},
            console_script=True,
        )
        assert refused.returncode == 2
        assert f"ocr-datasets: error: could not join the Ray cluster at 127.0.0.1:{port}" in refused.stderr
        assert "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in refused.stderr
        assert not (tmp_path / "out" / "trocr" / "b2").exists()
    finally:
        # Its processes alone (`ray stop` would stop every Ray instance of the machine).
        for process in _cluster_processes(short_temp_dir):
            process.kill()
    local = export(
        read_samples(example_manifest), "trocr", batch_id="local", output_dir=tmp_path / "out", progress=False
    )
    joined = tmp_path / "out" / "trocr" / "b1" / "manifest.json"
    assert_same_batches([local], [result_from_manifest(joined, json.loads(joined.read_text(encoding="utf-8")))])


def _cluster_processes(session_folder: str) -> list:
    """The processes of the cluster whose session folder is ``session_folder``, with their children."""
    processes = {}
    for process in psutil.process_iter():
        try:
            if session_folder in " ".join(process.cmdline()):
                processes[process.pid] = process
                processes.update((child.pid, child) for child in process.children(recursive=True))
        except psutil.Error:
            continue
    return list(processes.values())


def test_a_session_too_deep_for_ray_sockets_is_reached_through_a_short_link(monkeypatch, tmp_path):
    # As on macOS, where the temporary folder (/var/folders/.../T) is too deep itself: /tmp.
    deep = tmp_path / ("a-folder-name-long-enough-" * 3) / "exports" / ".ocr-datasets"
    long_temporary_folder = tmp_path / ("t" * 60)
    long_temporary_folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_temporary_folder))
    with ray_engine._session_folder(deep) as session:
        assert session.startswith("/tmp/ocr-ray-") and ray_engine._fits(session)
        made = Path(session).resolve()
        assert made.parent == deep.resolve() and made.name.startswith("ray-")
        (Path(session) / "written-by-ray").touch()
        assert (made / "written-by-ray").exists()
    assert not os.path.lexists(session) and not made.exists()
    # The folders made for it are gone too: nothing of them is left in the export folder.
    assert not deep.exists()


@pytest.mark.slow
def test_an_export_runs_on_the_ray_session_its_caller_started_and_leaves_it(
    example_manifest, short_temp_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=short_temp_dir, log_to_driver=False)
    try:
        # Options for another session would be ignored: refused, and the caller's session left running.
        for option, flag in [
            ({"ray_address": "127.0.0.1:1"}, "ray_address (--ray-address)"),
            ({"num_proc": 1}, "num_proc (--num-proc)"),
            ({"ray_temp_dir": str(tmp_path / "sessions")}, "ray_temp_dir (--ray-temp-dir)"),
        ]:
            with pytest.raises(OptionError, match=re.escape(f"{flag} cannot apply to it")):
                export(read_samples(example_manifest), "trocr", output_dir=tmp_path, engine="ray", **option)
            assert ray.is_initialized() and list_exports(output_dir=tmp_path) == []
        with pytest.warns(UserWarning, match=r"runs on the Ray session this process started \(ray.init\) as it is"):
            on_ray = export(read_samples(example_manifest), "trocr", batch_id="ray", output_dir=tmp_path, engine="ray")
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    local = export(read_samples(example_manifest), "trocr", batch_id="local", output_dir=tmp_path, progress=False)
    assert_same_batches([local], [on_ray])
