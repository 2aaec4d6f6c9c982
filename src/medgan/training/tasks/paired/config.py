"""The paired task's declarations (torch-free: ``medgan --help`` reads them): its ``medgan train`` options and
architectures, its own config section, its recipe (pix2pix) and its demos."""

from __future__ import annotations

from dataclasses import dataclass, replace

from medgan.config import AugmentConfig, DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, check
from medgan.training.tasks.declarations import DEMOS, RECIPES, Demo, Recipe, TaskOption, declare_task
from medgan.training.tasks.translation_options import (DOMAIN_A, SLAB_ARCHITECTURES, TRANSLATOR_ARCHITECTURES,
                                                       TranslationOptions, check_translation_options)

NAME = "paired"


@dataclass(frozen=True)
class PairedOptions(TranslationOptions):
    """The section ``paired:`` of a run's config."""

    pixel: float = 100.0  # weight of the L1 pixel loss (pix2pix: 100)
    patch: int = 0  # train on random square patches of this side (0 = whole tiles); inference takes whole slices


def check_paired_options(options: PairedOptions, config: RunConfig) -> None:
    """Range checks of the section ``paired:``."""
    check_translation_options(options, NAME)
    check(options.pixel >= 0, f"{NAME}.pixel", "must be >= 0")
    check(options.patch == 0 or 32 <= options.patch <= config.data.resolution, f"{NAME}.patch",
          "must be 0 (whole tiles) or between 32 and data.resolution")


CLI_OPTIONS = (
    TaskOption("--input", "data.input", "input images matched to --data (the targets) by file name",
               selects=True),
    TaskOption("--pairs", "data.pairs", "CSV with input,target[,mask] columns", selects=True),
    TaskOption("--degrade", "data.degrade", "derive inputs from the targets: lowdose:FRACTION, "
               "downsample:FACTOR, inpaint or mask", selects=True),
    TaskOption("--patch", "patch", "train on random square patches of this side (default: whole "
               "tiles)", type=int, metavar="PX"),
    replace(DOMAIN_A, selects=False),
)
declare_task(NAME, CLI_OPTIONS, TRANSLATOR_ARCHITECTURES + SLAB_ARCHITECTURES)


def _pix2pix() -> RunConfig:
    """Paired image-to-image translation: U-Net G, PatchGAN D, L1 weight 100."""
    # Isola et al. 2017: U-Net G, 70 x 70 PatchGAN D (here 64 wide at the first layer), the classic
    # non-saturating loss, L1 weight 100, Adam 2e-4 / beta1 0.5, no D augmentation; plus a generator EMA.
    return RunConfig(
        task=NAME,
        model=ModelConfig(name="unet", generator_channels=32, discriminator_channels=64, spectral_norm=False,
                          minibatch_std=False),
        loss=LossConfig(adversarial="nonsaturating"),
        augment=AugmentConfig(policy=()),
        optim=OptimConfig(betas=(0.5, 0.999)),
        train=TrainConfig(batch_size=16, ema=0.999),
        data=DataConfig(flip=True, rotate_degrees=0.0, scale=0.0),
        options={"adversarial_weight": 1.0, "pixel": 100.0},
    )


RECIPES.register("pix2pix")(Recipe((NAME,), _pix2pix, " ".join((_pix2pix.__doc__ or "").split())))
# The phantom renders every training slice at quarter and routine dose (true pairs: the same anatomy,
# independent noise); G trains on 96 px patches and denoises whole 256 x 256 slices of held-out patients.
DEMOS.register("denoise")(Demo(NAME, "ct-phantom", "quarter-dose -> routine-dose CT, 256 x 256 (simulated phantom)",
                               {"data": {"degrade": "lowdose:0.25", "resolution": 256}, NAME: {"patch": 96}}, 6.5))
# x4: anti-aliased downsampling and bicubic upsampling make the input; a slab of axial positions is held out.
DEMOS.register("superres")(Demo(NAME, "mni152", "x4 super-resolution of T1 MRI slices, 128 x 128 (MNI152 template)",
                                {"data": {"degrade": "downsample:4", "resolution": 128}, NAME: {"patch": 64}}, 7.0))
# Whole phantom volumes (ct-phantom-volumes): quarter-dose -> routine-dose with one neighbour on each side as input
# channels (2.5D), the setting benchmarks/volume_denoise.py found better than 2D through the plane. Its settings:
# whole native 128 px slices (no foreground crop, so training tiles and translated slices share one scale) and
# 64 px patches.
DEMOS.register("denoise-volume")(Demo(
    NAME, "ct-phantom-volumes", "quarter-dose -> routine-dose CT volumes, 2.5D, 128 x 128 (simulated phantom)",
    {"data": {"degrade": "lowdose:0.25", "resolution": 128, "context": 1, "crop_foreground": False},
     NAME: {"patch": 64}}, 8.0))
