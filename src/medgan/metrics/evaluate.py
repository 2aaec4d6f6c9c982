"""``medgan evaluate``: load real, synthetic and training images, compute every metric, write the report.

Inputs (each resolved to ``[N, 1, R, R]`` float32 in [-1, 1] at one resolution R):

* real: an embedded source name (``"mni152"``), a file or folder read by ``medgan.data.load_slices``, or a run
  directory, whose own data config (``config.yaml``) is used.
* synthetic: a run directory (images are generated with ``medgan.sampling.generate``) or a folder of images:
  PNG/TIFF (8- or 16-bit, full scale = +1, as ``medgan export`` writes), ``.npy``/``.npz`` stacks ([N, H, W] or
  [N, 1, H, W]; values in [-1, 1] are taken as model units, others as physical units, decoded with the
  sidecar mapping if one exists or else the real set's mapping), NIfTI/DICOM (physical units, slices along z).
* training images for the memorization audit: ``train`` if given (then the real set is the held-out
  baseline), else the real set itself (leave-one-out baseline).

Outputs: ``out/metrics.json`` and ``out/report.html`` (self-contained), both written atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medgan.errors import DataError, MedganError
from medgan.metrics.diversity import diversity
from medgan.metrics.features import (DEFAULT_FEATURES, FeatureExtractor, cached_features, check_images,
                                     content_hash, extract_features, get_extractor)
from medgan.metrics.fid import fid
from medgan.metrics.image import no_reference_comparison, unpaired_similarity
from medgan.metrics.intensity import intensity_fidelity
from medgan.metrics.kid import kid
from medgan.metrics.memorization import MemorizationAudit, memorization_audit
from medgan.metrics.prdc import prdc
from medgan.utils import atomic_write_text

GENERATED_IMAGES = 1000  # synthetic images drawn from a run directory when max_images is not given
SAMPLE_SEED = 0  # noise seed for generated images and subsets
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
TRAINING_KID_SUBSETS = 20  # fewer subsets keep training_score fast
SIMILARITY_PAIRS = 500  # random pairs per SSIM/MS-SSIM/PSNR distribution
DIVERSITY_PAIRS = 500  # random pairs per set for pairwise MS-SSIM
PICTURE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class MetricInfo:
    """One row of the report's metrics table."""

    key: str  # dotted path into metrics.json
    label: str
    better: str  # "lower", "higher", "≈ 1", "≈ real–real", ...
    definition: str
    context: tuple[tuple[str, str], ...] = ()  # (label, dotted key) of numbers shown beside the value


_UNPAIRED = "image_quality.unpaired"
_NO_REFERENCE = "image_quality.no_reference"

METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("distribution.fid", "FID", "lower",
               "Fréchet distance between Gaussians fitted to real and synthetic features (means and covariances)."),
    MetricInfo("distribution.kid_mean", "KID", "lower",
               "Unbiased MMD² with kernel (x·y/D + 1)³, mean over random subsets; about 0 when distributions match.",
               (("± std", "distribution.kid_std"),)),
    MetricInfo("distribution.precision", "Precision", "higher",
               "Fraction of synthetic features inside the real k-NN manifold (k = 5): fidelity."),
    MetricInfo("distribution.recall", "Recall", "higher",
               "Fraction of real features inside the synthetic k-NN manifold (k = 5): diversity."),
    MetricInfo("distribution.density", "Density", "higher (≈ 1 when matched)",
               "Mean number of real k-NN balls holding a synthetic feature, divided by k: outlier-robust fidelity."),
    MetricInfo("distribution.coverage", "Coverage", "higher",
               "Fraction of real features whose k-NN ball holds a synthetic feature: outlier-robust diversity."),
    MetricInfo(f"{_UNPAIRED}.ssim.real_synthetic.mean", "SSIM real–synthetic", "≈ real–real",
               "Mean SSIM (11 px Gaussian window, σ 1.5) over random real–synthetic pairs; unpaired sets have no "
               "true pairs, so it is read against random real–real pairs.",
               (("real–real", f"{_UNPAIRED}.ssim.real_real.mean"),)),
    MetricInfo(f"{_UNPAIRED}.ms_ssim.real_synthetic.mean", "MS-SSIM real–synthetic", "≈ real–real",
               "Mean multi-scale SSIM over random real–synthetic pairs (3 scales at 64 px, 5 from 176 px).",
               (("real–real", f"{_UNPAIRED}.ms_ssim.real_real.mean"),)),
    MetricInfo(f"{_UNPAIRED}.psnr.real_synthetic.mean", "PSNR real–synthetic (dB)", "≈ real–real",
               "Mean 10·log10(1/MSE) on the [0, 1] display scale over random real–synthetic pairs.",
               (("real–real", f"{_UNPAIRED}.psnr.real_real.mean"),)),
    MetricInfo(f"{_NO_REFERENCE}.snr.wasserstein", "SNR distribution gap", "lower",
               "1-D Wasserstein distance between per-image SNR (foreground mean / std, display scale) of real and "
               "synthetic images.",
               (("real", f"{_NO_REFERENCE}.snr.real.mean"), ("synthetic", f"{_NO_REFERENCE}.snr.synthetic.mean"))),
    MetricInfo(f"{_NO_REFERENCE}.rms_contrast.wasserstein", "RMS-contrast distribution gap", "lower",
               "1-D Wasserstein distance between per-image RMS contrast (std of display intensities).",
               (("real", f"{_NO_REFERENCE}.rms_contrast.real.mean"),
                ("synthetic", f"{_NO_REFERENCE}.rms_contrast.synthetic.mean"))),
    MetricInfo(f"{_NO_REFERENCE}.cnr.wasserstein", "CNR distribution gap", "lower",
               "1-D Wasserstein distance between per-image CNR |μfg − μbg| / √(σfg² + σbg²) (foreground: x > −0.9).",
               (("real", f"{_NO_REFERENCE}.cnr.real.mean"), ("synthetic", f"{_NO_REFERENCE}.cnr.synthetic.mean"))),
    MetricInfo("intensity.wasserstein", "Intensity W1, all pixels", "lower",
               "1-D Wasserstein distance between real and synthetic pixel-intensity histograms, in physical units.",
               (("unit", "intensity.unit"),)),
    MetricInfo("intensity.wasserstein_foreground", "Intensity W1, foreground", "lower",
               "The same over foreground pixels only (model value > −0.9), in physical units.",
               (("real mean", "intensity.real_foreground.mean"),
                ("synthetic mean", "intensity.synthetic_foreground.mean"))),
    MetricInfo("diversity.synthetic_ms_ssim.mean", "Pairwise MS-SSIM, synthetic", "≈ real (higher = less diverse)",
               "Mean MS-SSIM over random pairs of distinct synthetic images.",
               (("real", "diversity.real_ms_ssim.mean"),)),
    MetricInfo("diversity.relative_diversity", "Relative diversity", "≈ 1 (< 0.5 flags collapse)",
               "(1 − pairwise MS-SSIM synthetic) / (1 − pairwise MS-SSIM real): the share of real dissimilarity kept.",
               (("collapse", "diversity.collapse"),)),
    MetricInfo("diversity.synthetic_ms_ssim.duplicate_fraction", "Duplicate pairs, synthetic", "≈ real (lower)",
               "Share of random synthetic pairs with MS-SSIM ≥ 0.95; more than 0.1 above the real share flags "
               "collapse onto a few modes.",
               (("real", "diversity.real_ms_ssim.duplicate_fraction"),)),
    MetricInfo("memorization.near_copy_fraction", "Near-copy fraction", "lower (read against baseline)",
               "Fraction of synthetic images whose nearest training image has SSIM ≥ 0.95.",
               (("baseline", "memorization.baseline_near_copy_fraction"),)),
    MetricInfo("memorization.nearest_ssim.median", "Nearest-training SSIM, median", "≈ baseline (higher = copying)",
               "Median over synthetic images of the SSIM to their nearest training image.",
               (("baseline", "memorization.baseline_nearest_ssim.median"),)),
    MetricInfo("memorization.nearest_feature_distance.median", "Nearest-training feature distance, median",
               "≈ baseline (lower = copying)",
               "Median over synthetic images of the feature distance to the nearest training image.",
               (("baseline", "memorization.baseline_nearest_feature_distance.median"),)),
)


@dataclass
class ImageSet:
    """A resolved image set: images in [-1, 1], how to go back to physical units, and where it came from."""

    images: torch.Tensor
    mapping: Any  # medgan.data.IntensityMapping or None
    description: str
    run_dir: Path | None = None


