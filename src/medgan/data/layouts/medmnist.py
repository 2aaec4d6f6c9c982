"""MedMNIST ``.npz`` files as a dataset layout, and an opt-in download helper.

The layout registers itself in ``medgan.data.sources.LAYOUTS``; ``pipeline.load_slices`` offers every user
path to it before the generic pipeline, so pointing ``data.source`` at a MedMNIST file is enough.

MedMNIST ``.npz`` (OrganAMNIST, OrganCMNIST, OrganSMNIST and the other 2D sets) holds ``train_images`` /
``train_labels`` and ``val_*`` / ``test_*``. Images are already 8-bit windowed grey values, so the mapping is
the identity over [0, 255] in arbitrary units ("a.u."), not HU. The files carry no patient ids: each image is
its own subject; the official train/val/test splits are the patient-level ones (Organ*MNIST split by CT
scan), so choose them with ``data.split``.

Nothing is downloaded unless ``download_medmnist`` is called; the layout reads a local file.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from medgan.config import DataConfig
from medgan.data.datasets import SliceBuilder, SliceSet
from medgan.data.intensity import IntensityMapping
from medgan.data.readers.numpy import npz_member
from medgan.data.sources import LAYOUTS
from medgan.errors import ConfigError, DataError

MEDMNIST_SPLITS = ("train", "val", "test")
ORGAN_MNIST_CLASSES = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)
MEDMNIST_CLASS_NAMES = {name: ORGAN_MNIST_CLASSES for name in ("organamnist", "organcmnist", "organsmnist")}
# MedMNIST v2 (28 x 28) on Zenodo, with the MD5 of the files medgan knows the class names of.
MEDMNIST_URL = "https://zenodo.org/record/6496656/files/{name}.npz?download=1"
MEDMNIST_SIZED_URL = "https://zenodo.org/records/10519652/files/{name}_{size}.npz?download=1"  # MedMNIST+ sizes
MEDMNIST_MD5 = {
    "organamnist": "866b832ed4eeba67bfb9edee1d5544e6",
    "organcmnist": "0afa5834fb105f7705a7d93372119a21",
    "organsmnist": "e5c39f1af030238290b9557d9503af9d",
}


@LAYOUTS.register("medmnist")
def medmnist_layout(path: Path, config: DataConfig) -> SliceSet | None:
    """A MedMNIST ``.npz`` file (it has ``train_images``); None for any other path."""
    if not (path.is_file() and path.name.lower().endswith(".npz")):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if "train_images" not in data.files:
                return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # not a readable npz: the generic reader reports it
    return load_medmnist(path, config.split, config)



def medmnist_name(path: Path) -> str:
    """The MedMNIST dataset name of a file, e.g. ``organamnist`` for ``organamnist_64.npz``."""
    stem = path.name[: -len(".npz")].lower()
    return re.sub(r"_\d+$", "", stem)


def load_medmnist(path: str | Path, split: str = "train", config: DataConfig | None = None) -> SliceSet:
    """Loads a MedMNIST ``.npz`` split as [-1, 1] tiles with class labels.

    Args:
        path: the ``.npz`` file (``{split}_images``: uint8 ``[N, H, W]`` or ``[N, H, W, C]``;
            ``{split}_labels``: ``[N, 1]``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (the three concatenated).
        config: data config (resolution, fit); default ``DataConfig()``.

    Returns:
        The slice set; mapping identity over [0, 255] "a.u." (MedMNIST is already windowed 8-bit grey);
        class names for Organ{A,C,S}MNIST, the label numbers otherwise; one subject per image.

    Raises:
        DataError: a missing split, a 3D or multi-label dataset, or images and labels that disagree.
    """
    path, config = Path(path), config or DataConfig()
    splits = MEDMNIST_SPLITS if split == "all" else (split,)
    if split != "all" and split not in MEDMNIST_SPLITS:
        raise ConfigError(f"config key 'data.split' is {split!r}; choose one of: train, val, test, all")
    images, labels, sources = [], [], []
    try:
        with np.load(path, allow_pickle=False) as data:
            for name in splits:
                if f"{name}_images" not in data.files or f"{name}_labels" not in data.files:
                    raise DataError(f"no {name}_images/{name}_labels arrays (has: {', '.join(data.files)})", path)
                # npz_member checks each array's claimed size before NumPy allocates it
                raw_images = npz_member(data, f"{name}_images", path)
                raw_labels = npz_member(data, f"{name}_labels", path)
                split_images, split_labels = _medmnist_arrays(raw_images, raw_labels, name, path)
                images.append(split_images)
                labels.append(split_labels)
                sources.extend(f"{path}#{name}/{index}" for index in range(len(split_images)))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read MedMNIST file ({error})", path) from None
    stack, classes = np.concatenate(images), np.concatenate(labels)
    count = int(classes.max()) + 1 if len(classes) else 0
    names = MEDMNIST_CLASS_NAMES.get(medmnist_name(path), tuple(str(i) for i in range(count)))
    if count > len(names):
        raise DataError(f"label {count - 1} is beyond the {len(names)} classes of {medmnist_name(path)}", path)
    subjects = [f"{medmnist_name(path)}:{source.split('#')[-1]}" for source in sources]
    builder = SliceBuilder(config, mapping=_medmnist_mapping(stack))
    builder.add_images(stack, (1.0, 1.0), subjects, sources, classes.tolist())
    return builder.finish(True, names)


def _medmnist_arrays(images: np.ndarray, labels: np.ndarray, split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Checks one split's arrays; RGB sets (e.g. PathMNIST) become grey by ITU-R 601 luma."""
    if images.ndim == 4 and images.shape[-1] in (1, 3, 4):
        images = images[..., 0] if images.shape[-1] == 1 else images[..., :3] @ np.array([0.299, 0.587, 0.114])
    if images.ndim != 3:
        problem = f"{split}_images has shape {images.shape}; only 2D MedMNIST sets are supported (3D sets are not)"
        raise DataError(problem, path)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        problem = f"{split}_labels has shape {labels.shape}; multi-label sets (e.g. ChestMNIST) are not supported"
        raise DataError(problem, path)
    if len(labels) != len(images):
        raise DataError(f"{split}_images has {len(images)} images but {split}_labels has {len(labels)} labels", path)
    if len(labels) and labels.min() < 0:
        raise DataError(f"{split}_labels has a negative label {labels.min()}", path)
    return images, labels.astype(np.int64)


def _medmnist_mapping(images: np.ndarray) -> IntensityMapping:
    """Identity over the stored grey range: [0, 255] for 8-bit files, [0, 1] for float files in that range."""
    if images.dtype == np.uint8 or images.max() > 1.0:
        return IntensityMapping("identity", 0.0, 255.0, "a.u.")
    return IntensityMapping("identity", 0.0, 1.0, "a.u.")


def download_medmnist(name: str, dest: str | Path, size: int = 28, timeout: float = 60.0) -> Path:
    """Downloads a MedMNIST ``.npz`` from Zenodo (only when called; nothing in medgan calls it by default).

    Args:
        name: dataset name, e.g. ``"organamnist"``.
        dest: folder to write ``{name}.npz`` (or ``{name}_{size}.npz``) into; an existing file is kept.
        size: image size: 28 (MedMNIST v2) or 64, 128, 224 (MedMNIST+).
        timeout: seconds to wait for the server.

    Returns:
        The path of the file.

    Raises:
        DataError: network failure or a checksum mismatch.
    """
    from medgan.utils import atomic_write_bytes

    name = name.lower()
    if size not in (28, 64, 128, 224):
        raise ConfigError(f"MedMNIST size must be 28, 64, 128 or 224, got {size}")
    filename = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
    path = Path(dest) / filename
    if path.is_file():
        return path
    url = MEDMNIST_URL.format(name=name) if size == 28 else MEDMNIST_SIZED_URL.format(name=name, size=size)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"cannot download {url} ({error})", path) from None
    expected = MEDMNIST_MD5.get(name) if size == 28 else None
    if expected and hashlib.md5(payload).hexdigest() != expected:
        raise DataError(f"download of {url} is corrupt (MD5 mismatch)", path)
    atomic_write_bytes(path, payload)
    return path
