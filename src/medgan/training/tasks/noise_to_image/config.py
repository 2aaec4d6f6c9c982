"""The noise-to-image tasks' declarations (torch-free): their names and architectures, their own config section,
their recipes and their demos."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from medgan.config import (AugmentConfig, DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig,
                           check)
from medgan.training.tasks.declarations import DEMOS, RECIPES, Demo, Recipe, declare_task

TASK_NAMES = ("unconditional", "conditional")
ARCHITECTURES = ("dcgan", "resnet")  # medgan.networks: GENERATORS and DISCRIMINATORS
declare_task(TASK_NAMES[0], architectures=ARCHITECTURES, default=True)  # medgan's default task
declare_task(TASK_NAMES[1], architectures=ARCHITECTURES)


@dataclass(frozen=True)
class NoiseOptions:
    """The section ``unconditional:`` of a run's config."""

    # Weight of MSGAN's mode-seeking term (0 = off): at 4 CPU-minutes on MNI (10 seeds) 0.075 left the samples'
    # pairwise MS-SSIM 10.6% above real slices'; 0.09 gave 8.7% at the same FID (20.8 against 20.7), and 0.1
    # cost FID in a screen (docs: "Default recipe").
    mode_seeking: float = 0.09
    # Weight of the spectral term (medgan.losses.spectral; 0 = off): G's batch-mean radial power spectrum against
    # the real batch's, in log power.
    spectral: float = 0.0
    # The spectral term compares radii from this fraction of the Nyquist frequency up (0 = every radius; 0.5 at
    # 64 px = from 16 cycles per image): the fine scales, where grain lives, without the coarse ones (anatomy).
    spectral_from: float = 0.0
    # The mode-seeking term's pixel distances are taken on images average-pooled by this factor (1 = full
    # resolution, as in MSGAN): pixel-scale speckle that differs between samples then no longer counts as diversity.
    mode_seeking_pool: int = 1


@dataclass(frozen=True)
class ConditionalOptions(NoiseOptions):
    """The section ``conditional:`` of a run's config."""

    auxiliary: float = 1.0  # weight of the AC-GAN class cross-entropy when model.auxiliary_classifier is on


def check_noise_options(options: NoiseOptions, name: str, resolution: int) -> None:
    """Range checks of the section ``name`` (a noise-to-image task's) for images of side ``resolution``."""
    check(options.mode_seeking >= 0, f"{name}.mode_seeking", "must be >= 0")
    check(options.spectral >= 0, f"{name}.spectral", "must be >= 0")
    check(0 <= options.spectral_from < 1, f"{name}.spectral_from", "must be in [0, 1) (a fraction of the Nyquist "
          "frequency)")
    check(1 <= options.mode_seeking_pool <= resolution, f"{name}.mode_seeking_pool",
          f"must be between 1 and data.resolution ({resolution})")
    if isinstance(options, ConditionalOptions):
        check(options.auxiliary >= 0, f"{name}.auxiliary", "must be >= 0")


# The default's settings against grain (issue 25), measured on 2D MNI slices at the demo's budget (5 seeds; docs:
# "Grain, fourth screen"): the bilinear resize-convolution into the image, mode seeking on 16 x 16 average-pooled
# images, and the spectral term at 0.5. Each one's value before issue 25 is what ``_fit_medgan`` takes back.
GRAIN = {"upsample": ("bilinear-output", "transposed"), "mode_seeking_pool": (4, 1), "spectral": (0.5, 0.0)}


