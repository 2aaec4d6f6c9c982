"""The unpaired task's declarations (torch-free: ``medgan --help`` reads them): its ``medgan train`` options and
architectures, its own config section, its recipe (cyclegan) and its demos."""

from __future__ import annotations

from dataclasses import dataclass

from medgan.config import (MAX_BATCH_SIZE, AugmentConfig, DataConfig, LossConfig, ModelConfig, OptimConfig,
                           RunConfig, TrainConfig, check)
from medgan.training.tasks.declarations import DEMOS, RECIPES, Demo, Recipe, TaskOption, declare_task
from medgan.training.tasks.translation_options import (DOMAIN_A, TRANSLATOR_ARCHITECTURES, TranslationOptions,
                                                       check_translation_options)

NAME = "unpaired"


@dataclass(frozen=True)
class UnpairedOptions(TranslationOptions):
    """The section ``unpaired:`` of a run's config."""

    cycle: float = 10.0  # weight of each cycle-consistency L1 term (CycleGAN: 10)
    identity: float = 0.5  # identity L1 weight as a fraction of ``cycle`` (CycleGAN: 0.5; 0 = off)
    pool_size: int = 50  # past fakes each D also sees (CycleGAN's image pool; 0 = off)


def check_unpaired_options(options: UnpairedOptions, config: RunConfig) -> None:
    """Range checks of the section ``unpaired:``."""
    check_translation_options(options, NAME)
    check(options.cycle >= 0, f"{NAME}.cycle", "must be >= 0")
    check(options.identity >= 0, f"{NAME}.identity", "must be >= 0")
    check(0 <= options.pool_size <= MAX_BATCH_SIZE, f"{NAME}.pool_size", f"must be between 0 and {MAX_BATCH_SIZE}")


CLI_OPTIONS = (
    DOMAIN_A,
    TaskOption("--domain-b", "data.source", "domain B (the same as --data)", metavar="PATH"),
)
declare_task(NAME, CLI_OPTIONS, TRANSLATOR_ARCHITECTURES)


def _cyclegan() -> RunConfig:
    """Unpaired translation: two U-Net Gs, two PatchGAN Ds, LSGAN, cycle 10, identity 0.5, a pool of 50 fakes."""
    # Zhu et al. 2017: two generators and two 70 x 70 PatchGAN discriminators, least-squares loss, cycle L1
    # weight 10, identity 0.5 x 10, a pool of 50 past fakes per D, Adam 2e-4 / beta1 0.5 with a linear decay.
    # G here is medgan's U-Net translator (CycleGAN's ResNet G is one of its two options; U-Net the other).
    return RunConfig(
        task=NAME,
        model=ModelConfig(name="unet", generator_channels=32, discriminator_channels=64, spectral_norm=False,
                          minibatch_std=False),
        loss=LossConfig(adversarial="lsgan"),
        augment=AugmentConfig(policy=()),
        optim=OptimConfig(betas=(0.5, 0.999), schedule="linear"),
        train=TrainConfig(batch_size=8, ema=0.999),
        data=DataConfig(flip=True, rotate_degrees=0.0, scale=0.0),
        options={"adversarial_weight": 1.0, "cycle": 10.0, "identity": 0.5, "pool_size": 50},
    )


RECIPES.register("cyclegan")(Recipe((NAME,), _cyclegan, " ".join((_cyclegan.__doc__ or "").split())))
# Unpaired MR -> CT: T1 + T2 (stacked, with availability channels) and CT of disjoint halves of the training
# patients (data.disjoint), so no pair is ever seen; the wide window keeps air (-1000 HU) and cortical bone
# (900 HU). Identity loss is off: it needs one modality on each side. Evaluated on held-out patients' true pairs.
# No identity start (MR intensities are no CT estimate: fat is bright on T1, dark on CT), batch 4 and a constant
# learning rate: held-out body MAE 101-106 HU with the start off vs 217 HU with it on, at 400-1,500 steps.
DEMOS.register("mr2ct")(Demo(
    NAME, "phantom-ct", "T1 + T2 MR -> CT without pairs, 64 x 64 (simulated phantom)",
    {"data": {"domain_a": ["phantom-t1", "phantom-t2"], "window": "body-wide", "resolution": 64},
     "model": {"residual": False}, NAME: {"identity": 0.0}, "optim": {"schedule": "constant"},
     "train": {"batch_size": 4}}, 7.5))
# Unpaired contrast phases: unenhanced -> portal-venous CT (virtual contrast enhancement), disjoint patients.
DEMOS.register("phases")(Demo(NAME, "phantom-ct", "unenhanced -> portal-venous CT without pairs, 64 x 64 "
                              "(simulated phantom)",
                              {"data": {"domain_a": ["phantom-ct-unenhanced"], "resolution": 64}}, 6.0))
