"""Hardening: options that were silently ignored, config sections of the wrong type, crafted checkpoints,
and the warm-up schedule. Every bad input: exit 2, one stderr line naming the file or option, no traceback,
nothing new on disk."""

import subprocess
import sys

import pytest
import torch

from medgan.checkpoint import save_checkpoint
from medgan.training.schedule import lr_factor

from helpers import TINY, cli, write_tiny_brain


def run_cli_process(*args):
    """The real console process (its stderr and exit status), for one case of this module's contract."""
    return subprocess.run([sys.executable, "-m", "medgan.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


run_cli = cli  # the other cases, in this process (helpers.cli)


def assert_clean_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def brain(tmp_path_factory):
    return write_tiny_brain(tmp_path_factory.mktemp("data") / "brain.nii.gz")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, brain):
    run = tmp_path_factory.mktemp("runs") / "run"
    result = run_cli("train", "--data", brain, "--out", run, "--steps", "2", *TINY)
    assert result.returncode == 0, result.stderr
    return run


def test_labels_without_the_conditional_task_are_refused(tmp_path, brain):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"file,label\n{brain.name},a\n")
    before = listing(tmp_path)
    result = run_cli("train", "--data", brain, "--labels", labels, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert_clean_error(result, "labels.csv", "--task conditional")
    assert listing(tmp_path) == before


def test_applications_ask_the_runs_task_what_it_can_do(tmp_path, trained):
    """Capabilities come from the run's task: utility needs classes, --direction needs two directions."""
    result = run_cli("utility", "--synthetic", trained, "--out", tmp_path / "u")
    assert_clean_error(result, "needs a class-conditional run; task 'unconditional'")
    result = run_cli("evaluate", "--fake", trained, "--real", "mni152", "--direction", "b2a", "--out", tmp_path / "e")
    assert_clean_error(result, "task 'unconditional' translates one way")
    assert not (tmp_path / "u").exists() and not (tmp_path / "e").exists()


def test_class_on_an_unconditional_run_is_refused(tmp_path, trained):
    result = run_cli("sample", "--run", trained, "--n", "2", "--class", "cyst", "--out", tmp_path / "s")
    assert_clean_error(result, "not class-conditional")
    assert not (tmp_path / "s").exists()


def test_a_yaml_section_of_the_wrong_type_is_not_replaced_by_a_flag(tmp_path, brain):
    config = tmp_path / "c.yaml"
    config.write_text("train: 5\n")
    result = run_cli("train", "--data", brain, "--config", config, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert_clean_error(result, "'train' must be a mapping")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, fragment", [
    ("augment.policy=[translation,sharpen]", "unknown augmentation 'sharpen'"),
    ("loss.adversarial=focal", "focal"),
    ("model.name=unet3d", "unet3d"),
])
def test_unknown_names_fail_before_the_run_folder_exists(tmp_path, brain, option, fragment):
    result = run_cli("train", "--data", brain, "--out", tmp_path / "run", "--steps", "1", "--set", option, *TINY)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()


def _crafted(trained, tmp_path, change):
    import shutil

    copy = tmp_path / "crafted"
    shutil.copytree(trained, copy)
    for name in ("latest.pt", "best.pt"):
        path = copy / "checkpoints" / name
        state = torch.load(path, weights_only=True)
        state.pop("content_sha256")
        change(state)
        save_checkpoint(path, state)  # a valid hash over crafted content: the fields themselves must be checked
    return copy


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s["task"].update(generator=5), "generator weights are not a state dict"),
    (lambda s: s["task"].pop("optimizer_g"), "task state does not fit"),
    (lambda s: s["loop"].pop("sampler"), "does not fit this run"),
    (lambda s: s.update(config={"train": "x"}), "config"),
])
def test_crafted_checkpoints_get_one_line_errors_on_resume(tmp_path, trained, change, fragment):
    crafted = _crafted(trained, tmp_path, change)
    run = run_cli_process if fragment == "config" else run_cli  # one case in the real console process
    assert_clean_error(run("train", "--out", crafted, "--resume", "--steps", "3"), fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s["inference"].update(generator={"bad": torch.zeros(1)}), "generator weights do not fit"),
    (lambda s: s["inference"].update(kind="diffusion"), "diffusion"),
    (lambda s: s["data_spec"].update(domains="x"), "malformed data spec"),
    (lambda s: s.pop("inference"), "inference"),
])
def test_crafted_checkpoints_get_one_line_errors_on_sample(tmp_path, trained, change, fragment):
    crafted = _crafted(trained, tmp_path, change)
    assert_clean_error(run_cli("sample", "--run", crafted, "--n", "2", "--out", tmp_path / "s"), fragment)
    assert not (tmp_path / "s").exists()


def test_warm_up_starts_below_the_full_rate():
    """The first update used to run at the full learning rate (the factor was applied after each step)."""
    assert lr_factor(0, 1000, "constant", 100) == pytest.approx(0.01)
    assert lr_factor(99, 1000, "constant", 100) == pytest.approx(1.0)
    assert lr_factor(100, 1000, "linear", 100) == pytest.approx(1.0)


def test_the_first_logged_step_runs_at_the_warm_up_rate(tmp_path, brain):
    result = run_cli("train", "--data", brain, "--out", tmp_path / "run", "--steps", "2", "--set",
                     "optim.warmup_steps=100", "--set", "train.log_every=1", *TINY)
    assert result.returncode == 0, result.stderr
    from medgan.visuals import read_jsonl

    factors = [r["lr_factor"] for r in read_jsonl(tmp_path / "run" / "losses.jsonl")]
    assert factors == pytest.approx([0.01, 0.02])
