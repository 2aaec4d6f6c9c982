"""The paired source ``ct-phantom-volumes``: whole phantom patients at routine and low dose, true 2.5D neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_one_error_line

from medgan.config import DataConfig
from medgan.data.degrade import parse_degradation
from medgan.data.pairs import check_context, degraded_pairs, load_pairs
from medgan.data.phantom import volume_pairs
from medgan.data.phantom.volume_pairs import (
    VOLUME_SOURCE,
    phantom_volume_groups,
    phantom_volume_pair,
    volume_pair_seeds,
)
from medgan.errors import ConfigError

SEED = 7000  # the first training patient


def _config(**values) -> DataConfig:
    return DataConfig(**{"source": VOLUME_SOURCE, "degrade": "lowdose:0.25", "resolution": 32,
                         "crop_foreground": False, **values})


def _noise(dose: float) -> tuple[float, float, dict]:
    """Mean and std (HU) of input - target inside the body, at 64 px x 4 slices, and the pair.

    At 32 px (12.5 mm pixels) the photon noise is about 1 HU and no longer dominates the difference; at 64 px it
    does (about 3 HU at quarter dose)."""
    pair = phantom_volume_pair(SEED, 64, dose, slices=4)
    target, low = pair["target"].array, pair["input"].array
    body = target > -500.0
    difference = (low - target)[body]
    return float(difference.mean()), float(difference.std()), pair


def test_pairs_share_the_grid_and_anatomy_with_independent_noise():
    mean_quarter, std_quarter, pair = _noise(0.25)
    target, low = pair["target"], pair["input"]
    assert target.array.shape == low.array.shape == (64, 64, 4)
    assert np.array_equal(target.affine, low.affine) and target.spacing == low.spacing == (6.25, 6.25, 2.5)
    assert target.subject == low.subject == "phantom-07000" and target.modality == low.modality == "CT"
    assert abs(mean_quarter) < 0.1 * std_quarter  # noise, not a bias
    assert np.corrcoef(target.array.ravel(), low.array.ravel())[0, 1] > 0.9  # the same anatomy
    # Independent scans: var(input - target) = s^2 (1 + 1/F), s the routine dose's noise (s^2 ~ 1/dose).
    mean_half, std_half, _ = _noise(0.5)
    assert abs(mean_half) < 0.1 * std_half
    assert std_quarter / std_half == pytest.approx(np.sqrt((1 + 4) / (1 + 2)), rel=0.08)


def test_splits_hold_disjoint_patients():
    train, test, every = (set(volume_pair_seeds(split)) for split in ("train", "test", "all"))
    assert len(train) == volume_pairs.VOLUME_TRAIN_PATIENTS and len(test) == volume_pairs.VOLUME_TEST_PATIENTS
    assert not train & test and every == train | test
    assert volume_pair_seeds("test", patients=1) == [8000]


def test_context_stacks_true_neighbouring_slices(monkeypatch):
    monkeypatch.setattr(volume_pairs, "VOLUME_SLICES", 4)
    check_context(_config(context=1))  # allowed: the volumes have neighbours
    pairs = degraded_pairs(_config(context=1), parse_degradation("lowdose:0.25"), progress=False, patients=1)
    inputs = pairs.aligned["input"]
    assert pairs.images.shape == (4, 1, 32, 32) and inputs.shape == (4, 3, 32, 32)
    assert set(pairs.subjects) == {"phantom-07000"} and pairs.degradation == "lowdose:0.25"
    for centre in (1, 2):  # channels: the slice, the one below, the one above
        assert np.allclose(inputs[centre, 1], inputs[centre - 1, 0])
        assert np.allclose(inputs[centre, 2], inputs[centre + 1, 0])
    held_out = load_pairs(_config(split="test"), progress=False)  # the test split is a held-out split here
    assert set(held_out.subjects) == {f"phantom-0{8000 + index}" for index in range(volume_pairs.VOLUME_TEST_PATIENTS)}


@pytest.mark.parametrize("config, fragment", [
    (_config(degrade="downsample:2"), "true low-dose scans only"),
    (_config(degrade="lowdose:1"), "F < 1"),
    (_config(split="val"), "train, test, all"),
])
def test_unsupported_settings_are_config_errors(config, fragment):
    with pytest.raises(ConfigError, match=fragment):
        phantom_volume_groups(config, parse_degradation(config.degrade), progress=False)


@pytest.mark.parametrize("arguments, fragment", [
    (["--degrade", "inpaint"], "lowdose:F (0 < F < 1)"),
    (["--degrade", "lowdose:1"], "F < 1"),
    ([], "is paired data"),
])
def test_cli_prints_one_line_and_writes_nothing(tmp_path, capsys, arguments, fragment):
    from medgan.cli import main

    code = main(["train", "--data", VOLUME_SOURCE, *arguments, "--resolution", "32", "--steps", "1",
                 "--out", str(tmp_path / "run"), "--quiet"])
    assert_one_error_line(code, capsys, fragment)
    assert not (tmp_path / "run").exists()
