"""A new run killed before its first checkpoint leaves no run folder (README, "Crash"): it is built as the hidden
``.NAME.partial`` beside ``NAME`` and renamed at its first checkpoint; SIGTERM cleans up like Ctrl-C; even
``kill -9`` leaves no ``NAME``, and the next run into ``NAME`` removes the leftover."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from medgan.cli import main
from medgan.errors import ConfigError
from medgan.run import RunDir

from helpers import TINY, listing


def test_a_new_run_is_renamed_into_place_at_its_first_checkpoint(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    staging = RunDir.staging_path(run.path)
    run.create()
    run.log("started")
    assert staging.is_dir() and not run.path.exists() and run.log_file.parent == staging
    with pytest.raises(ConfigError, match="another medgan train is starting a run here"):
        RunDir(run.path).create()  # a second process into the same --out, while the first one holds it
    run.save_checkpoint("best", {"step": 1})
    assert not run.path.exists()  # best.pt alone cannot be resumed: the run is not kept yet
    run.save_checkpoint("latest", {"step": 1})
    assert run.latest == run.path / "checkpoints" / "latest.pt" and run.latest.is_file()
    assert listing(tmp_path) == ["new", "new/run", "new/run/checkpoints", "new/run/checkpoints/best.pt",
                                 "new/run/checkpoints/latest.pt", "new/run/samples", "new/run/train.log"]
    run.discard_unfinished()  # after the first checkpoint nothing is discarded
    assert run.latest.is_file()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_and_a_leftover_is_taken_over(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    run.create()
    run.log("started")
    run.discard_unfinished()
    assert listing(tmp_path) == []
    leftover = RunDir.staging_path(tmp_path / "run")  # what kill -9 leaves: the staging folder, no lock holder
    (leftover / "checkpoints").mkdir(parents=True)
    (leftover / "train.log").write_text("killed\n")
    again = RunDir(tmp_path / "run")
    again.create()
    assert sorted(path.name for path in leftover.iterdir()) == [".lock", "checkpoints", "samples"]
    again.save_checkpoint("latest", {"step": 1})
    assert listing(tmp_path) == ["run", "run/checkpoints", "run/checkpoints/latest.pt", "run/samples"]


def start_training(tiny_brain, out):
    """A CLI training run whose first checkpoint is far away; returns once its staging folder holds its log."""
    process = subprocess.Popen([sys.executable, "-m", "medgan.cli", "train", "--data", str(tiny_brain), "--out",
                                str(out), "--steps", "100000", *TINY, "--set", "train.checkpoint_every=100000",
                                "--set", "train.sample_every=100000", "--set", "train.eval_every=0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = RunDir.staging_path(out) / "train.log"
    deadline = time.monotonic() + 180
    while not log.is_file():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # into the training steps
    return process


def test_sigterm_and_kill_9_before_the_first_checkpoint_leave_no_run_folder(tmp_path, tiny_brain):
    out = tmp_path / "runs" / "run"
    process = start_training(tiny_brain, out)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and err.strip().splitlines()[-1] == "terminated", err
    assert listing(tmp_path) == []  # the staging folder and the parent this run made are gone
    process = start_training(tiny_brain, out)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not out.exists() and RunDir.staging_path(out).is_dir()  # no run folder; a hidden leftover
    assert main(["train", "--data", str(tiny_brain), "--out", str(out), "--steps", "2", *TINY]) == 0
    assert RunDir.is_run(out) and listing(out.parent) == sorted(
        ["run", *(f"run/{path}" for path in listing(out))])  # the leftover was taken over


def test_a_failed_rename_keeps_the_checkpointed_run_and_says_where(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    (tmp_path / "run").mkdir()  # something made the folder meanwhile
    (tmp_path / "run" / "theirs.txt").write_text("x")
    with pytest.raises(ConfigError, match="the run is kept in .*run.partial"):
        run.save_checkpoint("latest", {"step": 1})
    run.discard_unfinished()  # the checkpoint is written: nothing is removed
    assert (RunDir.staging_path(tmp_path / "run") / "checkpoints" / "latest.pt").is_file()
    assert (tmp_path / "run" / "theirs.txt").is_file()


def test_a_file_system_without_flock_still_stages_runs(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = RunDir(tmp_path / "run")
    run.create()  # not "another medgan train is starting a run here"
    run.save_checkpoint("latest", {"step": 1})
    assert run.latest == tmp_path / "run" / "checkpoints" / "latest.pt" and run.latest.is_file()


def test_a_dangling_symlink_out_is_one_line(tmp_path):
    (tmp_path / "run").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link to nothing"):
        RunDir(tmp_path / "run").create()
