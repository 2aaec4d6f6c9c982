"""Checkpoints: format version, content hash, corrupt, tampered, foreign and older files."""

import pickle
import zipfile

import pytest
import torch

from medgan.checkpoint import FORMAT_VERSION, content_hash, load_checkpoint, load_module_state, save_checkpoint
from medgan.errors import CheckpointError

SECTIONS = {"config": {}, "data_spec": {}, "inference": {"kind": "x"}}


def test_round_trip_adds_version_and_hash(tmp_path):
    weights = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(3)}
    save_checkpoint(tmp_path / "c.pt", {**SECTIONS, "task": weights, "loop": {"step": 7}})
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["format_version"] == FORMAT_VERSION and state["loop"]["step"] == 7
    assert torch.equal(state["task"]["w"], weights["w"]) and "content_sha256" not in state


def test_content_hash_sees_every_value():
    base = {"a": torch.zeros(3), "b": [1, "x"], "c": {"d": 0.5}}
    changed = [{"a": torch.tensor([0.0, 0.0, 1e-30]), "b": [1, "x"], "c": {"d": 0.5}},
               {"a": torch.zeros(3, dtype=torch.float64), "b": [1, "x"], "c": {"d": 0.5}},
               {"a": torch.zeros(3), "b": [1, "y"], "c": {"d": 0.5}},
               {"a": torch.zeros(3), "b": [1, "x"], "c": {"d": 0.25}}]
    assert content_hash(base) == content_hash({"c": {"d": 0.5}, "b": [1, "x"], "a": torch.zeros(3)})
    assert all(content_hash(other) != content_hash(base) for other in changed)


def test_a_flipped_bit_in_the_weights_is_caught(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {**SECTIONS, "task": {"w": torch.full((256,), 0.5)}})
    # Find the stored tensor bytes in the zip and flip one bit of a weight, keeping the zip readable.
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if "/data/" in n]
        contents = {n: archive.read(n) for n in archive.namelist()}
    target = max(names, key=lambda n: len(contents[n]))
    data = bytearray(contents[target])
    data[100] ^= 0x01
    contents[target] = bytes(data)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, blob in contents.items():
            archive.writestr(name, blob)
    with pytest.raises(CheckpointError, match=r"c\.pt: .*does not match its SHA-256"):
        load_checkpoint(path)


def test_corrupt_foreign_and_old_files_get_one_line_errors(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable medgan checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    save_checkpoint(tmp_path / "full.pt", {**SECTIONS, "task": {"w": torch.zeros(1000)}})
    blob = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no format_version"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format_version": 1, "task": {}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="written by an older medgan"):
        load_checkpoint(tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_missing_sections_and_pickled_code_are_refused(tmp_path):
    save_checkpoint(tmp_path / "no_inference.pt", {"config": {}, "data_spec": {}})
    with pytest.raises(CheckpointError, match="lacks its 'inference' section"):
        load_checkpoint(tmp_path / "no_inference.pt")

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"format_version": FORMAT_VERSION, "x": Payload()}, handle)
    with pytest.raises(CheckpointError, match="not a readable medgan checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_module_state_mismatch_is_one_line(tmp_path):
    module = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="generator weights do not fit"):
        load_module_state(module, {"weight": torch.zeros(5, 5)}, tmp_path / "c.pt", "generator")
    with pytest.raises(CheckpointError, match="generator weights are not a state dict"):
        load_module_state(module, [1, 2], tmp_path / "c.pt", "generator")