@dataclass
class Artefacts:
    """Everything the report shows besides the numbers."""

    real: torch.Tensor
    fake: torch.Tensor
    train: torch.Tensor
    audit: MemorizationAudit | None = None
    histogram: dict | None = None
    notes: list[str] = field(default_factory=list)
    interpolation: torch.Tensor | None = None
    losses: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------
# public entry points


def evaluate(real: str | Path, fake: str | Path, out: str | Path, features: str = DEFAULT_FEATURES,
             train: str | Path | None = None, data_config: Any = None, progress: bool = True,
             max_images: int | None = None) -> dict:
    """Evaluates synthetic images against real ones and writes ``metrics.json`` and ``report.html``.

    Args:
        real: embedded source name, data path, or run directory (its training data).
        fake: folder of synthetic images, or run directory (images generated from its best checkpoint).
        out: report folder (created).
        features: feature extractor spec (``medgan.metrics.features.get_extractor``).
        train: training images for the memorization audit (default: the real set, leave-one-out baseline).
        data_config: ``medgan.config.DataConfig`` for reading ``real``/``train`` (resolution, axis, windows);
            ignored when ``real`` is a run directory (its own config is used). Default: the synthetic run's data
            config, or defaults at the synthetic images' resolution.
        progress: progress bars.
        max_images: use at most this many images per set (random subset) and generate this many from a run.

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        MedganError: bad paths, unreadable or mismatched images, unknown feature extractor.
    """
    started = time.perf_counter()
    out = Path(out)
    extractor = get_extractor(features)  # fail on a bad name before any slow loading
    if torch.cuda.is_available():  # features are the only heavy network work; everything else stays on the CPU
        extractor = extractor.to("cuda")
    real_set, fake_set, train_set = resolve_inputs(str(real), str(fake), None if train is None else str(train),
                                                   data_config, max_images, progress)
    metrics, artefacts = compute_metrics(real_set.images, fake_set.images, real_set.mapping, extractor,
                                         train=train_set.images if train_set else None, progress=progress)
    metrics["inputs"] = {
        "real": real_set.description, "synthetic": fake_set.description,
        "train": train_set.description if train_set else real_set.description + " (leave-one-out)",
        "real_images": len(real_set.images), "synthetic_images": len(fake_set.images),
        "train_images": len(train_set.images) if train_set else len(real_set.images),
        "resolution": int(real_set.images.shape[-1]), "features": features, "feature_dim": extractor.dim,
        "mapping": real_set.mapping.to_dict() if real_set.mapping is not None else None,
    }
    _add_run_extras(artefacts, fake_set.run_dir or real_set.run_dir, fake_set.run_dir)
    metrics["timings_s"]["total"] = time.perf_counter() - started
    write_outputs(out, metrics, artefacts)
    return metrics


