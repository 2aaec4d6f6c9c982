"""Typed, frozen run configuration <-> YAML.

A run is described by one ``RunConfig`` made of small section dataclasses. Values come, in order, from a
named recipe (``medgan`` default or classic ``dcgan``), a YAML file, and ``section.key=value`` overrides.
Unknown keys and bad values raise ``ConfigError`` naming the offending key.

Over 400 lines on purpose: every section's fields, the recipes built from them, and the range checks of each key
live together, so that a key's meaning, default and valid range are read in one place.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from medgan.errors import ConfigError

RESOLUTIONS = (32, 64, 128, 256)
# Upper bounds that keep a typo (latent_dim: 100000000000) from reaching the allocator, each well above what a
# GAN here needs (StyleGAN: latent 512; BigGAN: batch 2048; DCGAN: width 64, whose deepest layer has 8x as many
# channels: 512 gives 4096-channel layers of ~1 GB each).
MAX_LATENT_DIM = 4096
MAX_CHANNELS = 512
MAX_BATCH_SIZE = 4096
MAX_ROI_SIZE = 1024
MAX_THREADS = 1024


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they become [-1, 1] tensors."""

    source: str = "mni152"  # a file, a folder, or an embedded source name ("mni152", "ct-phantom")
    resolution: int = 64  # square side of training images; one of 32, 64, 128, 256
    axis: int = 2  # volume axis to slice along (2 = axial for RAS-oriented NIfTI)
    min_foreground: float = 0.15  # skip slices whose foreground fraction is below this
    modality: str = "auto"  # "auto" (DICOM tag / file hints), "mri" or "ct"
    normalize: str = "percentile"  # MRI: "percentile" clip-and-scale or "zscore"
    percentiles: tuple[float, float] = (0.5, 99.5)  # MRI percentile clip range
    window: str = "abdomen"  # CT window preset name, used unless level/width are given
    window_level: float | None = None  # CT window centre in HU (overrides the preset)
    window_width: float | None = None  # CT window width in HU (overrides the preset)
    fit: str = "resize"  # how a slice becomes square: "resize" (pad to square, then resample), "crop", "pad"
    crop_foreground: bool = True  # crop each volume's slices to their common foreground box before fitting
    nan_policy: str = "error"  # "error" reports NaN/Inf voxels; "clean" replaces them with the finite minimum
    flip: bool = True  # classic augmentation: random left-right flip
    rotate_degrees: float = 5.0  # classic augmentation: random rotation range (+/- degrees)
    scale: float = 0.05  # classic augmentation: random zoom range (+/- fraction)
    labels: str | None = None  # CSV of file,label[,attributes...] (conditional tasks)
    extract: str = "slices"  # CT layouts (LiTS/MSD): "slices", "liver-slices", "liver-crops" or "lesion-rois"
    roi_size: int = 64  # side in pixels of "lesion-rois" regions (native pixels) and of "ct-lesions" ROIs
    split: str = "train"  # MedMNIST .npz split: "train", "val", "test" or "all"
    input: str | None = None  # paired tasks: input images matched to ``source`` (the targets) by file name
    pairs: str | None = None  # paired tasks: CSV with input,target[,mask] columns (paths relative to the CSV)
    degrade: str | None = None  # paired tasks: derive the input from each target: lowdose:F, downsample:F, inpaint, mask
    patch: int = 0  # paired tasks: train on random square patches of this side (0 = whole tiles)


@dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator architecture."""

    name: str = "dcgan"  # registered architecture: "dcgan" (DCGAN topology) or "resnet" (SN residual)
    latent_dim: int = 128  # size of the noise vector z
    generator_channels: int = 32  # width multiplier of G (ngf)
    discriminator_channels: int = 32  # width multiplier of D (ndf)
    spectral_norm: bool = True  # spectral normalization on D's layers
    minibatch_std: bool = True  # minibatch standard-deviation feature in D (StyleGAN's guard against collapse)
    auxiliary_classifier: bool = False  # conditional: D also predicts the class (AC-GAN head; see loss.auxiliary)
    depth: int = 4  # image-to-image U-Net: stride-2 levels (inputs are padded to a multiple of 2**depth)
    residual: bool = True  # image-to-image U-Net: predict a correction of the first input channel


@dataclass(frozen=True)
class LossConfig:
    """Adversarial objective and regularizers."""

    adversarial: str = "hinge"  # "nonsaturating" (classic BCE), "hinge", "lsgan", "wasserstein"
    r1_gamma: float = 0.0  # weight of the R1 penalty on real images (0 = off)
    r1_interval: int = 16  # apply R1 every this many D steps (lazy regularization)
    gradient_penalty: float = 0.0  # WGAN-GP weight (0 = off); use with "wasserstein"
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs, annealed linearly to 0
    mode_seeking: float = 0.1  # conditional tasks: weight of MSGAN's mode-seeking term (0 = off)
    auxiliary: float = 1.0  # weight of the AC-GAN class cross-entropy when model.auxiliary_classifier is on
    adversarial_weight: float = 1.0  # image-to-image tasks: weight of the adversarial term (0 = pure pixel loss)
    pixel: float = 100.0  # image-to-image tasks: weight of the L1 pixel loss (pix2pix: 100)


@dataclass(frozen=True)
class AugmentConfig:
    """Differentiable augmentation applied to every image D sees (real and fake)."""

    policy: tuple[str, ...] = ("translation", "cutout", "brightness", "contrast")  # greyscale-safe ops
    probability: float = 1.0  # chance that each image gets each op (ADA-style, per image)
    adaptive: bool = False  # ADA: tune the probability from sign(D(real)) towards ada_target (starts at 0)
    ada_target: float = 0.6  # ADA's target for E[sign(D(real))]


@dataclass(frozen=True)
class OptimConfig:
    """Adam optimizers, schedule and step ratios."""

    lr_generator: float = 2e-4  # Adam learning rate of G
    lr_discriminator: float = 2e-4  # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas, shared by G and D
    schedule: str = "constant"  # "constant", "linear" (decay to 0) or "cosine"
    warmup_steps: int = 0  # linear LR warm-up steps
    d_steps: int = 1  # discriminator steps per generator step
    grad_clip: float = 0.0  # max gradient norm for G and D (0 = off)


@dataclass(frozen=True)
class TrainConfig:
    """Budget, precision, logging and snapshots."""

    steps: int = 2000  # training steps (0 = no step limit: train.minutes must be set); whichever ends first
    minutes: float = 0.0  # wall-clock budget in minutes (0 = none); schedules follow the steps it allows
    batch_size: int = 32  # images per step
    seed: int = 0  # seed for every RNG
    ema: float = 0.999  # generator EMA decay (0 = off)
    ema_start: int = 100  # steps before EMA starts tracking (it copies G until then)
    precision: str = "auto"  # "auto" (bf16 where the CPU/GPU supports it), "bf16" or "fp32"
    channels_last: bool = True  # NHWC memory format for conv layers
    device: str = "auto"  # "auto", "cpu" or "cuda"
    log_every: int = 25  # steps between metrics/log lines
    sample_every: int = 250  # steps between sample grids
    checkpoint_every: int = 250  # steps between checkpoints
    eval_every: int = 250  # steps between evaluations into metrics.jsonl; best.pt is picked by FID (0 = off)
    threads: int = 0  # torch CPU threads (0 = torch default)


@dataclass(frozen=True)
class RunConfig:
    """The whole, resolved configuration of a run; saved as ``config.yaml`` in the run directory."""

    task: str = "unconditional"  # registered task: "unconditional" or "conditional"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


RECIPES = ("medgan", "dcgan", "pix2pix")


def recipe(name: str) -> RunConfig:
    """The starting configuration of a named recipe.

    Args:
        name: ``"medgan"`` (data-efficient default: DCGAN-topology G (ngf 32) with a spectrally normalized D
            (ndf 32, no BatchNorm), hinge loss, greyscale DiffAugment, classic flips/rotations/zoom, ramped
            generator EMA, batch 32, FID-picked best checkpoint) or ``"dcgan"`` (the classic recipe: DCGAN nets
            with ngf = ndf = 64, BCE, Adam 2e-4 / beta1 0.5, batch 64, no augmentation, no EMA) or ``"pix2pix"``
            (paired image-to-image translation: U-Net G, PatchGAN D, L1 weight 100).
    """
    if name == "medgan":
        return RunConfig()
    if name == "dcgan":
        return RunConfig(
            model=ModelConfig(name="dcgan", latent_dim=100, generator_channels=64, discriminator_channels=64,
                              spectral_norm=False, minibatch_std=False),
            loss=LossConfig(adversarial="nonsaturating"),
            augment=AugmentConfig(policy=()),
            optim=OptimConfig(betas=(0.5, 0.999)),
            train=TrainConfig(ema=0.0, batch_size=64, eval_every=0),
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
    raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")


# --------------------------------------------------------------------------------------------------------
# dict <-> dataclass with type checking


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Checks ``value`` against a field annotation and converts YAML-ish values (lists -> tuples, int -> float)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        args = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key {key!r} must have {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(number):  # .inf / .nan in YAML, "inf" in --set: never a meaningful setting
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")  # a bug, not user input


def _merge(config: Any, values: Mapping[str, Any], prefix: str = "") -> Any:
    """A copy of dataclass ``config`` with ``values`` (a nested mapping) applied; unknown keys raise."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'root'!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(type(config))
    known = {f.name for f in fields(config)}
    changes = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config key {full!r}; valid keys here: {', '.join(sorted(known))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value or {}, f"{full}.")
        else:
            changes[key] = _coerce(value, hints[key], full)
    return replace(config, **changes)


