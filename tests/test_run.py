"""RunDir: layout, recognising runs, output-folder checks, logs, checkpoints and inference state."""

import os

import pytest
import torch

from medgan.config import RunConfig
from medgan.data.intensity import IntensityMapping
from medgan.data.spec import DataSpec, DomainSpec
from medgan.errors import CheckpointError, ConfigError
from medgan.run import RunDir, check_output_folder

SPEC = DataSpec(64, (1.0, 1.0), (DomainSpec("image", 1, IntensityMapping("ct_window", -150.0, 250.0, "HU")),),
                class_names=("a", "b"), attribute_names=("age",), attribute_mean=(50.0,), attribute_std=(10.0,),
                images=10, subjects=2)


def test_new_run_layout_and_recognition(tmp_path):
    run = RunDir(tmp_path / "run")
    assert not RunDir.is_run(run.path)
    run.create()
    run.write_config(RunConfig())
    run.write_data_spec(SPEC)
    assert run.read_config() == RunConfig() and run.samples.is_dir() and run.data_file.is_file()
    # Until its first checkpoint a new run lives in its hidden staging folder (tests/test_run_staging.py).
    assert not run.path.exists() and RunDir.is_run(RunDir.staging_path(run.path))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run.checkpoint_path()
    with pytest.raises(CheckpointError, match="not a medgan run directory"):
        RunDir.existing(tmp_path)
    with pytest.raises(CheckpointError, match="run directory not found"):
        RunDir.existing(tmp_path / "nowhere")
    run.save_checkpoint("latest", {"step": 0})
    assert RunDir.is_run(run.path) and run.read_config() == RunConfig()
    assert not RunDir.staging_path(run.path).exists()


def test_data_spec_round_trip_and_errors():
    assert DataSpec.from_dict(SPEC.to_dict()) == SPEC
    assert SPEC.channels == 1 and SPEC.mapping.unit == "HU" and SPEC.num_classes == 2
    assert torch.allclose(SPEC.standardize(torch.tensor([[60.0]])), torch.tensor([[1.0]]))
    from medgan.errors import DataError

    with pytest.raises(DataError, match="no image domain 'mask'"):
        SPEC.domain("mask")
    with pytest.raises(DataError, match="malformed data spec"):
        DataSpec.from_dict({"resolution": 64})


def test_checkpoints_inference_state_and_fallback(tmp_path):
    from medgan.config import to_dict

    run = RunDir(tmp_path / "run")
    run.create()
    run.write_config(RunConfig())
    state = {"config": to_dict(RunConfig()), "data_spec": SPEC.to_dict(), "inference": {"kind": "noise-to-image"}}
    run.save_checkpoint("latest", state)
    assert run.checkpoint_path("best") == run.latest  # best falls back to latest
    loaded = run.load_inference()
    assert loaded.spec == SPEC and loaded.inference["kind"] == "noise-to-image" and loaded.path == run.latest
    run.save_checkpoint("best", {**state, "inference": {"nokind": 1}})
    with pytest.raises(CheckpointError, match="no inference state"):
        run.load_inference("best")
    (run.checkpoints / ".latest.abc123.pt").write_bytes(b"partial")
    assert [p.name for p in run.remove_stale_temporaries()] == [".latest.abc123.pt"]
    assert run.latest.exists()


def test_logs_append_read_and_truncate(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    for step in (1, 2, 3):
        run.append_loss({"step": step, "loss_d": 0.1 * step})
    run.append_metrics({"step": 2, "fid": 9.0})
    with run.losses_file.open("a") as handle:
        handle.write('{"step": 4, "loss')  # a torn last line from a crash
    assert [r["step"] for r in run.read_losses()] == [1, 2, 3]
    run.truncate_logs(2)
    assert [r["step"] for r in run.read_losses()] == [1, 2] and run.read_metrics() == [{"step": 2, "fid": 9.0}]
    run.log("hello")
    assert run.log_file.read_text().endswith("hello\n")


def test_output_folder_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="existing file"):
        check_output_folder(tmp_path / "file", "--out")
    with pytest.raises(ConfigError, match="below a file"):
        check_output_folder(tmp_path / "file" / "sub", "--out")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (permission bits are not enforced)")
        with pytest.raises(ConfigError, match="no permission"):
            check_output_folder(locked / "run", "--out")
    finally:
        os.chmod(locked, 0o700)
    check_output_folder(tmp_path / "new" / "deeper", "--out")  # creatable: fine
