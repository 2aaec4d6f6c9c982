"""The typed, frozen sections of a run configuration and the key bounds they are checked against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RESOLUTIONS = (32, 64, 128, 256)
# Upper bounds that keep a typo (latent_dim: 100000000000) from reaching the allocator, each well above what a
# GAN here needs (StyleGAN: latent 512; BigGAN: batch 2048; DCGAN: width 64, whose deepest layer has 8x as many
# channels: 512 gives 4096-channel layers of ~1 GB each).
MAX_LATENT_DIM = 4096
MAX_CHANNELS = 512
MAX_BATCH_SIZE = 4096
MAX_ROI_SIZE = 1024
MAX_THREADS = 1024
# A DP target above this promises nothing (the guarantee bounds likelihood ratios by e^epsilon), and solving the noise
# for it is slow or never ends (the accountant's search cannot resolve such targets): leave privacy off instead.
MAX_EPSILON = 1000.0
UPSAMPLING = ("transposed", "bilinear", "nearest", "bilinear-output", "nearest-output")  # model.upsample: how the dcgan generator doubles its maps


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
    # Classic augmentation: random left-right flips. None (auto) flips every image but CT (HU): abdominal and
    # thoracic anatomy is not left-right symmetric, and a G trained on mirrored abdomens draws the liver on the left.
    flip: bool | None = None
    rotate_degrees: float = 5.0  # classic augmentation: random rotation range (+/- degrees)
    scale: float = 0.05  # classic augmentation: random zoom range (+/- fraction)
    # Unlabelled training: draw slices with weight density(foreground fraction) ** -balance, so that the rare
    # small slices at a volume's ends are seen more often (0 = uniform shuffled epochs; 1 = flat over size).
    balance: float = 0.0
    labels: str | None = None  # CSV of file,label[,attributes...] (conditional tasks)
    extract: str = "slices"  # CT layouts (LiTS/MSD): "slices", "liver-slices", "liver-crops" or "lesion-rois"
    roi_size: int = 64  # side in pixels of "lesion-rois" regions (native pixels) and of "ct-lesions" ROIs
    split: str = "train"  # MedMNIST .npz split: "train", "val", "test" or "all"
    input: str | None = None  # paired tasks: input images matched to ``source`` (the targets) by file name
    pairs: str | None = None  # paired tasks: CSV with input,target[,mask] columns (paths relative to the CSV)
    degrade: str | None = None  # paired tasks: derive the input from each target: lowdose:F, downsample:F, inpaint, mask
    # Image-to-image tasks: the input modalities (domain A), stacked as channels in this order; each a file,
    # folder or embedded source name. Paired: matched to ``source`` (the targets) slice by slice. Unpaired:
    # domain A, with ``source`` as domain B; several A modalities are matched to each other, not to B.
    domain_a: tuple[str, ...] = ()
    disjoint: bool = True  # unpaired: when A and B share subjects, train A and B on disjoint halves of them
    # 3 trains on volumes: each volume becomes a cube of side ``resolution`` (noise-to-image tasks); 2 on slices.
    dims: int = 2
    # Image-to-image tasks (2.5D): this many neighbouring slices on each side of the input slice join it as
    # input channels (0 = the slice alone), so the model sees through-plane context.
    context: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator architecture."""

    name: str = "dcgan"  # registered architecture: "dcgan" (DCGAN topology) or "resnet" (SN residual)
    latent_dim: int = 128  # size of the noise vector z
    generator_channels: int = 32  # width multiplier of G (ngf)
    discriminator_channels: int = 32  # width multiplier of D (ndf)
    spectral_norm: bool = True  # spectral normalization on D's layers
    minibatch_std: bool = True  # minibatch standard-deviation feature in D (StyleGAN's guard against collapse)
    auxiliary_classifier: bool = False  # class-conditional D also predicts the class (AC-GAN head)
    conditional_norm: bool = False  # conditional, dcgan G: per-class BatchNorm scale and shift (conditional BN)
    upsample: str = "transposed"  # dcgan G's x2 steps: "transposed" (4x4 stride 2), "bilinear"/"nearest" + 3x3 conv, or
    # "bilinear-output"/"nearest-output" (transposed inside, resize-convolution into the image)
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
    cpu_minutes: float = 0.0  # CPU-time budget of the training process in minutes (0 = none): fair on a shared CPU
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
    threads: int = 0  # torch CPU threads (0 = automatic: the cores other processes leave free, re-checked)
    compile: bool = False  # torch.compile the trained networks (GPU runs; slow to start on CPU)


@dataclass(frozen=True)
class PrivacyConfig:
    """Differentially private training (DP-SGD on the discriminator, the only network that sees real data)."""

    epsilon: float = 0.0  # target epsilon; the noise multiplier is solved for the run's step budget (0 = off)
    noise: float = 0.0  # or a fixed noise multiplier sigma (0 = off); give epsilon or noise, not both
    delta: float = 0.0  # target delta (0 = automatic: below 1 / number of privacy units)
    max_grad_norm: float = 1.0  # per-unit gradient clipping bound
    unit: str = "subject"  # privacy unit: "subject" (a patient, all their slices) or "slice"


@dataclass(frozen=True)
class RunConfig:
    """The whole, resolved configuration of a run; saved as ``config.yaml`` in the run directory.

    The sections below are shared by every task. ``options`` is the task's own section: plain values here,
    written to YAML under the task's name (``unpaired: {cycle: 10}``), typed and checked by the task that owns
    them (``medgan.training.tasks``), which this layer does not know.
    """

    task: str = ""  # a task registered in medgan.training.tasks.TASKS ("" until resolved: the default task)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    options: dict[str, Any] = field(default_factory=dict)  # the task's own section (see the class docstring)
