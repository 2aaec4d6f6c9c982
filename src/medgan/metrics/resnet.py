"""ResNet-50 feature spaces from local weights files: ImageNet SwAV and RadImageNet, in plain torch.

Woodland et al. 2024 (MICCAI, "Feature Extraction for Generative Medical Imaging Evaluation") found that the
Fréchet distance on ImageNet **SwAV** ResNet-50 features agreed best with radiologists, while **RadImageNet**
(Mei et al. 2022) features gave volatile rankings. Both are offered here as 2048-D features (the global average
pool before the classifier), from a weights file the user supplies; nothing is downloaded unless
``download_swav_weights`` / ``download_radimagenet_weights`` is called.

Weights files and their key layouts:

* ``swav:<file>`` (or ``$MEDGAN_SWAV_WEIGHTS``): ``swav_800ep_pretrain.pth.tar`` of facebookresearch/swav. A plain
  state dict with torchvision ResNet-50 names under ``module.``, plus the training heads ``projection_head.*``
  and ``prototypes.*`` (dropped); no ``fc``. A ``{"state_dict": ...}`` training checkpoint also loads.
* ``radimagenet:<file>`` (or ``$MEDGAN_RADIMAGENET_WEIGHTS``), either of:

  - ``RadImageNet-ResNet50_notop.pth``: the Keras ``.h5`` of the RadImageNet authors converted to torch
    (Warvito/radimagenet-models, hosted by MONAI and used by MONAI Generative and MAISI for FID). Torchvision
    names, but Keras' ResNet-50 v1: every convolution has a bias, the stride sits on the first 1x1 convolution of
    a block, batch norm eps is 1.001e-5. Recognised by its ``conv1.bias``.
  - ``ResNet50.pt`` of the RadImageNet authors' PyTorch release: ``backbone.<i>.`` keys of
    ``nn.Sequential(*torchvision_resnet50.children()[:9])`` (0 conv1, 1 bn1, 4-7 layer1-4).

  Prefixes ``module.`` and ``backbone.`` are stripped and the Sequential indices renamed; heads (``fc.``,
  ``projection_head.``, ``prototypes.``) are dropped; everything else must fit ResNet-50 exactly.

Preprocessing (``prepare``): grey [N, 1, H, W] in [-1, 1] -> [0, 1] -> 224 x 224 -> three channels normalised
per channel, ``(x - mean) / std``:

* SwAV: bicubic resize with antialiasing, which equals PIL's bicubic resize (measured within 2e-5): the
  StudioGAN "clean" resizer Woodland et al. used; ImageNet mean/std, as StudioGAN and torchvision models expect.
* RadImageNet, Keras conversion: what the RadImageNet authors' Keras code (and Woodland et al.'s) feeds, Keras
  ``preprocess_input`` (caffe mode: BGR, minus the ImageNet means 103.939/116.779/123.68) followed by ``1/255``
  rescaling, i.e. ``x - mean_bgr / 255`` with std 1. Bilinear antialiased resize.
* RadImageNet, PyTorch release: [-1, 1] (mean 0.5, std 0.5), as the authors' PyTorch example feeds it.
  Bilinear antialiased resize.

Both sizes are 224 x 224 (SwAV's crops; RadImageNet's PyTorch example). Woodland et al. fed RadImageNet 256 px
images (Keras' default target size), so RadImageNet values here are close to theirs but not identical. Images are
not quantised to 8 bits first, as StudioGAN does with generated images; medgan's float images are used as they are.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.metrics.extractor import FeatureExtractor, file_digest
from medgan.utils import atomic_path

SWAV_ENV = "MEDGAN_SWAV_WEIGHTS"  # path of swav_800ep_pretrain.pth.tar
RADIMAGENET_ENV = "MEDGAN_RADIMAGENET_WEIGHTS"  # path of RadImageNet-ResNet50_notop.pth (or the authors' ResNet50.pt)
SWAV_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
RADIMAGENET_URL = "https://huggingface.co/MONAI/checkpoints/resolve/main/RadImageNet-ResNet50_notop.pth"
FEATURES_VERSION = "v1"  # bump when preprocessing changes: it is part of every fingerprint (the feature cache key)
INPUT_SIZE = 224  # side of the network input: SwAV crops, RadImageNet PyTorch example, StudioGAN
KERAS_EPS = 1.001e-5  # batch norm epsilon of Keras' ResNet50
HEADS = ("fc.", "projection_head.", "prototypes.")  # classifier and SwAV training heads: not part of the features
PREFIXES = ("module.", "backbone.")  # DataParallel wrapper; RadImageNet's Sequential backbone
SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4", "9": "fc"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_MEAN = (103.939 / 255, 116.779 / 255, 123.68 / 255)  # Keras caffe-mode means, B, G, R order, on [0, 1]


# --------------------------------------------------------------------------------------------------------
# the network
#
# Written by hand rather than taken from MONAI: monai.networks.nets.ResNet("bottleneck", (3, 4, 6, 3),
# spatial_dims=2, bias_downsample=False) has torchvision's names and v1.5 layout, but it cannot express the Keras
# ResNet-50 v1 of the converted RadImageNet file (biased convolutions, stride on the 1x1 convolution). The
# tests check that the v1.5 layout here and MONAI's agree, weight for weight and output for output.


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), plus the shortcut. ``keras``: Keras' v1 block (stride on the first
    1x1 convolution, biased convolutions) instead of torchvision's v1.5 (stride on the 3x3)."""

    def __init__(self, in_channels: int, width: int, stride: int = 1, keras: bool = False) -> None:
        super().__init__()
        eps = KERAS_EPS if keras else 1e-5
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride if keras else 1, bias=keras)
        self.bn1 = nn.BatchNorm2d(width, eps=eps)
        self.conv2 = nn.Conv2d(width, width, 3, stride=1 if keras else stride, padding=1, bias=keras)
        self.bn2 = nn.BatchNorm2d(width, eps=eps)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=keras)
        self.bn3 = nn.BatchNorm2d(4 * width, eps=eps)
        self.downsample = None
        if stride != 1 or in_channels != 4 * width:  # the first block of each stage projects the shortcut
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, 4 * width, 1, stride=stride, bias=keras),
                                            nn.BatchNorm2d(4 * width, eps=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50(nn.Module):
    """ResNet-50 up to the global average pool: [N, 3, 224, 224] -> [N, 2048]; torchvision's parameter names.

    Args:
        keras: the Keras v1 variant (see ``Bottleneck``; batch norm eps 1.001e-5) of the converted RadImageNet file.
    """

    def __init__(self, keras: bool = False) -> None:
        super().__init__()
        self.keras = keras
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=keras)
        self.bn1 = nn.BatchNorm2d(64, eps=KERAS_EPS if keras else 1e-5)
        in_channels = 64
        for stage, (width, blocks, stride) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2)), 1):
            layer = [Bottleneck(in_channels, width, stride, keras)]
            layer += [Bottleneck(4 * width, width, 1, keras) for _ in range(blocks - 1)]
            setattr(self, f"layer{stage}", nn.Sequential(*layer))
            in_channels = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # with channels-last weights: about 20% faster on CPU
        x = F.relu(self.bn1(self.conv1(x)))  # 64 x 112 x 112
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)  # 64 x 56 x 56 (Keras' zero padding: same after ReLU)
        x = self.layer1(x)  # 256 x 56 x 56
        x = self.layer2(x)  # 512 x 28 x 28
        x = self.layer3(x)  # 1024 x 14 x 14
        x = self.layer4(x)  # 2048 x 7 x 7
        return x.mean((2, 3))  # 2048