def _medgan() -> RunConfig:
    """Data-efficient default: DCGAN-topology G (ngf 32; transposed convolutions, a bilinear resize-convolution into
    the image) with a spectrally normalized D (ndf 24, no BatchNorm), hinge loss, Adam (0, 0.99) with TTUR 2e-4 /
    4e-4, MSGAN's mode-seeking term at 0.09 on 4x-pooled images, the spectral term at 0.5, greyscale DiffAugment,
    classic left-right flips except of CT (no rotation or zoom), ramped generator EMA, batch 32, FID-picked best
    checkpoint."""
    # Adam (0, 0.99) with D at twice G's rate (TTUR): at an equal CPU budget on the MNI slices this beat the
    # earlier (0.5, 0.999) at 2e-4 / 2e-4 on FID and on diversity across seeds (docs: "Default recipe").
    # Classic rotation and zoom reach only the real images, so G learns to draw rotated and zoomed anatomy
    # (a leaking augmentation, in ADA's terms); DiffAugment, which reaches real and fake alike, stays. D at
    # width 24 against G's 32 costs 15% less CPU per step. At 4 CPU-minutes on MNI (6 seeds) the two together
    # took FID from 20.5 to 18.8 and KID from 143 to 91 at the same diversity (docs: "Default recipe").
    # Against grain: transposed convolutions paint a checkerboard at the image's Nyquist frequency; full-resolution
    # mode seeking rewards speckle (it differs from sample to sample); and the spectral term asks for the real
    # batch's power at each scale. Together, at the demo's budget, every band of the power spectrum within +-15% of
    # the real slices' over 5 seeds, where the default before carried 1.79x the real power in the top band.
    return RunConfig(task=TASK_NAMES[0], data=DataConfig(rotate_degrees=0.0, scale=0.0),
                     model=ModelConfig(discriminator_channels=24, upsample=GRAIN["upsample"][0]),
                     optim=OptimConfig(betas=(0.0, 0.99), lr_generator=2e-4, lr_discriminator=4e-4),
                     options={name: GRAIN[name][0] for name in ("mode_seeking_pool", "spectral")})