def from_dict(values: Mapping[str, Any], base: RunConfig | None = None) -> RunConfig:
    """A validated RunConfig from a nested mapping applied on top of ``base`` (default: the medgan recipe)."""
    config = _merge(base or RunConfig(), values)
    validate(config)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML config file into a mapping; a missing or malformed file raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"not valid YAML ({problem})", path) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError("a config file must hold a mapping of sections", path)
    return values


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turns ``["train.steps=10", "optim.betas=[0.5, 0.9]"]`` into a nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return nested


def deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested dict ``base`` with nested ``update`` merged in."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        elif isinstance(value, Mapping) and merged.get(key) is not None:
            # A section given as a scalar or list (e.g. ``train: 5`` in YAML) must not be silently replaced
            # by the section a CLI flag builds: the user's file is wrong, say so.
            raise ConfigError(f"config section {key!r} must be a mapping, got {merged[key]!r}")
        else:
            merged[key] = value
    return merged


def save_yaml(config: RunConfig, path: str | Path) -> None:
    """Writes the resolved config atomically as YAML."""
    from medgan.utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def _check(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"config key {key!r} {problem}")


def validate(config: RunConfig) -> None:
    """Raises ConfigError naming the first key whose value is out of range or not one of the allowed names."""
    data, model, loss, optim, train = config.data, config.model, config.loss, config.optim, config.train
    _check(data.resolution in RESOLUTIONS, "data.resolution", f"must be one of {RESOLUTIONS}, got {data.resolution}")
    _check(data.axis in (0, 1, 2), "data.axis", f"must be 0, 1 or 2, got {data.axis}")
    _check(0.0 <= data.min_foreground < 1.0, "data.min_foreground", "must be in [0, 1)")
    _check(data.modality in ("auto", "mri", "ct"), "data.modality", "must be auto, mri or ct")
    _check(data.normalize in ("percentile", "zscore"), "data.normalize", "must be percentile or zscore")
    low, high = data.percentiles
    _check(0.0 <= low < high <= 100.0, "data.percentiles", "must satisfy 0 <= low < high <= 100")
    _check(data.fit in ("resize", "crop", "pad"), "data.fit", "must be resize, crop or pad")
    _check(data.nan_policy in ("error", "clean"), "data.nan_policy", "must be error or clean")
    _check(data.window_width is None or data.window_width > 0, "data.window_width", "must be positive")
    _check(data.extract in ("slices", "liver-slices", "liver-crops", "lesion-rois"), "data.extract",
           "must be slices, liver-slices, liver-crops or lesion-rois")
    _check(8 <= data.roi_size <= MAX_ROI_SIZE, "data.roi_size", f"must be between 8 and {MAX_ROI_SIZE}")
    _check(data.patch == 0 or 32 <= data.patch <= data.resolution, "data.patch",
           "must be 0 (whole tiles) or between 32 and data.resolution")
    _check(sum(v is not None for v in (data.input, data.pairs, data.degrade)) <= 1, "data.input",
           "data.input, data.pairs and data.degrade are alternatives: give one")
    _check(1 <= model.depth <= 6, "model.depth", "must be between 1 and 6")
    _check(data.split in ("train", "val", "test", "all"), "data.split", "must be train, val, test or all")
    _check(0.0 <= data.rotate_degrees <= 180.0, "data.rotate_degrees", "must be in [0, 180]")
    _check(0.0 <= data.scale < 1.0, "data.scale", "must be in [0, 1)")
    _check(0 < model.latent_dim <= MAX_LATENT_DIM, "model.latent_dim", f"must be between 1 and {MAX_LATENT_DIM}")
    for key in ("generator_channels", "discriminator_channels"):
        _check(4 <= getattr(model, key) <= MAX_CHANNELS, f"model.{key}", f"must be between 4 and {MAX_CHANNELS}")
    _check(loss.r1_gamma >= 0, "loss.r1_gamma", "must be >= 0")
    _check(loss.r1_interval >= 1, "loss.r1_interval", "must be >= 1")
    _check(loss.gradient_penalty >= 0, "loss.gradient_penalty", "must be >= 0")
    _check(loss.instance_noise >= 0, "loss.instance_noise", "must be >= 0")
    _check(loss.mode_seeking >= 0, "loss.mode_seeking", "must be >= 0")
    _check(loss.auxiliary >= 0, "loss.auxiliary", "must be >= 0")
    _check(loss.adversarial_weight >= 0, "loss.adversarial_weight", "must be >= 0")
    _check(loss.pixel >= 0, "loss.pixel", "must be >= 0")
    _check(0.0 <= config.augment.probability <= 1.0, "augment.probability", "must be in [0, 1]")
    _check(0.0 < config.augment.ada_target < 1.0, "augment.ada_target", "must be in (0, 1)")
    _check(optim.lr_generator > 0, "optim.lr_generator", "must be positive")
    _check(optim.lr_discriminator > 0, "optim.lr_discriminator", "must be positive")
    _check(all(0.0 <= b < 1.0 for b in optim.betas), "optim.betas", "must be in [0, 1)")
    _check(optim.schedule in ("constant", "linear", "cosine"), "optim.schedule", "must be constant, linear or cosine")
    _check(optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
    _check(optim.d_steps >= 1, "optim.d_steps", "must be >= 1")
    _check(optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
    _check(train.steps >= 0, "train.steps", "must be >= 0")
    _check(train.minutes >= 0, "train.minutes", "must be >= 0")
    _check(train.steps > 0 or train.minutes > 0, "train.steps", "must be positive unless train.minutes is set")
    _check(1 <= train.batch_size <= MAX_BATCH_SIZE, "train.batch_size", f"must be between 1 and {MAX_BATCH_SIZE}")
    _check(0.0 <= train.ema < 1.0, "train.ema", "must be in [0, 1)")
    _check(train.precision in ("auto", "bf16", "fp32"), "train.precision", "must be auto, bf16 or fp32")
    _check(train.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda")
    for key in ("log_every", "sample_every", "checkpoint_every"):
        _check(getattr(train, key) >= 1, f"train.{key}", "must be >= 1")
    _check(train.eval_every >= 0, "train.eval_every", "must be >= 0")
    _check(0 <= train.threads <= MAX_THREADS, "train.threads", f"must be between 0 and {MAX_THREADS}")
    # Name checks against the registries happen where the registries live (networks, losses, augment, tasks),
    # so this module stays import-light; see medgan.training.loop.check_names.
