"""The metric suite: every number of the evaluation report from image tensors, and the fast in-training score.

* ``compute_metrics(real, fake, mapping, extractor, train=None)``: distribution (FID, KID, precision/recall,
  density/coverage, FID-infinity where N allows), image quality (SSIM/MS-SSIM/PSNR, SNR/contrast/CNR),
  diversity, intensity fidelity, the memorization audit, the power spectrum, radiomic texture and FRD; 95%
  intervals on the headline numbers (``medgan.metrics.intervals``; the ``<key>_interval`` scheme of
  ``medgan.metrics.catalog``) and the small-N warning (``medgan.metrics.fid_infinity``); tensors in, a JSON-ready
  dict and the report's artefacts out. No files except the feature cache.
* ``training_score(real, fake)``: FID/KID/PRDC with the offline features, to pick the best checkpoint (no
  intervals: it runs every few hundred steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics import image_intervals, intervals
from medgan.metrics.bootstrap import RESAMPLES
from medgan.metrics.catalog import headline, set_interval
from medgan.metrics.diversity import diversity_of_pairs, pair_values
from medgan.metrics.feature_cache import cached_features, content_hash
from medgan.metrics.features import DEFAULT_FEATURES, FeatureExtractor, check_images, extract_features, get_extractor
from medgan.metrics.fid import fid
from medgan.metrics.fid_infinity import fid_infinity, fid_infinity_plan, small_n_warning
from medgan.metrics.image import (no_reference_comparison, no_reference_values, random_pair_scores,
                                  summarize_pair_scores)
from medgan.metrics.intensity import intensity_fidelity
from medgan.metrics.kid import kid, subset_size_for
from medgan.metrics.memorization import MemorizationAudit, memorization_audit
from medgan.metrics.prdc import prdc
from medgan.metrics.sections import radiomic_sections, spectrum_section

SAMPLE_SEED = 0  # seed of random pairs, KID subsets and the audit (evaluation also generates with it)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # the largest KID subset (torch-fidelity's); smaller sets use half their size (kid.py)
TRAINING_KID_SUBSETS = 20  # fewer subsets keep training_score fast
SIMILARITY_PAIRS = 500  # random pairs per SSIM/MS-SSIM/PSNR distribution
DIVERSITY_PAIRS = 500  # random pairs per set for pairwise MS-SSIM
INTERVAL_RESAMPLES = RESAMPLES  # resamples per interval (medgan.metrics.intervals may cut expensive ones)


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
                    train: torch.Tensor | None = None, progress: bool = False, real_subjects: Sequence | None = None,
                    resamples: int | None = None) -> tuple[dict, Artefacts]:
    """Every metric of the report on image tensors, with 95% intervals on the headline numbers.

    Args:
        real: [N_r, 1, R, R] in [-1, 1].
        fake: [N_f, 1, R, R] in [-1, 1].
        mapping: the data's IntensityMapping (physical units); None reports intensities in model units.
        extractor: feature space for FID/KID/PRDC and the feature side of the memorization audit.
        train: training images for the audit; when they differ from ``real``, the real images are the held-out
            baseline of the audit. Default: ``real`` itself, with a leave-one-out baseline.
        progress: progress bars.
        real_subjects: one subject label per real image: intervals resample real subjects (when there are enough,
            ``medgan.metrics.intervals.real_resampling``); None resamples real images.
        resamples: resamples per interval (default ``INTERVAL_RESAMPLES``).

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
    how = intervals.real_resampling(real_subjects, len(real), resamples or INTERVAL_RESAMPLES, SAMPLE_SEED)

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
    found: dict[str, dict] = {}  # dotted key -> interval entry
    metrics: dict[str, Any] = {
        "distribution": timed("distribution", lambda: _distribution(real_features, fake_features, artefacts.notes,
                                                                    how, found)),
        "image_quality": timed("image_quality", lambda: _image_quality(real, fake, how, found, artefacts.notes)),
        "diversity": timed("diversity", lambda: _diversity(real, fake, how, found, artefacts.notes)),
    }
    mapping = mapping or _unit_mapping()
    intensity = timed("intensity", lambda: intensity_fidelity(real, fake, mapping))
    artefacts.histogram = intensity.pop("histogram")
    metrics["intensity"] = intensity
    timed("intensity_intervals", lambda: _with_intervals(found, artefacts.notes, "intensity", lambda: (
        image_intervals.intensity_intervals(real, fake, mapping, how, intensity))))
    audit = timed("memorization", lambda: memorization_audit(
        train, train_features, fake, fake_features, heldout=None if same_train else real,
        heldout_features=None if same_train else real_features, seed=SAMPLE_SEED))
    artefacts.audit = audit
    metrics["memorization"] = audit.summary()
    timed("memorization_intervals", lambda: _with_intervals(found, artefacts.notes, "memorization",
                                                            lambda: intervals.memorization_intervals(audit, how)))
    metrics["spectrum"] = timed("spectrum", lambda: spectrum_section(real, fake, how, artefacts.notes))
    metrics.update(timed("radiomics", lambda: radiomic_sections(real, fake, how, artefacts.notes)))
    for key, entry in found.items():
        set_interval(metrics, key, entry)
    _small_n(metrics, len(real), len(fake), int(real_features.shape[1]), artefacts.notes)
    cut = intervals.normal_note(found)
    if cut:
        artefacts.notes.append(cut)
    metrics["resampling"] = how.describe(len(real), len(fake))
    if how.note:
        artefacts.notes.append(f"intervals: {how.note}")
    metrics["headline"] = headline(metrics)
    metrics["notes"] = artefacts.notes
    metrics["timings_s"] = timings
    return metrics, artefacts