def training_score(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Fast in-training score with the offline features (about 1-2 s for 500 vs 500 images at 64 px).

    Args:
        real: [N_r, 1, R, R] in [-1, 1] (more than 64 images, the feature dimension).
        fake: [N_f, 1, R, R] in [-1, 1] (more than 64 images).

    Returns:
        ``{"fid", "kid", "precision", "recall", "density", "coverage"}``; ``fid`` (lower is better) picks the
        best checkpoint.

    Raises:
        DataError: empty or malformed sets, or 64 images or fewer in a set (FID undefined).
    """
    extractor = _offline_extractor()
    real_features = extract_features(real.detach().float().cpu(), extractor, what="real images")
    fake_features = extract_features(fake.detach().float().cpu(), extractor, what="synthetic images")
    kid_mean, _ = kid(real_features, fake_features, subsets=TRAINING_KID_SUBSETS, subset_size=KID_SUBSET_SIZE)
    return {"fid": fid(real_features, fake_features), "kid": kid_mean, **prdc(real_features, fake_features)}


def _offline_extractor() -> FeatureExtractor:
    return get_extractor(DEFAULT_FEATURES)


# --------------------------------------------------------------------------------------------------------
# metrics


def compute_metrics(real: torch.Tensor, fake: torch.Tensor, mapping: Any, extractor: FeatureExtractor,
                    train: torch.Tensor | None = None, progress: bool = False) -> tuple[dict, Artefacts]:
    """Every metric of the report on image tensors.

    Args:
        real: [N_r, 1, R, R] in [-1, 1].
        fake: [N_f, 1, R, R] in [-1, 1].
        mapping: the data's IntensityMapping (physical units); None reports intensities in model units.
        extractor: feature space for FID/KID/PRDC and the feature side of the memorization audit.
        train: training images for the audit; when they differ from ``real``, the real images are the held-out
            baseline of the audit. Default: ``real`` itself, with a leave-one-out baseline.
        progress: progress bars.

    Returns:
        (JSON-ready metrics dict, artefacts for the report).
    """
    check_images(real, "real images")
    check_images(fake, "synthetic images")
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"real and synthetic images differ in shape: {tuple(real.shape[1:])} vs "
                        f"{tuple(fake.shape[1:])}")
    train = real if train is None else train
    timings: dict[str, float] = {}
    artefacts = Artefacts(real=real, fake=fake, train=train)

    def timed(name: str, function: Callable[[], Any]) -> Any:
        begin = time.perf_counter()
        result = function()
        timings[name] = time.perf_counter() - begin
        return result

    real_features = timed("features_real", lambda: cached_features(real, extractor, progress=progress, what="real"))
    fake_features = timed("features_synthetic",
                          lambda: extract_features(fake, extractor, progress=progress, what="synthetic"))
    same_train = train is real or (train.shape == real.shape and content_hash(train) == content_hash(real))
    train_features = real_features if same_train else timed(
        "features_train", lambda: cached_features(train, extractor, progress=progress, what="train"))
    metrics: dict[str, Any] = {
        "distribution": timed("distribution", lambda: _distribution(real_features, fake_features, artefacts.notes)),
        "image_quality": timed("image_quality", lambda: {
            "unpaired": unpaired_similarity(real, fake, pairs=SIMILARITY_PAIRS, seed=SAMPLE_SEED),
            "no_reference": no_reference_comparison(real, fake),
        }),
        "diversity": timed("diversity", lambda: diversity(real, fake, pairs=DIVERSITY_PAIRS, seed=SAMPLE_SEED)),
    }
    intensity = timed("intensity", lambda: intensity_fidelity(real, fake, mapping or _unit_mapping()))
    artefacts.histogram = intensity.pop("histogram")
    metrics["intensity"] = intensity
    audit = timed("memorization", lambda: memorization_audit(
        train, train_features, fake, fake_features, heldout=None if same_train else real,
        heldout_features=None if same_train else real_features, seed=SAMPLE_SEED))
    artefacts.audit = audit
    metrics["memorization"] = audit.summary()
    metrics["headline"] = headline(metrics)
    metrics["notes"] = artefacts.notes
    metrics["timings_s"] = timings
    return metrics, artefacts


def _distribution(real_features: torch.Tensor, fake_features: torch.Tensor, notes: list[str]) -> dict:
    results: dict[str, Any] = {}
    try:
        results["fid"] = fid(real_features, fake_features)
    except DataError as error:  # too few images for the feature dimension: say so, keep the other metrics
        results["fid"] = None
        notes.append(f"FID not computed: {error.message}")
    kid_mean, kid_std = kid(real_features, fake_features, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE,
                            seed=SAMPLE_SEED)
    results.update(kid_mean=kid_mean, kid_std=kid_std,
                   kid_subset_size=min(KID_SUBSET_SIZE, len(real_features), len(fake_features)),
                   kid_subsets=KID_SUBSETS)
    try:
        results.update(prdc(real_features, fake_features, k=5))
    except DataError as error:
        notes.append(f"precision/recall/density/coverage not computed: {error.message}")
    return results


def _unit_mapping() -> Any:
    from medgan.data.intensity import IntensityMapping

    return IntensityMapping("identity", -1.0, 1.0, "model units")


def lookup(metrics: dict, key: str) -> Any:
    """The value at a dotted ``key`` of a nested dict, or None."""
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def headline(metrics: dict) -> dict[str, float | None]:
    """Flat ``{dotted key: value}`` of the metrics table rows (``METRICS`` holds their labels and definitions)."""
    return {info.key: lookup(metrics, info.key) for info in METRICS}


# --------------------------------------------------------------------------------------------------------
# inputs


def is_run_dir(path: str | Path) -> bool:
    """True for a ``medgan train`` run directory (``config.yaml`` beside ``checkpoints/``)."""
    path = Path(path)
    return (path / "config.yaml").is_file() and (path / "checkpoints").is_dir()


def run_config(run_dir: Path) -> Any:
    """The validated RunConfig of a run directory."""
    from medgan.config import from_dict, load_yaml

    return from_dict(load_yaml(run_dir / "config.yaml"))


def resolve_inputs(real: str, fake: str, train: str | None, data_config: Any, max_images: int | None,
                   progress: bool) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    """Loads the real, synthetic and (optional) training sets at one resolution."""
    fake_path = Path(str(fake)).expanduser()
    if not fake_path.exists():
        raise DataError("synthetic images not found", fake_path)
    fake_is_run = is_run_dir(fake_path)
    raw_fake = None if fake_is_run else read_image_folder(fake_path)
    config = _data_config(real, data_config, fake_path if fake_is_run else None, raw_fake)
    real_set = _load_real(real, config, progress)
    resolution = int(real_set.images.shape[-1])
    if fake_is_run:
        fake_set = _generate(fake_path, max_images or GENERATED_IMAGES, resolution)
    else:
        fake_set = ImageSet(_to_unit_stack(raw_fake, real_set.mapping, resolution, fake_path), real_set.mapping,
                            str(fake_path))
    train_set = None
    if train is not None:
        train_set = _load_real(train, config, progress)
        if train_set.images.shape[-1] != resolution:
            side = train_set.images.shape[-1]
            raise DataError(f"training images are {side} px but real images {resolution} px", train)
    for image_set in (real_set, fake_set, train_set):
        if image_set is not None and max_images is not None:
            image_set.images = _subset(image_set.images, max_images)
    return real_set, fake_set, train_set


def _data_config(real: str, data_config: Any, fake_run: Path | None, raw_fake: list | None) -> Any:
    """The DataConfig used to read ``real``: given, the real run's, or defaults at the synthetic resolution."""
    from medgan.config import RESOLUTIONS, DataConfig

    if is_run_dir(real):
        return run_config(Path(real)).data
    if data_config is not None:
        return replace(data_config, source=str(real))
    if fake_run is not None:
        return replace(run_config(fake_run).data, source=str(real))
    side = max(raw_fake[0][0].shape) if raw_fake else 64
    return DataConfig(source=str(real), resolution=side if side in RESOLUTIONS else 64)


def _load_real(source: str, config: Any, progress: bool) -> ImageSet:
    from medgan.data import load_slices

    if is_run_dir(source):
        run_dir = Path(source)
        slices = load_slices(run_config(run_dir).data, progress=progress)
        return ImageSet(slices.images, slices.mapping, f"{run_dir} (training data)", run_dir)
    slices = load_slices(replace(config, source=str(source)), progress=progress)
    return ImageSet(slices.images, slices.mapping, str(source))


def _generate(run_dir: Path, count: int, resolution: int) -> ImageSet:
    from medgan.sampling import generate  # imported here: sampling pulls in the training stack

    images, mapping = generate(run_dir, count, seed=SAMPLE_SEED)
    images = images.detach().float().cpu()
    if images.ndim != 4 or images.shape[1] != 1:
        raise DataError(f"the run generates {tuple(images.shape[1:])} images; evaluation needs one channel", run_dir)
    if images.shape[-1] != resolution:
        raise DataError(f"the run generates {images.shape[-1]} px images but real images are {resolution} px", run_dir)
    return ImageSet(images.clamp(-1.0, 1.0), mapping, f"{run_dir} ({count} generated, seed {SAMPLE_SEED})", run_dir)


def _subset(images: torch.Tensor, count: int) -> torch.Tensor:
    if count < 1:
        raise DataError(f"max_images must be at least 1, got {count}")
    if images.shape[0] <= count:
        return images
    pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(SAMPLE_SEED))[:count]
    return images[pick.sort().values]


