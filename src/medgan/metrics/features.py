"""Feature extractors for distribution metrics (FID, KID, precision/recall, density/coverage, memorization).

Metrics take *features*, not images, so the feature space is a choice made here, by name:

* ``"offline"`` (default): a fixed random-weight multi-scale convolutional network plus a few hand-crafted
  image statistics, 64 dimensions, no downloaded weights; see ``OfflineFeatures`` for what it captures and
  its limits.
* ``"inception"`` or ``"inception:/path/weights.pth"``: the FID-Inception v3 pool features (2048-D) of
  pytorch-fid, loaded from a local file (the path, or ``$MEDGAN_INCEPTION_WEIGHTS``); see
  ``medgan.metrics.inception``.
* ``"swav:/path/swav_800ep_pretrain.pth.tar"`` and ``"radimagenet:/path/RadImageNet-ResNet50_notop.pth"`` (or
  ``$MEDGAN_SWAV_WEIGHTS`` / ``$MEDGAN_RADIMAGENET_WEIGHTS``): 2048-D ResNet-50 pool features, ImageNet SwAV
  (closest to radiologists in Woodland et al. 2024) or RadImageNet, from a local file; see ``medgan.metrics.resnet``.
* ``"torchscript:/path/model.pt"`` (options ``,channels=3,size=224``), or just a ``.pt``/``.pts`` path: any
  user-supplied TorchScript model that maps ``[N, C, S, S]`` images in [-1, 1] to ``[N, D]`` features.

Greyscale and size handling is explicit in each extractor's ``prepare``: images arrive as ``[N, 1, H, W]`` in
[-1, 1]. The offline extractor resizes them to 64 x 64; Inception repeats the grey channel three times and
resizes to 299 x 299 (bilinear, as pytorch-fid); SwAV and RadImageNet resize to 224 x 224 and normalise as their
training did; a TorchScript model gets the channels and size it asks for.

Reference-set features are cached on disk by ``medgan.metrics.feature_cache``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.metrics.extractor import FeatureExtractor, file_digest
from medgan.registry import Registry

DEFAULT_FEATURES = "offline"
DEFAULT_BATCH = 256  # images per forward pass; results do not depend on it

# Offline extractor constants. Changing any of them changes the feature space: bump OFFLINE_VERSION.
OFFLINE_VERSION = "offline-v1"
OFFLINE_SIZE = 64  # images are resized to this side before feature extraction
OFFLINE_WIDTHS = (16, 32, 64, 128)  # channels of the four random convolution stages (32, 16, 8, 4 px maps)
OFFLINE_SEED = 1234  # numpy legacy RandomState seed: its stream is frozen, so weights are identical everywhere
OFFLINE_PROJECTED = 48  # random-network responses are projected to this many dimensions
OFFLINE_BANDS = 8  # radial frequency bands of the power spectrum
OFFLINE_LEVELS = 8  # intensity levels of the exceedance profile
SPECTRUM_FLOOR = 1e-4  # power floor (white noise of std 0.01, 0.5% of the range): below it, detail counts as absent
SPECTRUM_WEIGHT = 0.25  # scale of the log10 band powers relative to the network responses
LEVELS_WEIGHT = 2.0  # scale of the exceedance fractions relative to the network responses
OFFLINE_SCALE = 10.0  # overall scale: per-dimension spread on real slices is then about 1


EXTRACTORS: Registry[Callable[[str | None], FeatureExtractor]] = Registry("feature extractor")


# --------------------------------------------------------------------------------------------------------
# the offline extractor


def _he_normal(state: np.random.RandomState, out_channels: int, in_channels: int, kernel: int) -> torch.Tensor:
    """He-normal convolution weights drawn from a frozen NumPy stream (identical across versions and machines)."""
    scale = math.sqrt(2.0 / (in_channels * kernel * kernel))
    weights = state.standard_normal((out_channels, in_channels, kernel, kernel)) * scale
    return torch.from_numpy(weights.astype(np.float32))


def _band_matrix(size: int, bands: int) -> torch.Tensor:
    """[size * (size // 2 + 1), bands] averaging weights of the rfft2 bins in each radial frequency band."""
    rows = torch.fft.fftfreq(size).abs()[:, None]
    columns = torch.fft.rfftfreq(size)[None, :]
    radius = (torch.sqrt(rows**2 + columns**2) / 0.5).flatten()  # 1.0 = Nyquist along an axis
    index = torch.clamp((radius * bands).long(), max=bands - 1)  # corners beyond Nyquist join the last band
    members = F.one_hot(index, bands).float()
    members[0] = 0.0  # the DC bin (mean intensity) is not texture
    return members / members.sum(0, keepdim=True)


class OfflineFeatures(FeatureExtractor):
    """Offline features: random multi-scale convolutional responses plus spectral and intensity statistics.

    Dimensions (64 in all, fixed; small enough for FID on about 100 real slices):

    * 48: a fixed random orthonormal projection of the responses of a 4-stage random-weight ReLU network
      (channels 16/32/64/128, stride 2 each, He-normal weights from a frozen seed). Per stage, each channel's
      spatial mean and root-mean-square, plus the last stage pooled on a 2 x 2 grid (coarse layout). Random
      convolutional features are known to rank generative models sensibly (Naeem et al. 2020 used a
      randomly initialised VGG for precision/recall/density/coverage): they respond to local structure at
      4 scales (edges, blobs, texture energy) without any learned semantics.
    * 8: log10 power of the image spectrum in 8 radial frequency bands, floored at 1e-4 (noise of 0.5% of
      the range). This catches blur (lost fine detail), noise (excess fine detail) and periodic
      upsampling artefacts of generators.
    * 8: fractions of pixels above 8 equally spaced intensity levels (the intensity distribution).

    Limits: nothing here is trained, so the features know no anatomy or pathology. They judge texture,
    sharpness, noise, intensity and coarse layout, not whether an organ is plausible. Values are not
    comparable with Inception FIDs reported in papers, only between runs scored with this same extractor
    (the fingerprint ``offline-v1`` names the space). Images are resized to 64 x 64 first, so detail finer
    than 1/64 of the field of view is invisible to the network (the spectrum bands see it only at 64 px).
    """

    name = "offline"
    dim = OFFLINE_PROJECTED + OFFLINE_BANDS + OFFLINE_LEVELS

    def __init__(self) -> None:
        super().__init__()
        state = np.random.RandomState(OFFLINE_SEED)
        channels = (1,) + OFFLINE_WIDTHS
        kernels = (4,) + (3,) * (len(OFFLINE_WIDTHS) - 1)  # the 4x4 stem halves the size without aliasing gaps
        for stage, (cin, cout, kernel) in enumerate(zip(channels[:-1], channels[1:], kernels)):
            self.register_buffer(f"weight{stage}", _he_normal(state, cout, cin, kernel))
        pooled = 2 * sum(OFFLINE_WIDTHS) + 4 * OFFLINE_WIDTHS[-1]
        basis, _ = np.linalg.qr(state.standard_normal((pooled, OFFLINE_PROJECTED)))
        self.register_buffer("projection", torch.from_numpy(basis.astype(np.float32)))  # [pooled, 48]
        self.register_buffer("bands", _band_matrix(OFFLINE_SIZE, OFFLINE_BANDS))
        self.register_buffer("levels", torch.linspace(-1.0, 1.0, OFFLINE_LEVELS + 2)[1:-1])

    def fingerprint(self) -> str:
        return OFFLINE_VERSION

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Resizes to 64 x 64 (bilinear with antialiasing; a no-op at 64); stays one channel in [-1, 1]."""
        if images.shape[-2:] != (OFFLINE_SIZE, OFFLINE_SIZE):
            images = F.interpolate(images, size=(OFFLINE_SIZE, OFFLINE_SIZE), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images

    def embed(self, prepared: torch.Tensor) -> torch.Tensor:
        network = self._network_responses(prepared) @ self.projection  # [N, 48]
        spectrum = torch.log10(self._band_power(prepared) + SPECTRUM_FLOOR) * SPECTRUM_WEIGHT  # [N, 8]
        flat = prepared.flatten(1)
        exceedance = torch.stack([(flat > level).float().mean(1) for level in self.levels], 1) * LEVELS_WEIGHT
        return torch.cat([network, spectrum, exceedance], 1) * OFFLINE_SCALE

    def _network_responses(self, images: torch.Tensor) -> torch.Tensor:
        pooled = []
        hidden = images
        for stage in range(len(OFFLINE_WIDTHS)):
            hidden = F.relu(F.conv2d(hidden, getattr(self, f"weight{stage}"), stride=2, padding=1))
            pooled += [hidden.mean((2, 3)), hidden.square().mean((2, 3)).sqrt()]  # [N, C] each
        pooled.append(F.adaptive_avg_pool2d(hidden, 2).flatten(1))  # [N, 4 * C_last]: coarse layout
        return torch.cat(pooled, 1)

    def _band_power(self, images: torch.Tensor) -> torch.Tensor:
        centred = images[:, 0] - images.mean((1, 2, 3))[:, None, None]
        power = torch.fft.rfft2(centred, norm="ortho").abs().square().flatten(1)  # [N, H * (W // 2 + 1)]
        return power @ self.bands


@EXTRACTORS.register("offline")
def _offline(argument: str | None) -> FeatureExtractor:
    if argument:
        raise ConfigError(f"feature extractor 'offline' takes no argument, got {argument!r}")
    return OfflineFeatures()


# --------------------------------------------------------------------------------------------------------
# InceptionV3 (FID) and user TorchScript models


class InceptionFeatures(FeatureExtractor):
    """FID-Inception v3 pool3 features (2048-D), weights from a local file.

    Greyscale handling: the single channel is repeated to R, G and B. Size: bilinear resize to 299 x 299
    (``align_corners=False``), as pytorch-fid does. Values stay in [-1, 1], the range the network was
    trained on (pytorch-fid maps [0, 1] images to [-1, 1] before the same network).
    """

    name = "inception"
    dim = 2048

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from medgan.metrics.inception import load_fid_inception

        self.weights = weights
        self.network = load_fid_inception(weights)
        self._fingerprint = f"inception-fid:{file_digest(weights)[:16]}"

    def fingerprint(self) -> str:
        return self._fingerprint

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = images.expand(-1, 3, -1, -1)
        return F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)

    def embed(self, prepared: torch.Tensor) -> torch.Tensor:
        return self.network(prepared)


@EXTRACTORS.register("inception")
def _inception(argument: str | None) -> FeatureExtractor:
    from medgan.metrics.inception import WEIGHTS_ENV, inception_weights_path

    path = inception_weights_path(argument)
    if path is None:
        raise ConfigError(
            f"Inception features need local weights: pass inception:/path/to/weights.pth or set ${WEIGHTS_ENV} "
            "(medgan.metrics.inception.download_inception_weights() fetches them once when online); "
            "or use --features offline"
        )
    return InceptionFeatures(path)


@EXTRACTORS.register("swav")
def _swav(argument: str | None) -> FeatureExtractor:
    from medgan.metrics.resnet import swav_features

    return swav_features(argument)


@EXTRACTORS.register("radimagenet")
def _radimagenet(argument: str | None) -> FeatureExtractor:
    from medgan.metrics.resnet import radimagenet_features

    return radimagenet_features(argument)


class TorchScriptFeatures(FeatureExtractor):
    """A user TorchScript model mapping ``[N, channels, size, size]`` images in [-1, 1] to ``[N, D]`` features.

    Args:
        path: the ``torch.jit.save``-d model.
        channels: 1 (grey, as stored) or 3 (grey repeated to R, G, B).
        size: side the images are resized to (bilinear, antialiased); None keeps the data resolution.
    """

    name = "torchscript"

    def __init__(self, path: Path, channels: int = 1, size: int | None = None) -> None:
        super().__init__()
        if not path.is_file():
            raise ConfigError("TorchScript feature model not found", path)
        if channels not in (1, 3):
            raise ConfigError(f"TorchScript option channels must be 1 or 3, got {channels}")
        try:
            self.model = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as error:
            raise CheckpointError(f"not a loadable TorchScript model ({str(error).splitlines()[0]})", path) from None
        self.path, self.channels, self.size = path, channels, size
        self.dim = self._probe_dim()
        self._fingerprint = f"torchscript:{file_digest(path)[:16]}:c{channels}:s{size}"

    def fingerprint(self) -> str:
        return self._fingerprint

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.size is not None and images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                   antialias=True)
        return images.expand(-1, self.channels, -1, -1)

    def embed(self, prepared: torch.Tensor) -> torch.Tensor:
        try:
            output = self.model(prepared)
        except RuntimeError as error:
            raise CheckpointError(f"TorchScript model failed on {tuple(prepared.shape)} input "
                                  f"({str(error).splitlines()[0]})", self.path) from None
        if not isinstance(output, torch.Tensor) or output.ndim < 2 or output.shape[0] != prepared.shape[0]:
            raise CheckpointError("TorchScript model must return a [N, D] tensor", self.path)
        return output.flatten(1).float()

    def _probe_dim(self) -> int:
        side = self.size or OFFLINE_SIZE
        with torch.no_grad():
            return int(self.embed(self.prepare(torch.zeros(2, 1, side, side))).shape[1])


@EXTRACTORS.register("torchscript")
def _torchscript(argument: str | None) -> FeatureExtractor:
    if not argument:
        raise ConfigError("torchscript features need a model path: torchscript:/path/model.pt[,channels=3,size=224]")
    path, *options = argument.split(",")
    settings: dict[str, int] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key.strip() not in ("channels", "size") or not value.strip().isdigit():
            raise ConfigError(f"bad torchscript option {option!r}; use channels=1|3 and size=N")
        settings[key.strip()] = int(value)
    return TorchScriptFeatures(Path(path).expanduser(), **settings)


def get_extractor(spec: str = DEFAULT_FEATURES) -> FeatureExtractor:
    """Builds the feature extractor named by ``spec``.

    Args:
        spec: ``"offline"``, ``"inception"``, ``"inception:/path/weights.pth"``, ``"swav[:/path]"``,
            ``"radimagenet[:/path]"``, ``"torchscript:/path/model.pt[,channels=3,size=224]"``, or a path to a
            ``.pt``/``.pts`` TorchScript file.

    Returns:
        The extractor in eval mode.

    Raises:
        ConfigError: unknown name, missing weights or bad options (the message lists valid names).
    """
    spec = spec.strip()
    if spec.endswith((".pt", ".pts")) and ":" not in spec.split("/")[0]:
        name, argument = "torchscript", spec
    else:
        name, _, argument = spec.partition(":")
    return EXTRACTORS.get(name)(argument or None).eval()


# --------------------------------------------------------------------------------------------------------
# extraction and caching


def check_images(images: torch.Tensor, what: str = "images") -> None:
    """Raises DataError unless ``images`` is a non-empty, finite [N, 1, H, W] float tensor."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise DataError(f"{what} must be [N, 1, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise DataError(f"{what}: empty set (0 images)")
    if images.shape[1] != 1:
        raise DataError(f"{what} must have 1 channel (greyscale), got {images.shape[1]} channels")
    # NaN propagates through amax/amin and Inf shows in one of them: two reductions, no full-size mask.
    if not (torch.isfinite(images.amax()) and torch.isfinite(images.amin())):
        raise DataError(f"{what} contain NaN or Inf values")


@torch.no_grad()
def extract_features(images: torch.Tensor, extractor: FeatureExtractor, batch_size: int = DEFAULT_BATCH,
                     progress: bool = False, what: str = "images") -> torch.Tensor:
    """Features of a set of images.

    Args:
        images: [N, 1, H, W] in [-1, 1].
        extractor: from ``get_extractor``.
        batch_size: images per forward pass; features do not depend on it (every operation is per image).
        progress: show a progress bar.
        what: name of the set for error messages.

    Returns:
        [N, D] float32 features on the CPU.
    """
    check_images(images, what)
    device = next(iter(extractor.buffers()), torch.empty(0)).device
    starts = range(0, images.shape[0], batch_size)
    if progress:
        from medgan.progress import progress_bar

        starts = progress_bar(starts, desc=f"features ({what})", unit="batch", leave=False)
    chunks = [extractor(images[start : start + batch_size].float().to(device)).cpu() for start in starts]
    return torch.cat(chunks).float()
