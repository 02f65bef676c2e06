"""The Ray engine (``engine="ray"``): an export's tasks on a Ray cluster, a local instance sized to
the machine or a cluster joined at an address.

The tasks are the local engine's own (``validation._checked_chunk`` reads, crops, decodes and
checks a chunk of images and spools its rows; ``writer._write_chunk`` projects a chunk's rows
and writes its image files, view lines and parquet shards), handed to Ray instead of a process
pool. This process, the driver, keeps what needs the whole corpus in order, as it does locally:
reading the inputs, ids, duplicates and conflicts (by image hash over every task's results),
splits, file names, views, card and manifest, and the atomic publication. So a batch built on
Ray holds the local engine's rows in its order, and every file but the parquet shards (which
end where the chunks do, or hold a small split's parts of several) byte for byte.

Tasks and driver exchange the images' bytes and the rows through files in the batch's staging
folder (only images a sample holds in memory travel with its task): on a cluster of several
machines that folder must be one every node sees at the same path (a shared file system), as
must the inputs.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import EngineError, OptionError, first_line
from .notices import note, warn
from .options import RAY_INSTALL
from .workers import available_cores

T = TypeVar("T")

# An AF_UNIX socket path holds at most 107 bytes on Linux and 103 on macOS. Ray makes its
# sockets in <session folder>/session_<date>_<time>_<microseconds>_<pid>/sockets/plasma_store.
_SOCKET_PATH_LIMIT = 103
_SOCKET_PATH_IN_SESSION = len("/session_2026-12-07_14-43-39_425770_4194304/sockets/plasma_store")
# The longest folder whose session folder (/ray-<8 characters, tempfile.mkdtemp>) Ray's sockets fit in.
_LONGEST_PARENT = _SOCKET_PATH_LIMIT - _SOCKET_PATH_IN_SESSION - len("/ray-12345678")
# Checking a chunk of images can run again after its worker died: it rewrites the same spool
# file. Writing a chunk cannot (its image files are created exclusively, its input removed).
_RETRIES = 3
# The tasks of the engine's block being run (see ``RayEngine.tasks``).
_running: list[RayTasks] = []


@dataclass(frozen=True)
class RayEngine:
    """Where an export's tasks run: the cluster at ``address``, or a local instance of
    ``num_cpus`` CPUs (None: one per core) whose session (sockets, logs, spilled objects) is kept
    in a folder made for it in ``session_parent`` (None: the folder ``tasks`` is given) and
    removed after it."""

    address: str | None = None
    session_parent: Path | None = None
    num_cpus: int | None = None

    @contextmanager
    def tasks(self, folder: Path | None) -> Iterator[RayTasks]:
        """Ray started (or joined) for as long as the block runs, then stopped; a local
        instance's session in a new folder in ``session_parent`` or else ``folder`` (made if
        need be, and then removed if left empty). Within such a block, another gets the same
        tasks. Tasks still running when the block ends are cancelled, and waited for, so that
        none writes after it."""
        if _running:
            yield _running[-1]
            return
        try:
            import ray
        except ImportError as error:
            raise OptionError(
                f"engine='ray' (--engine ray): Ray could not be imported ({error}): {RAY_INSTALL}"
            ) from None
        with ExitStack() as stack:
            if ray.is_initialized():
                # The caller's own session (a notebook that called ray.init): used, and left
                # running; options for another would be silently ignored, so they are refused.
                self._refuse_options_for_another_session()
                note("runs on the Ray session this process started (ray.init) as it is")
                joined = True
            elif self.address is not None:
                stack.enter_context(_joined(ray, self.address))
                joined = True
            else:
                parent = self.session_parent or folder or Path(tempfile.gettempdir())
                session = stack.enter_context(_session_folder(parent))
                stack.enter_context(_local_instance(ray, session, self.num_cpus or available_cores()))
                joined = False
            tasks = RayTasks(ray, joined)
            stack.callback(tasks.cancel_unfinished)
            _running.append(tasks)
            stack.callback(_running.pop)
            yield tasks

    def _refuse_options_for_another_session(self) -> None:
        given = [
            flag
            for flag, value in (
                ("ray_address (--ray-address)", self.address),
                ("ray_temp_dir (--ray-temp-dir)", self.session_parent),
                ("num_proc (--num-proc)", self.num_cpus),
            )
            if value is not None
        ]
        if given:
            raise OptionError(
                f"this process runs a Ray session already (ray.init), which the export uses as it is: "
                f"{', '.join(given)} cannot apply to it; leave {'them' if len(given) > 1 else 'it'} out, "
                "or call ray.shutdown() first"
            )


@contextmanager
def _joined(ray: Any, address: str) -> Iterator[None]:
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as error:
        raise EngineError(
            f"could not join the Ray cluster at {address} ({first_line(error)}), so nothing was published: check "
            "the address (ray status on the cluster's head node shows it) and, for a cluster with token "
            "authentication, that RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (its token) are set here too"
        ) from None
    note(f"joined the Ray cluster at {address}")
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _session_folder(parent: Path) -> Iterator[str]:
    """A new folder in ``parent`` for a local instance's session, removed afterwards, as a path
    short enough for Ray's sockets: if its own is not, a symbolic link to it in the system's
    temporary folder (a name only: what Ray writes stays in ``parent``), removed with it."""
    # Absolute: Ray wants its folder so, and a link to a relative path would point nowhere.
    parent = Path(os.path.abspath(parent))
    made = [missing for missing in (parent, *parent.parents) if not missing.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix="ray-"))
    link = None
    try:
        if sys.platform != "win32" and not _fits(folder):
            # macOS's temporary folder (/var/folders/.../T) is itself too deep: /tmp, as Ray's own.
            links = [
                os.path.join(place, f"ocr-ray-{secrets.token_hex(4)}") for place in (tempfile.gettempdir(), "/tmp")
            ]
            link = next((path for path in links if _fits(path)), None)
            if link is None:
                raise OptionError(
                    f"the local Ray instance's session folder {folder} is too deep for Ray's sockets (their "
                    f"paths hold at most {_SOCKET_PATH_LIMIT} bytes), and so are {tempfile.gettempdir()} and /tmp: "
                    f"name a folder of at most {_LONGEST_PARENT} bytes with ray_temp_dir (--ray-temp-dir)"
                )
            os.symlink(folder, link, target_is_directory=True)
        yield link or str(folder)
    finally:
        if link is not None:
            os.unlink(link)
        _remove(folder)
        for missing in made:
            with suppress(OSError):
                missing.rmdir()  # only if left empty


def _fits(folder: str | Path) -> bool:
    """Whether Ray's sockets fit in a session made in ``folder``."""
    return len(os.fsencode(folder)) + _SOCKET_PATH_IN_SESSION <= _SOCKET_PATH_LIMIT


