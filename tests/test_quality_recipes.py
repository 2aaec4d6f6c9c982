"""Issue 13's new paths: the "standard" recipe, the CPU-time budget and the hard lesion regime source."""

import time

import numpy as np
import pytest
import torch

from medgan.config import DataConfig, from_dict, validate
from medgan.training.tasks import recipe
from medgan.data import SliceSet, load_slices
from medgan.data.intensity import IntensityMapping
from medgan.data.slicing import foreground_fraction
from medgan.errors import ConfigError
from medgan.data.phantom.cases import lesion_rois
from medgan.data.phantom.sources import HARD_LESION_DOSE, HARD_LESION_ROIS_PER_CLASS
from medgan.training.batches import BatchSampler, size_balance_weights
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


def test_balance_draws_rare_small_slices_more_often_and_is_checked():
    images = -torch.ones(100, 1, 32, 32)
    images[:10, :, 12:20, 12:20] = 0.5  # 10 small slices (6% foreground)
    images[10:, :, 4:28, 4:28] = 0.5  # 90 large ones (56%), with a little spread in size
    for i in range(10, 100):
        images[i, :, 4:28, 4 + i % 3] = -1.0
    small = torch.as_tensor(foreground_fraction(images) < 0.2)
    data = SliceSet(images, IntensityMapping("identity", -1.0, 1.0), (1.0, 1.0), ["s"] * 100, [""] * 100)

    def small_share(balance: float) -> float:
        config = DataConfig(flip=False, rotate_degrees=0.0, scale=0.0, balance=balance)
        sampler = BatchSampler(data, 32, config, torch.Generator().manual_seed(0))
        return float(torch.cat([small[sampler.next_indices()] for _ in range(200)]).float().mean())

    assert abs(small_share(0.0) - 0.10) < 0.01  # shuffled epochs: every slice once per epoch
    assert 0.4 < small_share(1.0) < 0.6  # flat over the two sizes
    assert 0.15 < small_share(0.5) < 0.35
    assert size_balance_weights(-torch.ones(8, 1, 32, 32), 1.0) is None  # sizes do not vary: uniform epochs
    with pytest.raises(ConfigError, match=r"data\.balance"):
        validate(from_dict({"data": {"balance": 1.5}}))


def test_default_leaves_out_leaking_augmentation_and_the_liver_demo_keeps_what_it_was_measured_with():
    from medgan.demos import demo_config

    default = recipe("medgan")
    assert (default.data.rotate_degrees, default.data.scale) == (0.0, 0.0) and default.data.flip is None  # auto
    assert (default.model.generator_channels, default.model.discriminator_channels) == (32, 24)
    assert default.options["mode_seeking"] == 0.09
    liver = demo_config("liver")
    assert (liver.data.rotate_degrees, liver.data.scale, liver.model.discriminator_channels) == (5.0, 0.05, 32)
    assert liver.data.flip is True and liver.options["mode_seeking"] == 0.075
    assert demo_config("brain").model.discriminator_channels == 24


@pytest.mark.parametrize("unit, flip, mirrors", [("HU", None, False), ("a.u.", None, True), ("HU", True, True),
                                                 ("a.u.", False, False)])
def test_auto_flip_leaves_ct_anatomy_unmirrored(unit, flip, mirrors):
    images = -torch.ones(64, 1, 16, 16)
    images[:, :, 4:12, :4] = 1.0  # "the liver": always on the image's left half
    data = SliceSet(images, IntensityMapping("ct_window" if unit == "HU" else "percentile", -1.0, 1.0, unit),
                    (1.0, 1.0), ["s"] * 64, [""] * 64)
    config = DataConfig(flip=flip, rotate_degrees=0.0, scale=0.0)
    sampler = BatchSampler(data, 32, config, torch.Generator().manual_seed(0))
    batches = torch.cat([sampler.next().images for _ in range(4)])
    mirrored = (batches[:, 0, 4:12, -4:] > 0).all(-1).all(-1)
    assert bool(mirrored.any()) == mirrors
    if mirrors:
        assert 0.3 < float(mirrored.float().mean()) < 0.7  # each image flipped with probability 1/2
