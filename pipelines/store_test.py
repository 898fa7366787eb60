"""The output store: fingerprints that see every change, reuse by fingerprint, failures leave no trace."""

import hashlib
import json

import pytest

import brainage_tf
from pipelines.store import OutputStore, content_fingerprint, fingerprint_of, work_fingerprint


def write_tree(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_fingerprint_of_ignores_key_order_and_sees_values():
    assert fingerprint_of({"a": 1, "b": [1, 2]}) == fingerprint_of({"b": [1, 2], "a": 1})
    assert fingerprint_of({"a": 1, "b": [1, 2]}) != fingerprint_of({"a": 1, "b": [2, 1]})
    assert fingerprint_of({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()


def test_content_fingerprint_sees_bytes_names_and_added_files_but_not_the_location(tmp_path):
    files = {"a.txt": b"alpha", "sub/b.bin": b"\x00\x01"}
    base = content_fingerprint(write_tree(tmp_path / "one", files))
    assert content_fingerprint(write_tree(tmp_path / "two", files)) == base  # same content elsewhere
    assert content_fingerprint(write_tree(tmp_path / "byte", {**files, "a.txt": b"alphb"})) != base
    renamed = {"c.txt": b"alpha", "sub/b.bin": b"\x00\x01"}
    assert content_fingerprint(write_tree(tmp_path / "renamed", renamed)) != base
    assert content_fingerprint(write_tree(tmp_path / "added", {**files, "new": b""})) != base
    # One file whose bytes spell a second file's name and bytes is not those two files.
    two = content_fingerprint(write_tree(tmp_path / "two_files", {"a": b"x", "b": b"y"}))
    assert content_fingerprint(write_tree(tmp_path / "one_file", {"a": b"xb\x00y"})) != two
    with pytest.raises(FileNotFoundError, match="missing"):
        content_fingerprint(tmp_path / "missing")


def test_work_fingerprint_changes_with_component_parameters_inputs_and_package_version(monkeypatch):
    base = work_fingerprint("Trainer", {"epochs": 1}, {"examples": "abc"})
    assert work_fingerprint("Evaluator", {"epochs": 1}, {"examples": "abc"}) != base
    assert work_fingerprint("Trainer", {"epochs": 2}, {"examples": "abc"}) != base
    assert work_fingerprint("Trainer", {"epochs": 1}, {"examples": "abd"}) != base
    monkeypatch.setattr(brainage_tf, "__version__", "9.9.9")
    assert work_fingerprint("Trainer", {"epochs": 1}, {"examples": "abc"}) != base


def counting_work(calls: list, content: bytes = b"model"):
    def work(folder):
        calls.append(folder)
        (folder / "weights.bin").write_bytes(content)
        return {"model": ("weights.bin", {"best_val_mae": 1.5})}

    return work


def test_run_or_reuse_does_the_work_once_per_fingerprint(tmp_path):
    outputs, calls = OutputStore(tmp_path), []
    first = outputs.run_or_reuse("Trainer", {"epochs": 1}, {"examples": "abc"}, counting_work(calls))["model"]
    again = outputs.run_or_reuse("Trainer", {"epochs": 1}, {"examples": "abc"}, counting_work(calls))["model"]
    assert len(calls) == 1
    assert (first.metadata["reused"], again.metadata["reused"]) == (False, True)
    assert again.path == first.path and first.path.read_bytes() == b"model"
    expected = {"component": "Trainer", "parameters": {"epochs": 1}, "inputs": {"examples": "abc"}}
    assert {key: first.metadata[key] for key in expected} == expected
    assert first.metadata["best_val_mae"] == 1.5
    assert first.metadata["fingerprint"] == work_fingerprint("Trainer", {"epochs": 1}, {"examples": "abc"})
    assert first.metadata["content_fingerprint"] == content_fingerprint(first.path)
    assert {k: v for k, v in again.metadata.items() if k != "reused"} == {
        k: v for k, v in first.metadata.items() if k != "reused"
    }
    other = counting_work(calls, b"other")
    changed = outputs.run_or_reuse("Trainer", {"epochs": 2}, {"examples": "abc"}, other)
    assert len(calls) == 2 and changed["model"].path != first.path
    assert changed["model"].metadata["content_fingerprint"] != first.metadata["content_fingerprint"]


def test_failed_work_leaves_no_record_no_folder_and_earlier_outputs_intact(tmp_path):
    outputs, calls = OutputStore(tmp_path), []
    kept = outputs.run_or_reuse("Trainer", {"epochs": 1}, {}, counting_work(calls))["model"]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def failing(folder):
        (folder / "half.bin").write_bytes(b"half")
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        outputs.run_or_reuse("Trainer", {"epochs": 2}, {}, failing)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert kept.path.read_bytes() == b"model"


def test_a_folder_without_record_is_redone_and_a_forgotten_record_too(tmp_path):
    outputs, calls = OutputStore(tmp_path), []
    key = work_fingerprint("Trainer", {}, {})
    leftover = outputs.folder("Trainer", key)
    write_tree(leftover, {"stale.bin": b"from a killed attempt"})
    made = outputs.run_or_reuse("Trainer", {}, {}, counting_work(calls))["model"]
    assert len(calls) == 1 and not (leftover / "stale.bin").exists() and not made.metadata["reused"]
    record = json.loads(outputs.record_path("Trainer", key).read_text())
    assert record["outputs"]["model"]["path"] == "weights.bin"
    outputs.forget("Trainer", key)
    outputs.run_or_reuse("Trainer", {}, {}, counting_work(calls))
    assert len(calls) == 2