@contextmanager
def _local_instance(ray: Any, folder: str, cpus: int) -> Iterator[None]:
    # A token of its own (unless RAY_AUTH_TOKEN names one), so that no other client may use it
    # and Ray writes none to ~/.ray/auth_token; no usage statistics sent to Ray's makers; this
    # machine's loopback as the node's address; "local", whatever RAY_ADDRESS says. Ray sets
    # RAY_AUTH_MODE itself when given a token: restored too.
    environment = {
        "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    saved = {name: os.environ.get(name) for name in (*environment, "RAY_AUTH_MODE")}
    os.environ.update(environment)
    _forget_the_token_read_before(ray)
    try:
        try:
            with _quiet(logging.getLogger("ray._private.authentication.authentication_token_setup")):
                # Given a token, Ray turns token authentication on, and says so in a warning.
                ray.init(
                    address="local",
                    num_cpus=cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    _temp_dir=folder,
                    _node_ip_address="127.0.0.1",
                    object_spilling_directory=os.path.join(folder, "spilled"),
                )
        except Exception as error:
            ray.shutdown()  # what did start
            raise EngineError(
                f"could not start a local Ray instance ({first_line(error)}), so nothing was published"
            ) from error
        note(f"started a local Ray instance with {cpus} CPUs, for this export only")
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        # So that a ray.init after the export reads its own token, not the instance's.
        _forget_the_token_read_before(ray)


def _forget_the_token_read_before(ray: Any) -> None:
    # Ray keeps the token it read first for the life of the process, and an instance started
    # with another one refuses it; its loader offers to forget it (not a documented API, hence
    # the care: without it, only the first instance of a process may have its own token).
    loader = getattr(getattr(ray, "_raylet", None), "AuthenticationTokenLoader", None)
    if loader is not None and hasattr(loader, "instance"):
        loader.instance().reset_cache()


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class RayTasks:
    """``validation.Tasks`` that are Ray tasks, each checking and writing ``chunk_size`` images,
    which write their chunk's parquet themselves (``writes_parquet``): the driver reads back only
    a small split's parts of a chunk. Each task works in this process's working folder, so that relative paths
    mean what they mean here (on a cluster, a folder every node must see at the same path)."""

    # A task's worth: about a second of decoding, and a parquet shard of some megabytes.
    chunk_size = 1024
    writes_parquet = True

    def __init__(self, ray: Any, joined: bool):
        self._ray = ray
        self._run = ray.remote(_run)
        self._joined = joined
        self._folder = os.getcwd()
        self._submitted: list[Any] = []
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, function: Callable[[Any], T], argument: Any, *, retriable: bool = False) -> RayPending[T]:
        reference = self._run.options(max_retries=_RETRIES if retriable else 0).remote(function, argument, self._folder)
        self._submitted.append(reference)
        if len(self._submitted) > 4 * self.parallelism + 16:
            _, self._submitted = self._ray.wait(self._submitted, num_returns=len(self._submitted), timeout=0)
        return RayPending(self._ray, reference, self._joined)

    def cancel_unfinished(self) -> None:
        """Cancel the tasks not finished (the export failed, or was interrupted) and wait for them."""
        if not self._submitted:
            return
        _, unfinished = self._ray.wait(self._submitted, num_returns=len(self._submitted), timeout=0)
        for reference in unfinished:
            self._ray.cancel(reference, force=True)
        if unfinished:
            self._ray.wait(unfinished, num_returns=len(unfinished), timeout=30)


