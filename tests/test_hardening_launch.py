"""Hardening (issue #24): launching several processes, DP settings, config precedence and resume, options that make
no sense together. Every bad input: exit 2, one stderr line naming the file or option, no traceback, nothing new on
disk, and with --nproc no torchrun started."""

import os
import shutil
import subprocess
import sys
import time
import warnings

import pytest

from medgan.errors import ConfigError
from medgan.training import privacy as dp

from helpers import TINY, cli, listing, write_tiny_brain
from test_hardening_options import assert_clean_error, brain, trained  # noqa: F401  (module fixtures)


@pytest.fixture
def no_torchrun(monkeypatch):
    """os.execv (how --nproc starts torchrun) fails the test if called."""
    def execv(*args):
        pytest.fail(f"torchrun was started: {args}")

    monkeypatch.setattr(os, "execv", execv)


# ---------------------------------------------------------------------------------------------------------------
# 1. launching several processes


@pytest.mark.parametrize("options, fragment", [
    (["--data", "missing.nii.gz"], "missing.nii.gz: no such file or folder"),
    (["--data", "BRAIN", "--resolution", "33"], "data.resolution"),
    (["--data", "BRAIN", "--config", "CONFIG"], "c.yaml: unknown config key 'train.stepz'"),
    (["--data", "BRAIN", "--timeout", "0"], "--timeout must be a number of seconds"),
    (["--data", "BRAIN", "--timeout", "1e300"], "--timeout must be a number of seconds"),
    (["--resume"], "checkpoints/latest.pt: checkpoint not found"),
    (["--data", "BRAIN", "--out", "FILE"], "--out is an existing file"),
    (["--data", "BRAIN", "--batch-size", "9"], "must be a multiple of the number of processes (2)"),
    (["--data", "BRAIN", "--task", "conditional", "--labels", "LABELS"], "labels.csv: no such file or folder"),
    (["--data", "ct-lesions", "--task", "conditional", "--dp-epsilon", "5"], "runs in one process"),
])
def test_nproc_checks_everything_before_starting_torchrun(tmp_path, brain, no_torchrun, options, fragment):
    (tmp_path / "c.yaml").write_text("train:\n  stepz: 3\n")
    (tmp_path / "file").write_text("not a folder")
    names = {"BRAIN": brain, "CONFIG": tmp_path / "c.yaml", "FILE": tmp_path / "file",
             "LABELS": tmp_path / "labels.csv"}
    options = [str(names.get(option, option)) for option in options]
    out = [] if "--out" in options else ["--out", tmp_path / "run"]
    before = listing(tmp_path)
    assert_clean_error(cli("train", "--nproc", "2", *out, "--steps", "2", "--quiet", *options), fragment)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("nproc", ["0", "-2"])
def test_nproc_below_one_is_refused_saying_what_one_means(tmp_path, brain, no_torchrun, nproc):
    result = cli("train", "--nproc", nproc, "--data", brain, "--out", tmp_path / "run", "--steps", "1", "--quiet")
    assert_clean_error(result, f"--nproc must be 1 or more (1: one process, no torchrun), got {nproc}")
    assert not (tmp_path / "run").exists()


