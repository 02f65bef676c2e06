"""Shared fixtures: real data from tests/data, the built-in example, and an offline, private HF home."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support.data import LINE_GT, repo_copy

from ocr_datasets.example import write_example_manifest


@pytest.fixture
def one_torch_thread():
    """A tiny model gains nothing from more threads, and on a busy 2-core machine torch's idle
    threads spinning for work made each training step up to ten times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def private_hf_home(tmp_path_factory, monkeypatch):
    """Every test runs offline with its own Hugging Face home, so no test reads another's cache
    or the user's, and nothing reaches the network."""
    home = tmp_path_factory.mktemp("hf-home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("OCR_EXPORT_PATH", raising=False)
    return home


@pytest.fixture(autouse=True)
def refuse_network(monkeypatch) -> list:
    """Every connection outside the machine's own Unix sockets is refused and recorded, so a
    test that asserts the list is empty proves nothing even tried to reach the network."""
    attempts = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refused(what):
        attempts.append(what)
        raise ConnectionRefusedError(f"the test suite refuses network connections ({what!r})")

    def guarded(original):
        def method(self, address):
            return original(self, address) if self.family == socket.AF_UNIX else refused(address)

        return method

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: refused(host))
    monkeypatch.setattr(socket, "create_connection", lambda address, *args, **kwargs: refused(address))
    return attempts


@pytest.fixture
def example_manifest(tmp_path) -> Path:
    """The built-in example written as an input manifest with PNG files (12 lines)."""
    return write_example_manifest(tmp_path / "input", count=12)


@pytest.fixture(scope="session")
def line_gt_copy(tmp_path_factory) -> Path:
    """A private copy of the 114 real Fraktur lines of 38 works."""
    return repo_copy(LINE_GT.name, tmp_path_factory)