def _fit_medgan(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """The default fitted to the user's values: its settings against grain were measured on 2D slices with its
    dcgan generator and without DP, so a 3D run (``data.dims: 3``; the spectral term is a 2D term), another
    architecture (``model.name``; ``model.upsample`` is the dcgan generator's) or a DP run (``privacy.epsilon`` or
    ``privacy.noise``) gets all three back as before issue 25, the settings every 3D, resnet and DP figure was
    measured with. Values the user gives still apply on top."""
    def given(section: str, key: str, default: Any) -> Any:
        chosen = values.get(section)
        return chosen.get(key, default) if isinstance(chosen, Mapping) else default

    def number(value: Any) -> float:  # as from_dict will read it ("3" is 3); a bad value is its error to report
        try:
            return float(value)
        except (TypeError, ValueError):
            return 0.0

    private = number(given("privacy", "epsilon", 0.0)) > 0 or number(given("privacy", "noise", 0.0)) > 0
    volumes = number(given("data", "dims", config.data.dims)) == 3
    if volumes or private or given("model", "name", config.model.name) != "dcgan":
        before = {key: GRAIN[key][1] for key in ("mode_seeking_pool", "spectral")}
        config = replace(config, model=replace(config.model, upsample=GRAIN["upsample"][1]),
                         options={**config.options, **before})
    return config


def _dcgan() -> RunConfig:
    """The classic recipe: DCGAN nets with ngf = ndf = 64, BCE, Adam 2e-4 / beta1 0.5, batch 64, no
    augmentation, no EMA."""
    return RunConfig(
        task=TASK_NAMES[0],
        model=ModelConfig(name="dcgan", latent_dim=100, generator_channels=64, discriminator_channels=64,
                          spectral_norm=False, minibatch_std=False),
        loss=LossConfig(adversarial="nonsaturating"),
        augment=AugmentConfig(policy=()),
        optim=OptimConfig(betas=(0.5, 0.999)),
        train=TrainConfig(ema=0.0, batch_size=64, eval_every=0),
        data=DataConfig(flip=False, rotate_degrees=0.0, scale=0.0),
        options={"mode_seeking": 0.0},
    )


def _standard() -> RunConfig:
    """The textbook data-efficient recipe the default is compared against: SN D, hinge, DiffAugment
    translation/cutout/brightness/contrast, G EMA 0.995, Adam (0, 0.99), TTUR 2e-4 / 4e-4, ngf = ndf = 48, no
    minibatch-std, no classic augmentation."""
    # Built from medgan's own pieces, for benchmarks/bench_quality.py: what a careful 2020s DCGAN script does.
    return RunConfig(
        task=TASK_NAMES[0],
        model=ModelConfig(name="dcgan", generator_channels=48, discriminator_channels=48, spectral_norm=True,
                          minibatch_std=False),
        loss=LossConfig(adversarial="hinge"),
        augment=AugmentConfig(policy=("translation", "cutout", "brightness", "contrast")),
        optim=OptimConfig(lr_generator=2e-4, lr_discriminator=4e-4, betas=(0.0, 0.99)),
        train=TrainConfig(ema=0.995, ema_start=0),
        data=DataConfig(flip=False, rotate_degrees=0.0, scale=0.0),
        options={"mode_seeking": 0.0},
    )


for _name, _build, _adapt in (("medgan", _medgan, _fit_medgan), ("dcgan", _dcgan, None), ("standard", _standard, None)):
    RECIPES.register(_name)(Recipe(TASK_NAMES, _build, " ".join((_build.__doc__ or "").split()), _adapt))

DEMOS.register("brain")(Demo("unconditional", "mni152", "axial T1 brain MRI slices (MNI152 template)", {}, 8.0))
# 3D: the synthetic cohort (medgan.data.cohort) as 32^3 cubes. A 3D step costs about 0.6 s at batch 32 and the
# default widths on 2 CPU cores, so the demo trains batch 16 with G and D at width 16: about 3x cheaper steps at
# about the same quality per step (in-training three-plane proxy FID at step 500: 24.6 against 30.9 at width 32/24;
# 1,445 steps in 8 minutes against 542, on a less loaded CPU; docs: "Synthesize volumes (3D)"). An in-training
# score every 100 steps (4-8 s each), so best.pt is picked among many points.
DEMOS.register("volume")(Demo("unconditional", "mni152-cohort", "3D brain MRI volumes, 32^3 (synthetic cohort from "
                              "the MNI152 template)", {"data": {"dims": 3, "resolution": 32},
                                                      "model": {"generator_channels": 16, "discriminator_channels": 16},
                                                      "train": {"batch_size": 16, "eval_every": 100}}, 8.0))
# Lesion classes differ by tens of HU around a 105 HU enhanced liver: the portal liver window (L90 W200) spreads
# them over twice the grey levels of the abdomen window; the AC-GAN head makes G answer for them; and D's
# augmentation leaves intensities alone (CT numbers are calibrated: a cyst is water density), so only translation
# and cutout. Measured in 4-minute runs (judge trained on real ROIs, chance 0.33): 0.32 with 24 ROIs per class in
# the abdomen window, 0.60 with 60 per class in the portal window, 0.58-0.88 adding the AC head, 0.89 adding the
# AC head without brightness/contrast augmentation. The ROIs keep the classic flips, rotation/zoom, D width 32,
# mode-seeking weight 0.075 and transposed convolutions without the grain settings, as every liver figure was
# measured (the default changed them after the MNI benchmarks, and dropped flips of CT; on lesion ROIs, small
# crops inside the liver, a mirror shows no impossible anatomy, and the changes are not measured enough).
DEMOS.register("liver")(Demo(
    "conditional", "ct-lesions", "liver lesion CT ROIs per class (simulated phantom)",
    {"data": {"window": "liver-portal", "flip": True, "rotate_degrees": 5.0, "scale": 0.05},
     "conditional": {"mode_seeking": 0.075, "mode_seeking_pool": 1, "spectral": 0.0},
     "model": {"auxiliary_classifier": True, "discriminator_channels": 32, "upsample": "transposed"},
     "augment": {"policy": ["translation", "cutout"]}}, 8.0))
