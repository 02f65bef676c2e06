"""No byte leaves the machine: the whole flow runs with every connection refused and tries none,
whether or not the offline variables are set."""

from __future__ import annotations

from support.data import run_python

from ocr_datasets import build_dataset, export_all, list_exports, load_batch, read_manifest, verify_batch


def test_build_export_list_and_load_back_try_no_connection(refuse_network, example_manifest, tmp_path, monkeypatch):
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_UPDATE_DOWNLOAD_COUNTS"):
        monkeypatch.delenv(variable, raising=False)
    samples = list(read_manifest(example_manifest))

    results = export_all(
        samples, batch_id="b1", output_dir=tmp_path / "exports", split="train=0.5,test=0.5", progress=False
    )
    assert [result.batch_id for result in list_exports(output_dir=tmp_path / "exports")] == ["b1"] * len(results)
    for result in results:
        assert verify_batch(result.export_path) == []
        loaded = load_batch(result.export_path)
        assert sum(split.num_rows for split in loaded.values()) == len(samples)
    assert len(build_dataset(samples, cache_dir=tmp_path / "cache")) == len(samples)

    assert refuse_network == []


def test_a_fresh_process_without_offline_variables_tries_no_connection(example_manifest, tmp_path):
    # The guard is installed before anything is imported, in a process whose environment has
    # no offline variable at all.
    output = run_python(
        f"""
        import socket
        attempts = []
        def refused(*args, **kwargs):
            attempts.append(args)
            raise ConnectionRefusedError("refused")
        original = socket.socket.connect
        def connect(self, address):
            return original(self, address) if self.family == socket.AF_UNIX else refused(address)
        socket.socket.connect = connect
        socket.getaddrinfo = refused
        socket.create_connection = refused
        from ocr_datasets import export, load_batch, read_manifest
        manifest, output_dir = {str(example_manifest)!r}, {str(tmp_path)!r}
        result = export(read_manifest(manifest), "llama_vision", batch_id="b1", output_dir=output_dir, progress=False)
        rows = load_batch(result.export_path)["train"]
        print(len(rows), len(attempts))
        """,
        HF_HUB_OFFLINE="",
        HF_DATASETS_OFFLINE="",
        TRANSFORMERS_OFFLINE="",
    )
    assert output.split() == ["12", "0"]
