"""Range checks of every shared config key (registered names are checked where their registries live)."""

from __future__ import annotations

from medgan.config.sections import (MAX_BATCH_SIZE, MAX_CHANNELS, MAX_EPSILON, MAX_LATENT_DIM, MAX_ROI_SIZE,
                                    MAX_THREADS, RESOLUTIONS, UPSAMPLING, RunConfig)
from medgan.errors import ConfigError


def check(condition: bool, key: str, problem: str) -> None:
    """Raises ConfigError ``config key 'KEY' PROBLEM`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"config key {key!r} {problem}")


def validate(config: RunConfig) -> None:
    """Raises ConfigError naming the first key whose value is out of range or not one of the allowed names."""
    data, model, loss, optim, train = config.data, config.model, config.loss, config.optim, config.train
    check(data.resolution in RESOLUTIONS, "data.resolution", f"must be one of {RESOLUTIONS}, got {data.resolution}")
    check(data.axis in (0, 1, 2), "data.axis", f"must be 0, 1 or 2, got {data.axis}")
    check(data.dims in (2, 3), "data.dims", f"must be 2 or 3, got {data.dims}")
    check(0 <= data.context <= 8, "data.context", f"must be between 0 and 8, got {data.context}")
    check(0.0 <= data.min_foreground < 1.0, "data.min_foreground", "must be in [0, 1)")
    check(data.modality in ("auto", "mri", "ct"), "data.modality", "must be auto, mri or ct")
    check(data.normalize in ("percentile", "zscore"), "data.normalize", "must be percentile or zscore")
    low, high = data.percentiles
    check(0.0 <= low < high <= 100.0, "data.percentiles", "must satisfy 0 <= low < high <= 100")
    check(data.fit in ("resize", "crop", "pad"), "data.fit", "must be resize, crop or pad")
    check(data.nan_policy in ("error", "clean"), "data.nan_policy", "must be error or clean")
    check(data.window_width is None or data.window_width > 0, "data.window_width", "must be positive")
    check(data.extract in ("slices", "liver-slices", "liver-crops", "lesion-rois"), "data.extract",
           "must be slices, liver-slices, liver-crops or lesion-rois")
    check(8 <= data.roi_size <= MAX_ROI_SIZE, "data.roi_size", f"must be between 8 and {MAX_ROI_SIZE}")
    check(sum(v is not None for v in (data.input, data.pairs, data.degrade)) <= 1, "data.input",
           "data.input, data.pairs and data.degrade are alternatives: give one")
    check(1 <= model.depth <= 6, "model.depth", "must be between 1 and 6")
    check(data.split in ("train", "val", "test", "all"), "data.split", "must be train, val, test or all")
    check(0.0 <= data.rotate_degrees <= 180.0, "data.rotate_degrees", "must be in [0, 180]")
    check(0.0 <= data.scale < 1.0, "data.scale", "must be in [0, 1)")
    check(0.0 <= data.balance <= 1.0, "data.balance", "must be in [0, 1]")
    check(not model.conditional_norm or model.name == "dcgan", "model.conditional_norm",
           "is implemented for the dcgan generator only")
    check(model.upsample in UPSAMPLING, "model.upsample",
          "must be " + ", ".join(UPSAMPLING[:-1]) + " or " + UPSAMPLING[-1])
    check(model.upsample == "transposed" or model.name == "dcgan", "model.upsample",
           "is a choice of the dcgan generator only")
    check(0 < model.latent_dim <= MAX_LATENT_DIM, "model.latent_dim", f"must be between 1 and {MAX_LATENT_DIM}")
    for key in ("generator_channels", "discriminator_channels"):
        check(4 <= getattr(model, key) <= MAX_CHANNELS, f"model.{key}", f"must be between 4 and {MAX_CHANNELS}")
    check(loss.r1_gamma >= 0, "loss.r1_gamma", "must be >= 0")
    check(loss.r1_interval >= 1, "loss.r1_interval", "must be >= 1")
    check(loss.gradient_penalty >= 0, "loss.gradient_penalty", "must be >= 0")
    check(loss.instance_noise >= 0, "loss.instance_noise", "must be >= 0")
    check(0.0 <= config.augment.probability <= 1.0, "augment.probability", "must be in [0, 1]")
    check(0.0 < config.augment.ada_target < 1.0, "augment.ada_target", "must be in (0, 1)")
    check(optim.lr_generator > 0, "optim.lr_generator", "must be positive")
    check(optim.lr_discriminator > 0, "optim.lr_discriminator", "must be positive")
    check(all(0.0 <= b < 1.0 for b in optim.betas), "optim.betas", "must be in [0, 1)")
    check(optim.schedule in ("constant", "linear", "cosine"), "optim.schedule", "must be constant, linear or cosine")
    check(optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
    check(optim.d_steps >= 1, "optim.d_steps", "must be >= 1")
    check(optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
    check(train.steps >= 0, "train.steps", "must be >= 0")
    check(train.minutes >= 0, "train.minutes", "must be >= 0")
    check(train.cpu_minutes >= 0, "train.cpu_minutes", "must be >= 0")
    check(train.steps > 0 or train.minutes > 0 or train.cpu_minutes > 0, "train.steps",
           "must be positive unless train.minutes or train.cpu_minutes is set")
    check(1 <= train.batch_size <= MAX_BATCH_SIZE, "train.batch_size", f"must be between 1 and {MAX_BATCH_SIZE}")
    check(0.0 <= train.ema < 1.0, "train.ema", "must be in [0, 1)")
    check(train.precision in ("auto", "bf16", "fp32"), "train.precision", "must be auto, bf16 or fp32")
    check(train.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda")
    for key in ("log_every", "sample_every", "checkpoint_every"):
        check(getattr(train, key) >= 1, f"train.{key}", "must be >= 1")
    check(train.eval_every >= 0, "train.eval_every", "must be >= 0")
    check(0 <= train.threads <= MAX_THREADS, "train.threads", f"must be between 0 and {MAX_THREADS}")
    # torch.compile (aot_autograd) raises on the double backward that R1 and WGAN-GP differentiate through D.
    check(not (train.compile and (loss.r1_gamma > 0 or loss.gradient_penalty > 0)), "train.compile",
           "cannot be combined with loss.r1_gamma or loss.gradient_penalty (torch.compile does not support the "
           "double backward they need)")
    check(not (data.domain_a and (data.input or data.pairs or data.degrade)), "data.domain_a",
           "and data.input, data.pairs or data.degrade are alternatives: give one")
    privacy = config.privacy
    check(privacy.epsilon >= 0, "privacy.epsilon", "must be > 0 (0 = off)")
    check(privacy.epsilon <= MAX_EPSILON, "privacy.epsilon", f"must be at most {MAX_EPSILON:g}, got "
          f"{privacy.epsilon:g} (a larger target promises no privacy: leave privacy off instead)")
    check(privacy.noise >= 0, "privacy.noise", "must be > 0 (0 = off)")
    check(not (privacy.epsilon > 0 and privacy.noise > 0), "privacy.epsilon",
           "and privacy.noise are alternatives: give one")
    check(0.0 <= privacy.delta < 1.0, "privacy.delta", "must be in (0, 1) (0 = automatic)")
    check(privacy.max_grad_norm > 0, "privacy.max_grad_norm", "must be positive")
    check(privacy.unit in ("subject", "slice"), "privacy.unit", "must be subject or slice")
    # Name checks against the registries happen where the registries live (networks, losses, augment, tasks),
    # so this module stays import-light; the task checks its own section and what it allows (DP, domains) in
    # its check_config (medgan.training.tasks).
