"""Hardening: output paths (an existing file, a path below a file, a folder without write permission) for every
command that writes, and sizes and non-finite values checked before any work. Every bad input: exit 2, one
stderr line naming the file or option, no traceback, nothing new on disk."""

import errno
import os

import pytest

from medgan.cli import main

from helpers import TINY, assert_one_error_line, listing


def commands(tiny_brain, run, out):
    """Every command that writes, with ``out`` as its output."""
    return {
        "train": ["train", "--data", str(tiny_brain), "--out", str(out), "--steps", "1", *TINY],
        "sample": ["sample", "--run", str(run), "--n", "2", "--out", str(out)],
        "sample-nifti": ["sample", "--run", str(run), "--n", "2", "--format", "nifti", "--out", str(out / "s.nii.gz")],
        "evaluate": ["evaluate", "--real", str(tiny_brain), "--fake", str(run), "--out", str(out), "--quiet"],
        "utility": ["utility", "--synthetic", str(run), "--out", str(out), "--quiet"],
        "demo": ["demo", "--out", str(out), "--minutes", "0.01", "--quiet"],
    }


COMMANDS = ["train", "sample", "sample-nifti", "evaluate", "utility", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["existing file", "below a file"])
def test_an_output_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path, tiny_brain, tiny_run, capsys, command,
                                                                      case):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if case == "existing file" else blocker / "deeper"  # sample-nifti writes out/s.nii.gz
    before = listing(tmp_path)
    code = main(commands(tiny_brain, tiny_run, out)[command])
    assert_one_error_line(code, capsys, "--out", str(blocker))
    assert listing(tmp_path) == before and blocker.read_text() == "not a folder"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_without_write_permission_is_refused_before_any_work(tmp_path, tiny_brain, tiny_run, capsys,
                                                                      monkeypatch, command):
    """Tests run as root, for whom permission bits do not apply: os.access is what the check asks."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(locked)
                        else real_access(path, mode, **kw))
    before = listing(tmp_path)
    code = main(commands(tiny_brain, tiny_run, locked / "out")[command])
    assert_one_error_line(code, capsys, "no permission to write", str(locked))
    assert listing(tmp_path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_folder_is_refused_for_real(tmp_path, tiny_run, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code = main(["sample", "--run", str(tiny_run), "--n", "2", "--out", str(locked / "out")])
        assert_one_error_line(code, capsys, "no permission to write", str(locked))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_a_write_error_names_the_users_file_not_a_temporary_one(tmp_path, tiny_run, capsys, monkeypatch):
    from PIL import Image

    def refuse(self, fp, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(fp))  # fp is the hidden temporary file

    monkeypatch.setattr(Image.Image, "save", refuse)
    out = tmp_path / "out"
    code = main(["sample", "--run", str(tiny_run), "--n", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {out / 'sample_0000.png'}: "), err
    assert "/." not in err and not out.exists()


def test_a_write_error_outside_medgan_errors_is_one_line(tmp_path, capsys, monkeypatch):
    """An OSError of a write (here EROFS) that no writer turned into a MedganError still prints one line."""
    import medgan.cli.parser

    def read_only(args):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x"))

    monkeypatch.setattr(medgan.cli.parser, "command_info", read_only)
    assert_one_error_line(main(["info", "mni152"]), capsys, str(tmp_path / "x"), "read-only file system")


def test_an_os_error_that_is_no_write_failure_stays_a_bug(monkeypatch):
    import medgan.cli.parser

    def broken(args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(medgan.cli.parser, "command_info", broken)
    with pytest.raises(OSError):
        main(["info", "mni152"])


@pytest.mark.parametrize("argv, fragment", [
    (["sample", "--n", "0"], "--n must be between 1 and 100,000"),
    (["sample", "--n", "100000000"], "--n must be between 1 and 100,000"),
    (["sample", "--n", "2", "--interpolate", "-2"], "--interpolate must be between 2 and 64"),
    (["sample", "--n", "2", "--interpolate", "0"], "--interpolate"),
    (["sample", "--n", "2", "--interpolate", "1"], "--interpolate"),
    (["sample", "--n", "2", "--interpolate", "1000"], "--interpolate"),
    (["evaluate", "--max-images", "0"], "--max-images"),
    (["evaluate", "--max-images", "1000000000"], "--max-images"),
    (["utility", "--per-class", "100000000"], "--per-class"),
    (["utility", "--seeds", "0"], "utility.seeds"),
    (["utility", "--select", "-1"], "--select"),
    (["utility", "--threads", "100000000"], "utility.threads"),
    (["train", "--batch-size", "100000000"], "train.batch_size"),
    (["train", "--set", "model.latent_dim=100000000000"], "model.latent_dim"),
    (["train", "--set", "model.generator_channels=1000000"], "model.generator_channels"),
    (["train", "--set", "model.discriminator_channels=1000000"], "model.discriminator_channels"),
    (["train", "--set", "optim.lr_generator=.inf"], "'optim.lr_generator' must be a finite number"),
    (["train", "--set", "optim.lr_discriminator=nan"], "'optim.lr_discriminator' must be a finite number"),
    (["train", "--set", "loss.r1_gamma=-.inf"], "loss.r1_gamma"),
    (["train", "--set", "train.threads=100000000"], "train.threads"),
    (["demo", "--minutes", "nan"], "train.minutes"),
])
def test_sizes_and_non_finite_values_are_checked_before_any_work(tmp_path, tiny_brain, tiny_run, capsys, argv,
                                                                 fragment):
    out = tmp_path / "out"
    command, options = argv[0], argv[1:]
    base = {
        "sample": ["sample", "--run", str(tiny_run), "--out", str(out)],
        "evaluate": ["evaluate", "--real", str(tiny_brain), "--fake", str(tiny_run), "--out", str(out), "--quiet"],
        "utility": ["utility", "--synthetic", str(tiny_run), "--out", str(out), "--quiet"],
        "train": ["train", "--data", str(tiny_brain), "--out", str(out), "--steps", "1", *TINY],
        "demo": ["demo", "--out", str(out), "--quiet"],
    }[command]
    before = listing(tmp_path)
    assert_one_error_line(main(base + options), capsys, fragment)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("text, fragment", [
    ("model:\n  latent_dim: 100000000000\n", "model.latent_dim"),
    ("optim:\n  lr_generator: .inf\n", "optim.lr_generator"),
    ("augment:\n  probability: .nan\n", "augment.probability"),
    ("data:\n  roi_size: 100000000\n", "data.roi_size"),
])
def test_yaml_sizes_and_non_finite_values_are_refused(tmp_path, tiny_brain, capsys, text, fragment):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    before = listing(tmp_path)
    code = main(["train", "--data", str(tiny_brain), "--config", str(config), "--out", str(tmp_path / "run"), "--steps",
                 "1", "--quiet"])
    assert_one_error_line(code, capsys, fragment)
    assert listing(tmp_path) == before


def test_large_images_lower_the_sample_limit():
    from medgan.errors import ConfigError
    from medgan.inference.noise import check_sample_count

    check_sample_count(100_000, 64)
    check_sample_count(16_384, 256)
    with pytest.raises(ConfigError, match="--n must be between 1 and 16,384 for 256x256"):
        check_sample_count(16_385, 256)