# --------------------------------------------------------------------------------------------------------
# loading


def backbone_state(state: dict) -> dict:
    """A ResNet-50 state dict in torchvision names: prefixes stripped, Sequential indices renamed, heads dropped."""
    renamed = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        head, dot, rest = key.partition(".")
        key = SEQUENTIAL_NAMES.get(head, head) + dot + rest
        if not key.startswith(HEADS):
            renamed[key] = value
    return renamed


def load_resnet50(path: str | Path, what: str, keras_allowed: bool = False) -> ResNet50:
    """Builds ``ResNet50`` and loads a state dict from ``path`` (``weights_only=True``), strictly but for heads.

    Args:
        path: the weights file.
        what: names the weights in messages ("SwAV", "RadImageNet").
        keras_allowed: accept the Keras v1 layout (recognised by ``conv1.bias``).

    Raises:
        CheckpointError: missing or unreadable file, not a state dict, or keys/shapes that do not fit ResNet-50.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} weights file not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean "not a weights file"
        raise CheckpointError(f"cannot read {what} weights ({str(error).splitlines()[0]})", path) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint (main_swav.py, Lightning)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"{what} weights must be a state dict of tensors", path)
    state = backbone_state(state)
    network = ResNet50(keras=keras_allowed and "conv1.bias" in state)
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even when not strict
        problem = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), "bad shapes")
        raise CheckpointError(f"not ResNet-50 weights ({problem[:200]})", path) from None
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]  # absent from old checkpoints
    if missing or unexpected:
        problem = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"not {what} ResNet-50 weights ({problem}, {len(missing) + len(unexpected)} in all)",
                              path)
    return network.to(memory_format=torch.channels_last).eval()


def weights_path(argument: str | None, variable: str) -> Path | None:
    """The local weights file: ``argument`` if given, else ``$variable``, else None."""
    value = argument or os.environ.get(variable)
    return Path(value).expanduser() if value else None


# --------------------------------------------------------------------------------------------------------
# the feature extractors


class ResNetFeatures(FeatureExtractor):
    """2048-D ResNet-50 pool features of a weights file, with the preprocessing its training used.

    Args:
        name: registry name (``swav`` or ``radimagenet``).
        weights: the weights file.
        network: the loaded ``ResNet50``.
        mean, std: per-channel normalisation of [0, 1] images (three values each).
        mode: resize interpolation (``bicubic`` or ``bilinear``; antialiased either way).
        space: names the preprocessing in the fingerprint.
    """

    dim = 2048

    def __init__(self, name: str, weights: Path, network: ResNet50, mean: tuple[float, ...], std: tuple[float, ...],
                 mode: str, space: str) -> None:
        super().__init__()
        self.name, self.weights, self.network, self.mode = name, weights, network, mode
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self._fingerprint = f"{space}-{FEATURES_VERSION}:{file_digest(weights)[:16]}"

    def fingerprint(self) -> str:
        return self._fingerprint

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] in [-1, 1] -> [N, 3, 224, 224], normalised per channel on the [0, 1] scale."""
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode=self.mode, align_corners=False,
                                   antialias=True)
        return ((images + 1) / 2 - self.mean) / self.std  # the grey channel broadcasts to three

    def embed(self, prepared: torch.Tensor) -> torch.Tensor:
        return self.network(prepared)