def test_a_timeout_of_zero_is_refused_in_one_process_too(tmp_path, brain):
    result = cli("train", "--timeout", "0", "--data", brain, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert_clean_error(result, "--timeout")
    assert not (tmp_path / "run").exists()


def test_nproc_starts_torchrun_once_the_checks_pass(tmp_path, brain, trained, monkeypatch):
    started = []
    monkeypatch.setattr(os, "execv", lambda path, command: started.append(command))
    assert cli("train", "--nproc", "2", "--data", brain, "--out", tmp_path / "run", "--steps", "2",
               *TINY).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    assert cli("train", "--nproc", "2", "--out", copy, "--resume", "--steps", "4", "--quiet").returncode == 0
    assert [command[command.index("--nproc-per-node") + 1] for command in started] == ["2", "2"]
    assert "--nproc" not in started[0]
    assert started[1][-6:] == ["--out", str(copy), "--resume", "--steps", "4", "--quiet"]
    assert not (tmp_path / "run").exists()  # nothing written before torchrun


def test_nproc_with_a_missing_data_path_is_one_line_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "medgan", "train", "--nproc", "2", "--data",
                             str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert_clean_error(result, "missing: no such file or folder")
    assert "ChildFailedError" not in result.stderr and not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------------
# 2. DP settings


@pytest.mark.parametrize("options, fragment", [
    (["--dp-delta", "1e-6"], "--dp-delta needs --dp-epsilon or --dp-noise"),
    (["--dp-max-grad-norm", "0.5"], "--dp-max-grad-norm needs --dp-epsilon or --dp-noise"),
    (["--set", "privacy.delta=1e-6"], "config key 'privacy.delta' needs privacy.epsilon or privacy.noise"),
    (["--set", "privacy.unit=slice"], "config key 'privacy.unit' needs privacy.epsilon or privacy.noise"),
    (["--config", "CONFIG"], "config key 'privacy.max_grad_norm' needs privacy.epsilon or privacy.noise"),
])
def test_dp_settings_without_epsilon_or_noise_are_refused(tmp_path, brain, options, fragment):
    (tmp_path / "dp.yaml").write_text("privacy:\n  max_grad_norm: 0.5\n")
    options = [str(tmp_path / "dp.yaml") if option == "CONFIG" else option for option in options]
    result = cli("train", "--data", brain, "--out", tmp_path / "run", "--steps", "1", *TINY, *options)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_dp_settings_with_epsilon_from_the_config_file_are_taken(tmp_path):
    from medgan.cli import build_parser, resolve_train_config

    (tmp_path / "dp.yaml").write_text("privacy:\n  epsilon: 4\nmodel:\n  minibatch_std: false\n")
    args = build_parser().parse_args(["train", "--data", "ct-lesions", "--task", "conditional", "--out", "unused",
                                      "--config", str(tmp_path / "dp.yaml"), "--dp-delta", "1e-6"])
    privacy = resolve_train_config(args).privacy
    assert (privacy.epsilon, privacy.delta) == (4.0, 1e-6)


def test_an_absurd_epsilon_is_refused_at_once(tmp_path, brain):
    started = time.monotonic()
    result = cli("train", "--data", "ct-lesions", "--task", "conditional", "--dp-epsilon", "1e30",
                 "--out", tmp_path / "run", "--steps", "10", "--quiet")
    assert time.monotonic() - started < 5  # it used to solve the noise for ever
    assert_clean_error(result, "privacy.epsilon' must be at most 1000")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="privacy.epsilon must be in"):
        dp.solve_noise(1e30, 1e-5, 0.25, 2000)
    assert time.monotonic() - started < 1


def test_the_noise_solve_gives_up_bisecting_with_a_sigma_within_the_target(monkeypatch):
    """An accountant whose epsilon never comes within the tolerance of the target (as near 1e30, where the float
    spacing is far above it): Opacus's loop never ends; this one stops and keeps the last sigma within the target."""
    calls = []

    def coarse(history, delta):
        calls.append(history[0][0])
        return 100.0 if history[0][0] < 1.0 else 10.0  # a step from 100 to 10: never within 0.05 of 50

    from medgan.training import accounting

    monkeypatch.setattr(accounting, "epsilon_spent", coarse)
    sigma = accounting.solve_noise(50.0, 1e-5, 0.25, 100)
    assert len(calls) == 1 + accounting.SOLVE_ITERATIONS  # one doubling (to 20), then the bisection's bound
    assert sigma >= 1.0  # where epsilon is 10, within the target


def test_noise_solving_matches_opacus_and_prints_no_accountant_warning():
    from opacus.accountants.utils import get_noise_multiplier

    expected = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=1.0, steps=200,
                                    accountant="rdp", epsilon_tolerance=0.01)
    assert dp.solve_noise(3.0, 1e-5, 1.0, 200) == expected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dp.epsilon_spent([(0.3, 1.0, 200)], 1e-5)  # little noise: Opacus's best order is its smallest
    assert not [warning for warning in caught if "Optimal order" in str(warning.message)]


# ---------------------------------------------------------------------------------------------------------------
# 3. config precedence and resume


