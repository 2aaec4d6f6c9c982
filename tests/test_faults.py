"""Fault injection: kill -9 during checkpoint writes, a full disk during training, sampling, evaluation and
export, a run whose weights diverge while its loss stays finite, and a flipped bit in a checkpoint.

Each fault ends in one stderr line (``error: <file>: <problem>``, exit 2) or, for kill -9, in a run that
resumes; and nothing half-written is left: a previous checkpoint or report stays intact, new files disappear.
"""

import errno
import os
import pathlib
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from medgan.checkpoint import load_checkpoint
from medgan.cli import main
from medgan.run import TEMPORARY_NAME
from medgan.visuals import read_jsonl

from helpers import TINY, assert_one_error_line, listing

FULL = "No space left on device"


def temporaries(run):
    return [p for folder in (run, run / "checkpoints", run / "samples") if folder.is_dir()
            for p in folder.iterdir() if TEMPORARY_NAME.match(p.name)]


def full_disk(monkeypatch, target, name_starts: str, after: int = 0):
    """Makes ``target.<method>`` (a write) raise ENOSPC for files whose name starts with ``name_starts``,
    after ``after`` such writes succeeded. Returns the list of attempted paths."""
    cls, method = target
    original = getattr(cls, method)
    attempts = []

    def write(self, *args, **kwargs):
        path = pathlib.Path(self if isinstance(self, pathlib.Path) else args[0])
        if path.name.startswith(name_starts):
            attempts.append(path)
            if len(attempts) > after:
                raise OSError(errno.ENOSPC, FULL, str(path))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, write)
    return attempts


# --------------------------------------------------------------------------------------------------------------
# kill -9


def test_kill_9_during_checkpoint_writes_never_loses_the_run(tmp_path, tiny_brain):
    run = tmp_path / "run"
    latest = run / "checkpoints" / "latest.pt"
    cli = [sys.executable, "-m", "medgan.cli", "train"]
    fresh = [*cli, "--data", str(tiny_brain), "--out", str(run), "--steps", "400", *TINY,
             "--set", "train.checkpoint_every=1"]
    resume = [*cli, "--out", str(run), "--resume", "--steps", "400", "--quiet"]
    rng = random.Random(7)
    steps = []
    for attempt in range(3):
        previous = (latest.stat().st_ino, latest.stat().st_mtime_ns) if latest.exists() else None
        process = subprocess.Popen(fresh if attempt == 0 else resume, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180
            while not latest.exists() or (latest.stat().st_ino, latest.stat().st_mtime_ns) == previous:
                assert process.poll() is None, "training ended before it was killed"
                assert time.monotonic() < deadline, "no checkpoint written"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))  # a random moment after this process's first checkpoint
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        state = load_checkpoint(latest, required=("config", "data_spec", "inference", "task", "loop"))
        steps.append(state["loop"]["step"])
    assert steps == sorted(steps) and steps[0] >= 1
    # What a kill inside an atomic write leaves: hidden temporary files beside the targets.
    (run / "checkpoints" / ".latest.0123456789abcdef.pt").write_bytes(b"torn")
    (run / "samples" / ".step_0000001.0123456789abcdef.png").write_bytes(b"torn")
    target = steps[-1] + 3
    assert main(["train", "--out", str(run), "--resume", "--steps", str(target), "--quiet"]) == 0
    assert load_checkpoint(latest)["loop"]["step"] == target
    assert temporaries(run) == []
    logged = [record["step"] for record in read_jsonl(run / "losses.jsonl")]
    assert logged == list(range(1, target + 1))  # log_every=1: every step exactly once, none duplicated


# --------------------------------------------------------------------------------------------------------------
# a full disk


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, tiny_brain, capsys, monkeypatch):
    run = tmp_path / "run"
    full_disk(monkeypatch, (pathlib.Path, "write_bytes"), ".latest.", after=1)  # the second checkpoint fails
    code = main(["train", "--data", str(tiny_brain), "--out", str(run), "--steps", "6", *TINY])
    assert_one_error_line(code, capsys, str(run / "checkpoints" / "latest.pt"), "no space left on device")
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["loop"]["step"] == 2
    assert temporaries(run) == []
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--quiet"]) == 0


@pytest.mark.parametrize("existing", [False, True])
def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, tiny_brain, capsys, monkeypatch,
                                                                         existing):
    run = tmp_path / "new" / "run"
    if existing:  # a folder the user made: only what this invocation created goes
        run.mkdir(parents=True)
        (run / "notes.txt").write_text("mine")
    before = listing(tmp_path)
    full_disk(monkeypatch, (pathlib.Path, "write_bytes"), ".latest.")
    code = main(["train", "--data", str(tiny_brain), "--out", str(run), "--steps", "4", *TINY])
    assert_one_error_line(code, capsys, "latest.pt", "no space left on device")
    assert listing(tmp_path) == before


def mount_tiny_disk(folder, size):
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {result.stderr.strip()}")