# Synthetic image folders -------------------------------------------------------------------------------


def read_image_folder(path: Path) -> list[tuple[np.ndarray, bool, Any]]:
    """Reads synthetic images: a list of (2D array, is_physical, sidecar mapping or None).

    Raises:
        DataError: no readable images, or an unreadable file.
    """
    from medgan.data.readers import discovered_items

    images: list[tuple[np.ndarray, bool, Any]] = []
    for item in discovered_items(path):
        suffix = item.name.lower()
        if item.is_file() and suffix.endswith(PICTURE_SUFFIXES):
            images.append((_read_picture_unit(item), False, None))
        elif item.is_file() and suffix.endswith((".npy", ".npz")):
            images.extend(_read_numpy_stack(item))
        else:
            images.extend((array, True, None) for array in _read_physical_slices(item))
    if not images:
        raise DataError("no synthetic images found", path)
    return images


def _read_picture_unit(path: Path) -> np.ndarray:
    """A PNG/TIFF as model units: 8-bit 0..255 or 16-bit 0..65535 -> [-1, 1] (colour -> grey luminance)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "F"):
                image = image.convert("L")  # ITU-R 601 luma, documented: synthetic images should be grey
            full_scale = 255.0 if image.mode == "L" else 65535.0
            if image.mode == "F":
                full_scale = 1.0
            pixels = np.asarray(image, dtype=np.float64)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot read image ({str(error).splitlines()[0]})", path) from None
    return (pixels / full_scale * 2.0 - 1.0).astype(np.float32)


def _read_numpy_stack(path: Path) -> list[tuple[np.ndarray, bool, Any]]:
    from medgan.data.intensity import IntensityMapping

    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                array = loaded["image" if "image" in loaded.files else loaded.files[0]]
        else:
            array = loaded
        array = np.asarray(array, dtype=np.float32)
    except (OSError, ValueError, IndexError, KeyError) as error:
        raise DataError(f"cannot read NumPy file ({str(error).splitlines()[0]})", path) from None
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"a synthetic NumPy stack must be [N, H, W] or [N, 1, H, W], got {array.shape}", path)
    if not np.isfinite(array).all():
        raise DataError("NaN or Inf values", path)
    sidecar = path.with_suffix(".json")
    mapping = None
    if sidecar.is_file():
        try:
            stored = json.loads(sidecar.read_text(encoding="utf-8")).get("mapping")
            mapping = IntensityMapping.from_dict(stored) if stored else None
        except (json.JSONDecodeError, AttributeError):
            mapping = None
    physical = mapping is not None or array.min() < -1.0 - 1e-4 or array.max() > 1.0 + 1e-4
    return [(image, physical, mapping) for image in array]


def _read_physical_slices(path: Path) -> list[np.ndarray]:
    """NIfTI/DICOM in physical units -> display-oriented 2D slices (3D stacks: one slice per z index)."""
    from medgan.data.readers import read_volume
    from medgan.data.slicing import to_canonical, upright_slices

    volume = to_canonical(read_volume(path))
    return list(upright_slices(volume.array, axis=2))


def _to_unit_stack(raw: list[tuple[np.ndarray, bool, Any]], mapping: Any, resolution: int, path: Path) -> torch.Tensor:
    """Synthetic 2D arrays -> [N, 1, R, R] in [-1, 1] (physical values through their mapping)."""
    from medgan.data.slicing import fit_slices

    tiles = []
    for array, physical, own_mapping in raw:
        if physical:
            decoder = own_mapping or mapping
            if decoder is None:
                raise DataError("synthetic images are in physical units but no intensity mapping is known", path)
            array = decoder.to_unit(array.astype(np.float32))
        unit = np.clip(array, -1.0, 1.0).astype(np.float32)
        if unit.shape != (resolution, resolution):
            fitted, _ = fit_slices(unit[None], (1.0, 1.0), resolution, "resize")
            tiles.append(fitted)
        else:
            tiles.append(torch.from_numpy(unit)[None, None])
    return torch.cat(tiles)


# --------------------------------------------------------------------------------------------------------
# run extras and outputs


def _add_run_extras(artefacts: Artefacts, run_dir: Path | None, generator_run: Path | None) -> None:
    """Loss curves and metric history of a run, and a latent interpolation strip when a generator is given."""
    from medgan.visuals import read_jsonl

    if run_dir is None:
        return
    artefacts.losses = read_jsonl(run_dir / "losses.jsonl")
    artefacts.history = read_jsonl(run_dir / "metrics.jsonl")
    if generator_run is not None:
        try:
            from medgan.sampling import interpolate

            strips = interpolate(generator_run, steps=8, rows=3, seed=SAMPLE_SEED)
            artefacts.interpolation = strips.detach().float().cpu()
        except (MedganError, ImportError, AttributeError) as error:
            artefacts.notes.append(f"latent interpolation not available: {error}")


def _json_ready(value: Any) -> Any:
    """Replaces NaN/Inf by None and NumPy scalars by Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_outputs(out: Path, metrics: dict, artefacts: Artefacts) -> None:
    """Writes ``metrics.json`` and ``report.html`` into ``out`` atomically."""
    from medgan.report.html import render_report

    clean = _json_ready(metrics)
    metrics.clear()
    metrics.update(clean)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "report.html", render_report(metrics, artefacts, METRICS))
