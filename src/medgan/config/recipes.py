"""Named recipes: the starting ``RunConfig`` of each training family."""

from __future__ import annotations

from medgan.config.sections import (AugmentConfig, DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig,
                                    TrainConfig)
from medgan.errors import ConfigError

RECIPES = ("medgan", "dcgan", "standard", "pix2pix", "cyclegan")


def recipe(name: str) -> RunConfig:
    """The starting configuration of a named recipe.

    Args:
        name: ``"medgan"`` (data-efficient default: DCGAN-topology G (ngf 32) with a spectrally normalized D
            (ndf 24, no BatchNorm), hinge loss, Adam (0, 0.99) with TTUR 2e-4 / 4e-4, MSGAN's mode-seeking
            term at 0.09, greyscale DiffAugment, classic left-right flips except of CT (no rotation or zoom), ramped
            generator EMA, batch 32, FID-picked best checkpoint) or
            ``"dcgan"`` (the classic recipe: DCGAN nets with ngf = ndf = 64, BCE, Adam 2e-4 / beta1 0.5, batch
            64, no augmentation, no EMA) or ``"standard"``
            (the textbook data-efficient recipe that issue 13 compares against: SN D, hinge, DiffAugment
            translation/cutout/brightness/contrast, G EMA 0.995, Adam (0, 0.99), TTUR 2e-4 / 4e-4,
            ngf = ndf = 48, no minibatch-std, no classic augmentation) or ``"pix2pix"``
            (paired image-to-image translation: U-Net G, PatchGAN D, L1 weight 100) or ``"cyclegan"`` (unpaired
            translation: two U-Net Gs, two PatchGAN Ds, LSGAN, cycle 10, identity 0.5, a pool of 50 fakes).
    """
    if name == "medgan":
        # Adam (0, 0.99) with D at twice G's rate (TTUR): at an equal CPU budget on the MNI slices this beat the
        # earlier (0.5, 0.999) at 2e-4 / 2e-4 on FID and on diversity across seeds (README: "Default recipe").
        # The mode-seeking weight (LossConfig.mode_seeking, 0.09): at 4 CPU-minutes on MNI (10 seeds) 0.075 left
        # the samples' pairwise MS-SSIM 10.6% above real slices'; 0.09 gave 8.7% at the same FID (20.8 against
        # 20.7), and 0.1 cost FID in a screen (README: "Default recipe").
        # Classic rotation and zoom reach only the real images, so G learns to draw rotated and zoomed anatomy
        # (a leaking augmentation, in ADA's terms); DiffAugment, which reaches real and fake alike, stays. D at
        # width 24 against G's 32 costs 15% less CPU per step. At 4 CPU-minutes on MNI (6 seeds) the two together
        # took FID from 20.5 to 18.8 and KID from 143 to 91 at the same diversity (README: "Default recipe").
        return RunConfig(data=DataConfig(rotate_degrees=0.0, scale=0.0), model=ModelConfig(discriminator_channels=24),
                         optim=OptimConfig(betas=(0.0, 0.99), lr_generator=2e-4, lr_discriminator=4e-4))
    if name == "dcgan":
        return RunConfig(
            model=ModelConfig(name="dcgan", latent_dim=100, generator_channels=64, discriminator_channels=64,
                              spectral_norm=False, minibatch_std=False),
            loss=LossConfig(adversarial="nonsaturating", mode_seeking=0.0),
            augment=AugmentConfig(policy=()),
            optim=OptimConfig(betas=(0.5, 0.999)),
            train=TrainConfig(ema=0.0, batch_size=64, eval_every=0),
            data=DataConfig(flip=False, rotate_degrees=0.0, scale=0.0),
        )
    if name == "standard":
        # Built from medgan's own pieces, for benchmarks/bench_quality.py: what a careful 2020s DCGAN script does.
        return RunConfig(
            model=ModelConfig(name="dcgan", generator_channels=48, discriminator_channels=48, spectral_norm=True,
                              minibatch_std=False),
            loss=LossConfig(adversarial="hinge", mode_seeking=0.0),
            augment=AugmentConfig(policy=("translation", "cutout", "brightness", "contrast")),
            optim=OptimConfig(lr_generator=2e-4, lr_discriminator=4e-4, betas=(0.0, 0.99)),
            train=TrainConfig(ema=0.995, ema_start=0),
            data=DataConfig(flip=False, rotate_degrees=0.0, scale=0.0),
        )
    if name == "pix2pix":
        # Isola et al. 2017: U-Net G, 70 x 70 PatchGAN D (here 64 wide at the first layer), the classic
        # non-saturating loss, L1 weight 100, Adam 2e-4 / beta1 0.5, no D augmentation; plus a generator EMA.
        return RunConfig(
            task="paired",
            model=ModelConfig(name="unet", generator_channels=32, discriminator_channels=64, spectral_norm=False,
                              minibatch_std=False),
            loss=LossConfig(adversarial="nonsaturating", adversarial_weight=1.0, pixel=100.0, mode_seeking=0.0),
            augment=AugmentConfig(policy=()),
            optim=OptimConfig(betas=(0.5, 0.999)),
            train=TrainConfig(batch_size=16, ema=0.999),
            data=DataConfig(flip=True, rotate_degrees=0.0, scale=0.0),
        )
    if name == "cyclegan":
        # Zhu et al. 2017: two generators and two 70 x 70 PatchGAN discriminators, least-squares loss, cycle L1
        # weight 10, identity 0.5 x 10, a pool of 50 past fakes per D, Adam 2e-4 / beta1 0.5 with a linear decay.
        # G here is medgan's U-Net translator (CycleGAN's ResNet G is one of its two options; U-Net the other).
        return RunConfig(
            task="unpaired",
            model=ModelConfig(name="unet", generator_channels=32, discriminator_channels=64, spectral_norm=False,
                              minibatch_std=False),
            loss=LossConfig(adversarial="lsgan", adversarial_weight=1.0, cycle=10.0, identity=0.5, mode_seeking=0.0),
            augment=AugmentConfig(policy=()),
            optim=OptimConfig(betas=(0.5, 0.999), schedule="linear"),
            train=TrainConfig(batch_size=8, ema=0.999, pool_size=50),
            data=DataConfig(flip=True, rotate_degrees=0.0, scale=0.0),
        )
    raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