def _required_path(argument: str | None, name: str, variable: str, download: str) -> Path:
    path = weights_path(argument, variable)
    if path is None:
        raise ConfigError(f"{name} features need local weights: pass {name}:/path/to/weights or set ${variable} "
                          f"(medgan.metrics.resnet.{download}() fetches them once when online); "
                          "or use --features offline")
    return path


def swav_features(argument: str | None = None) -> ResNetFeatures:
    """SwAV ResNet-50 features from ``argument`` (a path) or ``$MEDGAN_SWAV_WEIGHTS``."""
    path = _required_path(argument, "swav", SWAV_ENV, "download_swav_weights")
    network = load_resnet50(path, "SwAV")
    return ResNetFeatures("swav", path, network, IMAGENET_MEAN, IMAGENET_STD, "bicubic", "swav-resnet50")


def radimagenet_features(argument: str | None = None) -> ResNetFeatures:
    """RadImageNet ResNet-50 features from ``argument`` (a path) or ``$MEDGAN_RADIMAGENET_WEIGHTS``; the file's
    layout (Keras conversion or the authors' PyTorch release) picks the preprocessing."""
    path = _required_path(argument, "radimagenet", RADIMAGENET_ENV, "download_radimagenet_weights")
    network = load_resnet50(path, "RadImageNet", keras_allowed=True)
    if network.keras:
        return ResNetFeatures("radimagenet", path, network, CAFFE_MEAN, (1.0, 1.0, 1.0), "bilinear",
                              "radimagenet-keras-resnet50")
    return ResNetFeatures("radimagenet", path, network, (0.5,) * 3, (0.5,) * 3, "bilinear",
                          "radimagenet-torch-resnet50")


# --------------------------------------------------------------------------------------------------------
# explicit downloads


def _download(url: str, destination: str | Path | None, what: str, keras_allowed: bool) -> Path:
    destination = Path(destination or Path.home() / ".cache" / "medgan" / url.rsplit("/", 1)[-1]).expanduser()
    if destination.is_file():
        return destination
    with atomic_path(destination) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as handle:  # noqa: S310
                shutil.copyfileobj(response, handle, 1 << 20)
        except (urllib.error.URLError, OSError) as error:
            raise DataError(f"cannot download {what} weights ({error}); copy the file by hand instead", url) from None
        try:
            load_resnet50(tmp, what, keras_allowed)  # an error page or a cut-off file never lands at destination
        except CheckpointError as error:
            raise DataError(f"downloaded {what} weights are not usable ({error.message})", url) from None
    return destination


def download_swav_weights(destination: str | Path | None = None, url: str = SWAV_URL) -> Path:
    """Downloads the SwAV ResNet-50 weights (about 100 MB) once; call it explicitly (never done implicitly).

    Args:
        destination: file to write (default ``~/.cache/medgan/swav_800ep_pretrain.pth.tar``).
        url: where to fetch from.

    Returns:
        The path of the checked file; set ``$MEDGAN_SWAV_WEIGHTS`` to it or pass ``swav:<path>``.

    Raises:
        DataError: no network, or the download is not a SwAV ResNet-50 state dict.
    """
    return _download(url, destination, "SwAV", keras_allowed=False)


def download_radimagenet_weights(destination: str | Path | None = None, url: str = RADIMAGENET_URL) -> Path:
    """Downloads MONAI's copy of the converted RadImageNet ResNet-50 (about 95 MB) once; explicit call only.

    The RadImageNet models are for research use under the RadImageNet terms (radimagenet.com).

    Args:
        destination: file to write (default ``~/.cache/medgan/RadImageNet-ResNet50_notop.pth``).
        url: where to fetch from.

    Returns:
        The path of the checked file; set ``$MEDGAN_RADIMAGENET_WEIGHTS`` to it or pass ``radimagenet:<path>``.

    Raises:
        DataError: no network, or the download is not a RadImageNet ResNet-50 state dict.
    """
    return _download(url, destination, "RadImageNet", keras_allowed=True)
