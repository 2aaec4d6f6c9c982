"""FID-Inception v3 in plain torch (no torchvision), loading the pytorch-fid weights from a local file.

The layout is the Inception v3 of the TensorFlow FID reference, as ported by pytorch-fid: torchvision's
module names (so the ``pt_inception-2015-12-05`` state dict loads strictly), with the FID-specific
differences in the mixed blocks:

* average pools inside the A, C and first E blocks do not count padding (``count_include_pad=False``);
* the last E block (``Mixed_7c``) pools its side branch with a max pool instead of an average pool;
* the classifier has 1008 outputs (it is loaded but unused: FID uses the 2048-D pool3 features).

Nothing is downloaded unless ``download_inception_weights`` is called explicitly.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medgan.errors import CheckpointError, DataError
from medgan.utils import atomic_path

WEIGHTS_ENV = "MEDGAN_INCEPTION_WEIGHTS"  # path of the pytorch-fid weights file
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name carries its SHA-256 prefix
FID_CLASSES = 1008  # the 2015 TF graph's classifier size


class BasicConv2d(nn.Module):
    """Convolution (no bias) -> batch norm (eps 1e-3, as TF) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_options) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_options)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _average_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that ignores padding (the TF behaviour the FID weights were trained with)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35 x 35 block: 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.branch5x5_2(self.branch5x5_1(x))
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), five, double, self.branch_pool(_average_pool(x))], 1)


class InceptionB(nn.Module):
    """35 -> 17 reduction block."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), double, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17 x 17 block with factorised 7x7 convolutions."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for stage in range(1, 6):
            double = getattr(self, f"branch7x7dbl_{stage}")(double)
        return torch.cat([self.branch1x1(x), seven, double, self.branch_pool(_average_pool(x))], 1)


class InceptionD(nn.Module):
    """17 -> 8 reduction block."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_2(self.branch3x3_1(x))
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([three, seven, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8 x 8 block with split 1x3/3x1 branches; ``max_pool`` selects the FID variant of ``Mixed_7c``."""

    def __init__(self, in_channels: int, max_pool: bool = False) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _average_pool(x)
        return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception v3 up to pool3: [N, 3, 299, 299] in [-1, 1] -> [N, 2048]."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)  # 32 x 149 x 149
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)  # 32 x 147 x 147
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)  # 64 x 147 x 147
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)  # 80 x 73 x 73 (after max pool)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)  # 192 x 71 x 71
        self.Mixed_5b = InceptionA(192, pool_features=32)  # 256 x 35 x 35 (after max pool)
        self.Mixed_5c = InceptionA(256, pool_features=64)  # 288 x 35 x 35
        self.Mixed_5d = InceptionA(288, pool_features=64)  # 288 x 35 x 35
        self.Mixed_6a = InceptionB(288)  # 768 x 17 x 17
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)  # 768 x 17 x 17
        self.Mixed_7a = InceptionD(768)  # 1280 x 8 x 8
        self.Mixed_7b = InceptionE(1280)  # 2048 x 8 x 8
        self.Mixed_7c = InceptionE(2048, max_pool=True)  # 2048 x 8 x 8
        self.fc = nn.Linear(2048, FID_CLASSES)  # part of the weights file; not used for features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 64 x 73 x 73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 192 x 35 x 35
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # 2048 (pool3)


def inception_weights_path(argument: str | None = None) -> Path | None:
    """The local weights file: ``argument`` if given, else ``$MEDGAN_INCEPTION_WEIGHTS``, else None."""
    value = argument or os.environ.get(WEIGHTS_ENV)
    return Path(value).expanduser() if value else None


def load_fid_inception(path: str | Path) -> FIDInceptionV3:
    """Builds ``FIDInceptionV3`` and loads a pytorch-fid state dict from ``path`` (``weights_only=True``).

    Raises:
        CheckpointError: missing or unreadable file, or a state dict that does not fit the FID layout.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("Inception weights file not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file; all mean "not a weights file"
        raise CheckpointError(f"cannot read Inception weights ({str(error).splitlines()[0]})", path) from None
    if not isinstance(state, dict):
        raise CheckpointError("Inception weights must be a state dict", path)
    network = FIDInceptionV3()
    missing, unexpected = network.load_state_dict(state, strict=False)
    # Old checkpoints have no BatchNorm step counters, and torchvision dumps may carry the auxiliary head.
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    unexpected = [key for key in unexpected if not key.startswith("AuxLogits.")]
    if missing or unexpected:
        problem = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"not FID-Inception weights ({problem})", path)
    return network.eval()


def download_inception_weights(destination: str | Path | None = None, url: str = WEIGHTS_URL) -> Path:
    """Downloads the pytorch-fid Inception weights once; call it explicitly (never done implicitly).

    Args:
        destination: file to write (default ``~/.cache/medgan/pt_inception-2015-12-05-6726825d.pth``).
        url: where to fetch from.

    Returns:
        The path of the verified file; set ``$MEDGAN_INCEPTION_WEIGHTS`` to it or pass ``inception:<path>``.

    Raises:
        DataError: no network, or the download does not match the published checksum prefix.
    """
    destination = Path(destination or Path.home() / ".cache" / "medgan" / url.rsplit("/", 1)[-1]).expanduser()
    if destination.is_file():
        return destination
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed https URL
            payload = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"cannot download Inception weights ({error}); copy the file by hand instead", url) from None
    if not hashlib.sha256(payload).hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
        raise DataError("downloaded Inception weights do not match their checksum", url)
    with atomic_path(destination) as tmp:
        tmp.write_bytes(payload)
    return destination
