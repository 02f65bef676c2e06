"""Running the ``ocr-datasets`` command in tests: in-process through ``main``, or as the installed command."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from ocr_datasets.cli import main

CONSOLE_SCRIPT = Path(sys.executable).with_name("ocr-datasets")


def run_cli(
    *args,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    console_script: bool = False,
    terminal: bool = False,
) -> subprocess.CompletedProcess:
    """Run the command offline: in this process, or with ``console_script`` or ``terminal`` as
    the installed command, its error output a terminal with ``terminal`` (as a user sees it).
    ``OCR_EXPORT_PATH`` is dropped unless ``env`` sets it, so a value in the developer's shell
    never decides where a test writes."""
    environment = {key: value for key, value in os.environ.items() if key != "OCR_EXPORT_PATH"}
    environment.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})})
    arguments = [str(argument) for argument in args]
    if console_script or terminal:
        return _run_installed([str(CONSOLE_SCRIPT), *arguments], cwd, environment, terminal)
    saved_environment, saved_cwd = dict(os.environ), os.getcwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(environment)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                code = main(arguments)
            except SystemExit as exit:  # argparse's usage errors and --help
                code = exit.code or 0
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environment)
    return subprocess.CompletedProcess(["ocr-datasets", *arguments], code, stdout.getvalue(), stderr.getvalue())


def _run_installed(
    command: list[str], cwd: Path | None, environment: dict[str, str], terminal: bool
) -> subprocess.CompletedProcess:
    if not terminal:
        return subprocess.run(
            command, check=False, capture_output=True, text=True, cwd=cwd, env=environment, timeout=120
        )
    leader, follower = pty.openpty()
    # A new terminal is 0 columns wide, and progress bars fit themselves into that.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=follower, text=True, cwd=cwd, env=environment
    ) as process:
        os.close(follower)
        stderr = b""
        # Read until the command closes its end (Linux then reports EIO).
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            stderr += chunk
        os.close(leader)
        stdout, _ = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr.decode("utf-8", "replace"))


def succeeded(completed: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert completed.returncode == 0, (
        f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    return completed


def failed_cleanly(completed: subprocess.CompletedProcess) -> str:
    """A usage or input error: exit 2, one message, no traceback. Returns stderr."""
    assert completed.returncode == 2, f"exit {completed.returncode}\nstderr:\n{completed.stderr}"
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.stderr.startswith("ocr-datasets: error:"), completed.stderr
    return completed.stderr