def _small_n(metrics: dict, n_real: int, n_fake: int, dim: int, notes: list[str]) -> None:
    """The small-N warning (``small_n`` section and a note) and, where it cannot be fitted, why FID-infinity is
    missing."""
    warning = small_n_warning(n_real, n_fake, dim)
    metrics["small_n"] = {"flagged": warning is not None, "message": warning, "n_real": n_real,
                          "n_synthetic": n_fake, "feature_dim": dim}
    if warning:
        notes.insert(0, f"warning: {warning}")
    _, why = fid_infinity_plan(n_real, n_fake, dim)
    if why and metrics["distribution"].get("fid") is not None:
        metrics["distribution"]["fid_infinity_note"] = why
        notes.append(why)


def _with_intervals(found: dict[str, dict], notes: list[str], what: str, compute: Callable[[], dict]) -> None:
    """Adds the interval entries ``compute`` returns; an interval undefined on these sets becomes a note."""
    try:
        entries = compute()
    except DataError as error:
        notes.append(f"{what} interval not computed: {error.message}")
        return
    undefined = [key for key, entry in entries.items() if not np.isfinite([entry["low"], entry["high"]]).all()]
    if undefined:
        notes.append(f"{what} interval not computed: the metric is undefined on too many resamples of these sets")
    found.update({key: entry for key, entry in entries.items() if key not in undefined})


def _distribution(real_features: torch.Tensor, fake_features: torch.Tensor, notes: list[str],
                  how: intervals.Resampling, found: dict[str, dict]) -> dict:
    results: dict[str, Any] = {}
    real, fake = real_features.double().numpy(), fake_features.double().numpy()
    try:
        results["fid"] = fid(real_features, fake_features)
    except DataError as error:  # too few images for the feature dimension: say so, keep the other metrics
        results["fid"] = None
        notes.append(f"FID not computed: {error.message}")
    else:
        _with_intervals(found, notes, "FID", lambda: {"distribution.fid": intervals.fid_interval(real, fake, how)})
        with intervals.one_thread(real.shape[1] <= 256):
            results["fid_infinity"] = fid_infinity(real, fake, seed=SAMPLE_SEED)
    size = subset_size_for(len(real), len(fake), KID_SUBSET_SIZE)
    kid_mean, kid_std = kid(real_features, fake_features, subsets=KID_SUBSETS, subset_size=size, seed=SAMPLE_SEED)
    results.update(kid_mean=kid_mean, kid_std=kid_std, kid_subset_size=size, kid_subsets=KID_SUBSETS,
                   kid_subset_rule=f"min({KID_SUBSET_SIZE}, min(N_real, N_synthetic) // 2)")
    _with_intervals(found, notes, "KID",
                    lambda: {"distribution.kid_mean": intervals.kid_interval(real, fake, how, kid_mean)})
    try:
        results.update(prdc(real_features, fake_features, k=5))
    except DataError as error:
        notes.append(f"precision/recall/density/coverage not computed: {error.message}")
    else:
        _with_intervals(found, notes, "precision/recall/density/coverage", lambda: {
            f"distribution.{name}": entry
            for name, entry in intervals.prdc_intervals(real, fake, how, results).items()})
    return results


def _image_quality(real: torch.Tensor, fake: torch.Tensor, how: intervals.Resampling, found: dict[str, dict],
                   notes: list[str]) -> dict:
    scores = random_pair_scores(real, fake, pairs=SIMILARITY_PAIRS, seed=SAMPLE_SEED)
    values = (no_reference_values(real), no_reference_values(fake))
    section = {"random_pairs": summarize_pair_scores(scores),
               "no_reference": no_reference_comparison(real, fake, values)}
    _with_intervals(found, notes, "random-pair similarity", lambda: image_intervals.random_pair_intervals(
        scores, len(real), len(fake), how, section["random_pairs"]))
    _with_intervals(found, notes, "SNR/contrast/CNR", lambda: image_intervals.no_reference_intervals(
        *values, how, section["no_reference"]))
    return section


def _diversity(real: torch.Tensor, fake: torch.Tensor, how: intervals.Resampling, found: dict[str, dict],
               notes: list[str]) -> dict:
    real_pairs = pair_values(real, DIVERSITY_PAIRS, SAMPLE_SEED)
    fake_pairs = pair_values(fake, DIVERSITY_PAIRS, SAMPLE_SEED + 1)  # the seeds of ``diversity``
    _with_intervals(found, notes, "diversity", lambda: intervals.diversity_intervals(real_pairs, fake_pairs, how))
    return diversity_of_pairs(real_pairs, fake_pairs)


def _unit_mapping() -> Any:
    from medgan.data.intensity import IntensityMapping

    return IntensityMapping("identity", -1.0, 1.0, "model units")