def test_a_really_full_disk_during_training_sampling_and_evaluation(tmp_path, tiny_brain, tiny_run, capsys):
    """A real 96 KiB tmpfs: torch.save's own writer reports a full disk as RuntimeError, hence this test."""
    disk = tmp_path / "disk"
    mount_tiny_disk(disk, "96k")
    try:
        argv = {
            "train": ["train", "--data", str(tiny_brain), "--out", str(disk / "run"), "--steps", "2", *TINY],
            "sample": ["sample", "--run", str(tiny_run), "--n", "200", "--out", str(disk / "samples")],
            "evaluate": ["evaluate", "--real", str(tiny_brain), "--fake", str(tiny_run), "--out", str(disk / "report"),
                         "--max-images", "16", "--quiet"],
        }
        for name, command in argv.items():
            line = assert_one_error_line(main(command), capsys, str(disk))
            assert "no space left on device" in line.lower(), (name, line)
            assert listing(disk) == [], (name, listing(disk))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_while_sampling_removes_the_images_already_written(tmp_path, tiny_run, capsys, monkeypatch):
    from PIL import Image

    full_disk(monkeypatch, (Image.Image, "save"), ".sample_", after=2)
    out = tmp_path / "samples"
    code = main(["sample", "--run", str(tiny_run), "--n", "5", "--out", str(out)])
    assert_one_error_line(code, capsys, str(out / "sample_0002.png"), FULL)
    assert not out.exists()


def test_a_full_disk_while_writing_the_interpolation_removes_the_images(tmp_path, tiny_run, capsys, monkeypatch):
    attempts = full_disk(monkeypatch, (pathlib.Path, "write_bytes"), ".interpolation.")
    out = tmp_path / "samples"
    code = main(["sample", "--run", str(tiny_run), "--n", "3", "--out", str(out), "--interpolate", "4"])
    assert_one_error_line(code, capsys, str(out / "interpolation.png"), FULL)
    assert attempts and not out.exists()


@pytest.mark.parametrize("fmt, after", [("png", 1), ("png16", 1), ("nifti", 0), ("npy", 1), ("dicom", 1)])
def test_a_full_disk_during_export_leaves_nothing(tmp_path, tiny_run, capsys, monkeypatch, fmt, after):
    """The rename that publishes a file fails (the last step of every atomic write, in every format)."""
    real_replace = os.replace
    calls = []

    def replace(source, destination, **kwargs):
        calls.append(destination)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, FULL, str(source))
        return real_replace(source, destination, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "export"
    code = main(["sample", "--run", str(tiny_run), "--n", "3", "--format", fmt, "--out", str(out)])
    line = assert_one_error_line(code, capsys, str(out), FULL)
    assert "/." not in line  # names the file, never the hidden temporary
    assert not out.exists() and listing(tmp_path) == []


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_brain, tiny_run):
    out = tmp_path_factory.mktemp("reports") / "report"
    argv = ["evaluate", "--real", str(tiny_brain), "--fake", str(tiny_run), "--out", str(out), "--max-images", "12",
            "--quiet"]
    assert main(argv) == 0
    return out, argv


@pytest.mark.parametrize("where", ["new folder", "previous report"])
def test_a_full_disk_during_evaluation_writes_both_files_or_neither(tmp_path, evaluated, capsys, monkeypatch, where):
    previous, argv = evaluated
    out = tmp_path / "report"
    if where == "previous report":
        shutil.copytree(previous, out)
    before = {path.name: path.read_bytes() for path in out.glob("*")} if out.exists() else None
    full_disk(monkeypatch, (pathlib.Path, "write_bytes"), ".report.")  # metrics.json is written first
    code = main([*argv[:-4], str(out), *argv[-3:]])
    assert_one_error_line(code, capsys, str(out / "report.html"), "no space left on device")
    if before is None:
        assert not out.exists()
    else:
        assert {path.name: path.read_bytes() for path in out.glob("*")} == before  # no temporaries either


# --------------------------------------------------------------------------------------------------------------
# divergence and corruption


def test_weights_that_diverge_under_a_finite_loss_keep_the_last_good_checkpoint(tmp_path, tiny_brain, capsys,
                                                                                monkeypatch):
    from medgan.training.tasks.noise_to_image import NoiseToImageTask

    original = NoiseToImageTask.train_step

    def poisoned(self, batch, step):
        logs = original(self, batch, step)
        if step >= 2:  # after the checkpoint at step 2; BatchNorm trains on batch statistics, so losses stay finite
            norm = next(m for m in self.generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
            norm.running_var.fill_(float("inf"))
        return logs

    monkeypatch.setattr(NoiseToImageTask, "train_step", poisoned)
    run = tmp_path / "run"
    code = main(["train", "--data", str(tiny_brain), "--out", str(run), "--steps", "8", *TINY])
    line = assert_one_error_line(code, capsys, str(run), "non-finite", "last good checkpoint")
    assert "running_var" in line
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["loop"]["step"] == 2
    monkeypatch.undo()
    out = tmp_path / "samples"
    assert main(["sample", "--run", str(run), "--n", "3", "--out", str(out), "--format", "npy"]) == 0
    import numpy as np

    assert np.isfinite(np.load(out / "samples.npy")).all()


def flip_a_bit_in_the_weights(path):
    """Flips one bit in the middle of the largest tensor stored in a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        member = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[member.header_offset + 26 : member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    raw[start + member.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_in_a_checkpoint_is_caught_on_load(tmp_path, tiny_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    best = run / "checkpoints" / "best.pt"
    flip_a_bit_in_the_weights(best)
    out = tmp_path / "samples"
    code = main(["sample", "--run", str(run), "--n", "2", "--out", str(out)])
    assert_one_error_line(code, capsys, str(best), "SHA-256")
    assert not out.exists()