class RayPending(Generic[T]):
    """A Ray task's result to come, as ``validation.Pending``: its error, raised in the task, is
    raised here as it was; a worker or node lost is one ``EngineError``."""

    def __init__(self, ray: Any, reference: Any, joined: bool):
        self._ray = ray
        self._reference = reference
        self._joined = joined

    def ready(self) -> bool:
        done, _ = self._ray.wait([self._reference], timeout=0, fetch_local=False)
        return bool(done)

    def get(self) -> T:
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(self._reference)
        except exceptions.RayTaskError as error:
            if isinstance(error.cause, Exception):
                raise error.cause from None
            raise
        except exceptions.RayError as error:
            # A local instance's logs go with its session folder.
            logs = "; if it recurs, see the Ray logs of the cluster's nodes" if self._joined else ""
            raise EngineError(
                f"a Ray task was lost ({type(error).__name__}: {first_line(error)}), so the export stopped and "
                f"published nothing: run it again{logs}"
            ) from None


def _run(function: Callable[[Any], T], argument: Any, folder: str) -> T:
    if os.getcwd() != folder:
        try:
            os.chdir(folder)
        except OSError:
            raise EngineError(
                f"the export's working folder {folder} is not on Ray node {platform.node()}: run the export from a "
                "folder every node sees at the same path, or give every path absolute and shared"
            ) from None
    return function(argument)


def _remove(folder: Path) -> None:
    """Remove ``folder``; if it cannot be (Ray's processes may hold their logs open for a
    moment after it stopped, and on Windows a file held open cannot go), say so rather than
    fail an export that is complete or hide the error that ended it."""
    for attempt in range(50):
        try:
            shutil.rmtree(folder)
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if attempt == 49:
                warn(f"could not remove the Ray session folder {folder} ({error}): remove it by hand")
                return
            time.sleep(0.1)
