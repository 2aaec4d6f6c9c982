"""The metric suite: every number of the evaluation report from image tensors, and the fast in-training score.

* ``compute_metrics(real, fake, mapping, extractor, train=None)``: distribution (FID, KID, precision/recall,
  density/coverage), image quality (SSIM/MS-SSIM/PSNR, SNR/contrast/CNR), diversity, intensity fidelity and the
  memorization audit; tensors in, a JSON-ready dict and the report's artefacts out. No files except the feature
  cache.
* ``training_score(real, fake)``: FID/KID/PRDC with the offline features, to pick the best checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from medgan.errors import DataError
from medgan.metrics.catalog import headline
from medgan.metrics.diversity import diversity
from medgan.metrics.feature_cache import cached_features, content_hash
from medgan.metrics.features import DEFAULT_FEATURES, FeatureExtractor, check_images, extract_features, get_extractor
from medgan.metrics.fid import fid
from medgan.metrics.image import no_reference_comparison, random_pair_similarity
from medgan.metrics.intensity import intensity_fidelity
from medgan.metrics.kid import kid
from medgan.metrics.memorization import MemorizationAudit, memorization_audit
from medgan.metrics.prdc import prdc

SAMPLE_SEED = 0  # seed of random pairs, KID subsets and the audit (evaluation also generates with it)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
TRAINING_KID_SUBSETS = 20  # fewer subsets keep training_score fast
SIMILARITY_PAIRS = 500  # random pairs per SSIM/MS-SSIM/PSNR distribution
DIVERSITY_PAIRS = 500  # random pairs per set for pairwise MS-SSIM


@dataclass
class Artefacts:
    """Everything the report shows besides the numbers.

    ``compute_metrics`` fills the images, audit, histogram and notes; ``medgan.evaluation`` adds the run's
    latent interpolation, losses and metric history.
    """

    real: torch.Tensor
    fake: torch.Tensor
    train: torch.Tensor
    audit: MemorizationAudit | None = None
    histogram: dict | None = None
    notes: list[str] = field(default_factory=list)
    interpolation: torch.Tensor | None = None
    losses: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


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
    extractor = get_extractor(DEFAULT_FEATURES)
    real_features = extract_features(real.detach().float().cpu(), extractor, what="real images")
    fake_features = extract_features(fake.detach().float().cpu(), extractor, what="synthetic images")
    kid_mean, _ = kid(real_features, fake_features, subsets=TRAINING_KID_SUBSETS, subset_size=KID_SUBSET_SIZE)
    return {"fid": fid(real_features, fake_features), "kid": kid_mean, **prdc(real_features, fake_features)}


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
            "random_pairs": random_pair_similarity(real, fake, pairs=SIMILARITY_PAIRS, seed=SAMPLE_SEED),
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
