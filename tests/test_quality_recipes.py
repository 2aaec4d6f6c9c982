"""Issue 13's new paths: the "standard" recipe, the CPU-time budget and the hard lesion regime source."""

import time

import numpy as np
import torch

from medgan.config import DataConfig, from_dict, recipe, validate
from medgan.data import load_slices
from medgan.data.phantom.cases import lesion_rois
from medgan.data.phantom.sources import HARD_LESION_DOSE, HARD_LESION_ROIS_PER_CLASS
from medgan.training.loop import Budget, train


def test_standard_recipe_is_the_textbook_one_and_trains(tmp_path):
    config = recipe("standard")
    validate(config)
    assert (config.model.generator_channels, config.model.discriminator_channels) == (48, 48)
    assert config.model.spectral_norm and config.loss.adversarial == "hinge"
    assert config.optim.betas == (0.0, 0.99)
    assert (config.optim.lr_generator, config.optim.lr_discriminator) == (2e-4, 4e-4)
    assert config.train.ema == 0.995
    assert set(config.augment.policy) == {"translation", "cutout", "brightness", "contrast"}
    tiny = from_dict({"data": {"source": "mni152", "resolution": 32},
                      "train": {"steps": 2, "batch_size": 8, "eval_every": 0, "threads": 1}}, base=config)
    result = train(tiny, tmp_path / "run", progress=False)
    assert result.steps == 2 and result.checkpoint.exists()


def test_cpu_budget_ends_on_process_time_and_sets_a_horizon():
    config = from_dict({"train": {"steps": 0, "cpu_minutes": 0.5}})
    validate(config)  # no step limit is fine when a CPU budget is set
    budget = Budget(0, 0.0, 0, cpu_minutes=0.002)  # 0.12 s of CPU
    time.sleep(0.2)  # sleeping uses no CPU time: the budget is not spent
    assert not budget.finished(5)
    step = 0
    while not budget.finished(step):
        torch.randn(64, 64) @ torch.randn(64, 64)
        step += 1
        if step == 20:
            assert step < budget.horizon(step) < 10**9  # an estimate from the measured CPU rate, not a placeholder
    assert time.process_time() - budget.cpu_started >= 0.12


def test_hard_lesion_source_has_fewer_noisier_rois():
    hard = load_slices(DataConfig(source="ct-lesions-hard", window="liver-portal"), progress=False)
    assert len(hard) == 3 * HARD_LESION_ROIS_PER_CLASS
    assert torch.bincount(hard.labels).tolist() == [HARD_LESION_ROIS_PER_CLASS] * 3
    # The same patient rendered at routine dose and at the hard regime's dose: same anatomy, more noise.
    routine, low = (lesion_rois(n_per_class=1, roi_size=64, seed=1, dose=dose) for dose in (1.0, HARD_LESION_DOSE))
    assert routine.patients == low.patients
    noise = [np.std(np.diff(rois.images_hu[:, 24:40, 24:40], axis=2)) for rois in (routine, low)]
    assert noise[1] > 1.2 * noise[0]  # dose 0.25: quantum noise 2 x routine's, on top of the texture