@pytest.mark.parametrize("yaml, flag, fragment", [
    ("train:\n  steps: ten\n", ["--steps", "1"], "config key 'train.steps' must be an integer, got 'ten'"),
    ("data:\n  resolution: 64px\n", ["--resolution", "32"], "config key 'data.resolution' must be an integer"),
    ("train:\n  minutes: -1\n", ["--steps", "1"], "config key 'train.minutes' must be >= 0"),
    ("paired:\n  patch: big\n", ["--patch", "32", "--degrade", "downsample:2"], "config key 'paired.patch'"),
])
def test_a_bad_value_in_the_config_file_is_reported_even_where_a_flag_replaces_it(tmp_path, brain, yaml, flag,
                                                                                   fragment):
    config = tmp_path / "c.yaml"
    config.write_text(yaml)
    result = cli("train", "--data", brain, "--config", config, "--out", tmp_path / "run", *TINY, *flag)
    assert_clean_error(result, f"{config}: {fragment}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, fragment", [
    (["--set", "train.steps=ten"], "config key 'train.steps' must be an integer"),
    (["--set", "train.batch_size=16"], "where train.batch_size is 8; the options given make it 16. A resume takes "
                                       "--steps or --minutes"),
    (["--resolution", "64"], "where data.resolution is 32"),
    (["--data", "mni152"], "where data.source is"),
])
def test_options_on_resume_are_checked_and_may_not_change_the_run(tmp_path, trained, options, fragment):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    before = listing(copy)
    assert_clean_error(cli("train", "--out", copy, "--resume", "--steps", "4", "--quiet", *options), fragment)
    assert listing(copy) == before


@pytest.mark.parametrize("budget, fragment", [
    ({"minutes": -1.0, "steps": 0}, "'train.minutes' must be >= 0"),
    ({"steps": -5, "minutes": 0.0}, "'train.steps' must be >= 0"),
])
def test_a_negative_resume_budget_is_refused(trained, budget, fragment):
    """It used to mean "no limit": the resumed run trained for ever."""
    from medgan.training.loop import check_start

    with pytest.raises(ConfigError, match=fragment):
        check_start(None, trained, resume=True, budget=budget)


def test_the_same_command_again_with_resume_continues(tmp_path, brain, trained):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    result = cli("train", "--data", brain, "--out", copy, "--resume", "--steps", "3", *TINY)
    assert result.returncode == 0, result.stderr


def test_a_checkpoint_of_another_run_is_refused_on_resume(tmp_path, brain, trained):
    other = tmp_path / "other"
    assert cli("train", "--data", brain, "--out", other, "--steps", "2", *TINY, "--resolution", "64").returncode == 0
    config = (other / "config.yaml").read_text()
    shutil.copyfile(trained / "checkpoints" / "latest.pt", other / "checkpoints" / "latest.pt")
    result = cli("train", "--out", other, "--resume", "--steps", "4", "--quiet")
    assert_clean_error(result, "checkpoints/latest.pt: trained with data.resolution 32, but this run's config.yaml "
                               "has 64")
    assert (other / "config.yaml").read_text() == config  # not rewritten


def test_a_checkpoint_whose_data_spec_differs_from_data_json_is_refused(tmp_path, trained):
    import json

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    spec = json.loads((copy / "data.json").read_text())
    spec["resolution"] = 64
    (copy / "data.json").write_text(json.dumps(spec))
    result = cli("train", "--out", copy, "--resume", "--steps", "4", "--quiet")
    assert_clean_error(result, "latest.pt: trained with resolution 32, but this run's data.json has 64")


# ---------------------------------------------------------------------------------------------------------------
# 4. options that make no sense together


@pytest.mark.parametrize("task_options, task", [
    (["--input", "INPUT"], "paired"),
    (["--domain-a", "INPUT"], "unpaired"),
    ([], "unconditional"),
])
def test_labels_on_a_task_without_classes_are_refused(tmp_path, brain, task_options, task):
    other = write_tiny_brain(tmp_path / "other.nii.gz", seed=1)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"file,label\n{brain.name},a\n")
    task_options = [str(other) if option == "INPUT" else option for option in task_options]
    result = cli("train", "--data", brain, *task_options, "--labels", labels, "--out", tmp_path / "run",
                 "--steps", "1", *TINY)
    assert_clean_error(result, f"{labels}: --labels (data.labels) is for the conditional task; task {task!r} does "
                               "not use labels: add --task conditional")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", ["--input", "--pairs"])
def test_input_and_pairs_select_the_paired_task(option):
    from medgan.cli import build_parser, resolve_train_config

    args = build_parser().parse_args(["train", "--data", "mni152", "--out", "unused", option, "somewhere"])
    assert resolve_train_config(args).task == "paired"
