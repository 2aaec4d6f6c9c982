"""Intervals on the headline metrics of ``compute_metrics``: which resampling each metric gets, and why.

Every interval is a 95% interval of the metric's sampling variability at the evaluated set sizes: the spread the
number would show on another draw of real images and of synthetic samples of the same sizes
(``medgan.metrics.bootstrap``). It is the resampled spread placed around the reported value (``centred``), so it
always contains the value and it does not correct a metric's own small-N bias (FID's, most of all: see
``medgan.metrics.fid_infinity``).

Real images are resampled by subject when at least ``MIN_SUBJECTS`` subjects are known: slices of one patient are
not independent, and resampling them one by one gives intervals that are too narrow. With fewer subjects a
cluster bootstrap has too few clusters to say anything (Cameron, Gelbach & Miller 2008), so images are resampled
and ``Resampling.note`` says so: with the one subject of the embedded MNI template, the intervals cover the choice
of slices, not of patients. Synthetic images are independent draws of the generator and are resampled one by one.

Per metric:

* FID: bootstrap with replacement of feature rows (FID is a smooth function of means and covariances; repeated
  rows are harmless to it, and the extra small-N bias they bring is removed by centring). Each resample takes
  the cheaper exact route of ``fid_of_rows``; where ``WORK_BUDGET`` does not pay for ``RESAMPLES`` of them
  (2048-D Inception features), fewer resamples and a normal interval, said in the entry.
* KID: half-sampling (no repeats: a repeated row would put k(x, x) among the off-diagonal kernel terms of the
  unbiased MMD^2). The kernel is evaluated once between blocks of images (``KernelBlocks``: an image, a subject,
  or above ``MAX_BLOCKS`` a random group of them), so each resample is an exact unbiased MMD^2 of half the
  blocks at a cost independent of N; its spread is centred on the reported KID (the mean over subsets).
* precision, recall, density, coverage: half-sampling. With replacement, a repeated row lies at distance 0 from
  its copy and shrinks every k-NN radius, so precision and recall of a resample would be biased down and their
  spread distorted; a half-sample has no repeats (Politis & Romano 1994). Distances are tabulated once.
* KID and PRDC above ``SUBSET_IMAGES`` images in all: half-samples of a random subset of the same fraction g of
  each set, their spread scaled by sqrt(g) (``Subset``), which bounds the cost at any N (the entry says so).
* diversity (pairwise MS-SSIM, relative diversity, duplicate-pair fraction): the pairs' MS-SSIM values are
  computed once. Images are resampled with replacement (real ones by subject) and each pair weighs
  count(first image) x count(second image): the bootstrap of a mean over pairs that keeps the dependence of pairs
  sharing an image (resampling the pairs themselves would treat them as independent and be too narrow). Pairs
  are of distinct images, so no pair compares an image with itself.
* memorization (near-copy fraction, nearest-training SSIM and feature distance, and their real baselines): the
  training set is fixed, since the audit asks about these patients, not about a draw of them. The per-image
  nearest-neighbour values of the synthetic images and of the baseline queries are computed once and resampled
  with replacement (baseline queries, which are real images, by subject).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from medgan.errors import DataError
from medgan.metrics.bootstrap import CONFIDENCE, NORMAL_BELOW, RESAMPLES, bootstrap
from medgan.metrics.diversity import DUPLICATE_MS_SSIM, PairValues
from medgan.metrics.fid import fid_of_rows
from medgan.metrics.kid import KernelBlocks
from medgan.metrics.memorization import MemorizationAudit
from medgan.metrics.prdc import prdc_of_distances
from medgan.utils import torch_threads

MIN_SUBJECTS = 5  # fewer known subjects than this: images are resampled (a note says so)
MIN_RESAMPLES = 20  # the fewest resamples an expensive metric is cut to (then a normal interval)
WORK_BUDGET = 3e10  # multiply-adds one metric's resamples may take (about 10-30 s on 2 CPU cores)
MAX_BLOCKS = 256  # KID: units (images or subjects) beyond this are merged into random blocks
SMALL_WORK = 1e8  # multiply-adds per resample below which resamples run on one thread (``one_thread``)
SUBSET_IMAGES = 2000  # KID and PRDC resample at most this many images in all (``subset``; tables <= 16 MB)
PRDC_NAMES = ("precision", "recall", "density", "coverage")


@dataclass(frozen=True)
class Resampling:
    """How the intervals of one evaluation resample.

    Attributes:
        resamples: resamples per metric (expensive metrics may take fewer; each entry says how many).
        seed: resampling seed (intervals are reproducible).
        real_groups: one subject index per real image, or None to resample real images one by one.
        note: why real images are resampled one by one, if they are.
    """

    resamples: int = RESAMPLES
    seed: int = 0
    real_groups: np.ndarray | None = None
    note: str = ""

    @property
    def resampled(self) -> str:
        """What the real set's resamples draw: ``"subjects"`` or ``"images"``."""
        return "subjects" if self.real_groups is not None else "images"

    def describe(self, n_real: int, n_fake: int) -> dict[str, Any]:
        """The ``resampling`` section of metrics.json."""
        subjects = None if self.real_groups is None else int(len(np.unique(self.real_groups)))
        return {"confidence": CONFIDENCE, "resamples": self.resamples, "real_resampled": self.resampled,
                "real_subjects": subjects, "n_real": n_real, "n_synthetic": n_fake, "note": self.note,
                "seed": self.seed}


def real_resampling(subjects: Sequence | None, n_real: int, resamples: int = RESAMPLES, seed: int = 0) -> Resampling:
    """Resampling by subject where at least ``MIN_SUBJECTS`` subjects are known, else by image (with a note).

    Args:
        subjects: one subject label per real image, or None when unknown.
        n_real: real images.
        resamples: resamples per metric.
        seed: resampling seed.
    """
    if subjects is None:
        return Resampling(resamples, seed, None, "subjects of the real images are unknown: images are resampled")
    labels = np.asarray([str(subject) for subject in subjects])
    if labels.shape[0] != n_real:
        raise DataError(f"subject labels: {labels.shape[0]} labels for {n_real} real images")
    unique, inverse = np.unique(labels, return_inverse=True)
    if len(unique) < MIN_SUBJECTS:
        noun = "subject" if len(unique) == 1 else "subjects"
        return Resampling(resamples, seed, None,
                          f"the real images come from {len(unique)} {noun} (fewer than {MIN_SUBJECTS}): images are "
                          "resampled, so the intervals cover the choice of slices, not of patients")
    return Resampling(resamples, seed, inverse, "")


@contextlib.contextmanager
def one_thread(enabled: bool = True) -> Iterator[None]:
    """One CPU thread for torch and, where threadpoolctl is installed, for NumPy's BLAS, inside the block.

    Resamples are hundreds of small computations (64 x 64 eigensolvers, 100 x 500 distance tables): starting and
    synchronizing threads for each costs more than it saves, several times more on a busy machine.
    """
    if not enabled:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits  # optional: scikit-learn's dependency, not medgan's
    except ImportError:
        limits: Any = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
    with torch_threads(1), limits:
        yield


def affordable(work: float, resamples: int) -> int:
    """Resamples that ``WORK_BUDGET`` pays for at ``work`` multiply-adds each: between ``MIN_RESAMPLES`` and
    ``resamples``."""
    return int(min(resamples, max(MIN_RESAMPLES, WORK_BUDGET // max(work, 1.0))))


def entry(result: dict, index: int | None = None, **extra: Any) -> dict[str, Any]:
    """The ``<key>_interval`` entry of metrics.json from a ``bootstrap`` result (element ``index`` of an array
    statistic)."""
    pick = (lambda value: value) if index is None else (lambda value: value[index])
    return {"low": pick(result["low"]), "high": pick(result["high"]), "confidence": result["confidence"],
            "method": result["method"], "scheme": result["scheme"], "resamples": result["resamples"],
            "resampled": result["resampled"], "n_real": result["n_real"], "n_fake": result["n_fake"], **extra}


def _run(statistic: Callable, n_real: int, n_fake: int, how: Resampling, resamples: int | None = None,
         scheme: str = "bootstrap", groups: Any = "real") -> dict:
    return bootstrap(statistic, n_real, n_fake, resamples=how.resamples if resamples is None else resamples,
                     seed=how.seed, real_groups=how.real_groups if isinstance(groups, str) else groups,
                     scheme=scheme, centred=True)


def fid_interval(real: np.ndarray, fake: np.ndarray, how: Resampling) -> dict[str, Any]:
    """FID's interval: bootstrap with replacement of feature rows, centred on the FID of the full sets.

    Images, not blocks of them, are resampled at every N: resampling random blocks of images (as KID does) was
    measured to widen FID's interval by about a third at 1,500 images per set, because whole blocks repeat and the
    covariances' small-N bias then varies more between resamples. At 10,000 images per set and 64-D features
    the 200 resamples take about 4 s.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    (n_real, dim), n_fake = real.shape, fake.shape[0]
    work = min(n_real * n_fake * (dim + 4 * min(n_real, n_fake)), (n_real + n_fake) * dim**2 + 10 * dim**3)
    with one_thread(work < SMALL_WORK):  # large eigensolvers (2048-D) do gain from threads
        result = _run(lambda r, f: fid_of_rows(real[r], fake[f]), n_real, n_fake, how,
                      affordable(work, how.resamples))
    result["low"] = max(0.0, result["low"])  # centring can reach below 0, which no FID can
    return entry(result)


def blocks(labels: np.ndarray, seed: int, largest: int = MAX_BLOCKS) -> np.ndarray:
    """Block index per image: its unit (``labels``: image or subject), or a random group of units above
    ``largest`` units."""
    _, units = np.unique(np.asarray(labels), return_inverse=True)
    count = int(units.max()) + 1
    if count <= largest:
        return units
    shuffled = np.random.default_rng(seed).permutation(count)
    return shuffled[units] % largest


@dataclass(frozen=True)
class Subset:
    """The images a costly interval resamples: all of them, or a random fraction g of each set.

    Half-samples of a random subset of s of the n images vary around the subset's value with about the variance of
    the statistic on s images, Var(T_s) = Var(T_n) n / s for a root-n statistic; so their spread, times
    ``scale`` = sqrt(s / n) = sqrt(g), is the spread of the statistic on all n images. Real and synthetic sets get
    the same fraction, so one scale fits both.
    """

    real: np.ndarray  # indices of the real images used
    fake: np.ndarray  # indices of the synthetic images used
    groups: np.ndarray | None  # subject index of each used real image, or None
    scale: float  # multiplies the resampled spread

    def describe(self) -> dict[str, Any]:
        """What an entry records of the subset (empty when every image is used)."""
        return {} if self.scale == 1.0 else {"subset": {"real": len(self.real), "synthetic": len(self.fake),
                                                        "spread_scale": self.scale}}


def subset(n_real: int, n_fake: int, how: Resampling, limit: int = SUBSET_IMAGES) -> Subset:
    """All images up to ``limit`` in all, else the same random fraction of each set (real subjects kept whole)."""
    fraction = min(1.0, limit / float(n_real + n_fake))
    if fraction >= 1.0:
        return Subset(np.arange(n_real), np.arange(n_fake), how.real_groups, 1.0)
    rng = np.random.default_rng(how.seed + 7)
    if how.real_groups is not None:
        units = np.unique(how.real_groups)
        chosen = rng.choice(units, max(MIN_SUBJECTS, int(round(fraction * len(units)))), replace=False)
        real = np.flatnonzero(np.isin(how.real_groups, chosen))
        groups = how.real_groups[real]
    else:
        real, groups = np.sort(rng.choice(n_real, max(2, int(round(fraction * n_real))), replace=False)), None
    fake = np.sort(rng.choice(n_fake, max(2, int(round(fraction * n_fake))), replace=False))
    return Subset(real, fake, groups, float(np.sqrt(fraction)))


def _placed(result: dict, index: int | None, value: float, used: Subset, **extra: Any) -> dict[str, Any]:
    """An entry whose spread (scaled to all images) is placed around the reported ``value``."""
    found = entry(result, index, **extra, **used.describe())
    centre = result["value"] if index is None else result["value"][index]
    found["low"] = value + used.scale * (found["low"] - centre)
    found["high"] = value + used.scale * (found["high"] - centre)
    return found


def kid_interval(real: np.ndarray, fake: np.ndarray, how: Resampling, value: float) -> dict[str, Any]:
    """KID's interval: half-sampling of blocks, exact unbiased MMD^2 per resample, centred on ``value``.

    Above ``SUBSET_IMAGES`` images in all, the blocks are made of a random ``subset`` (the kernel pass over all
    pairs of 10,000 images would cost as much as the KID itself).
    """
    n_real, n_fake = real.shape[0], fake.shape[0]
    used = subset(n_real, n_fake, how)
    real_units = used.groups if used.groups is not None else np.arange(len(used.real))
    real_blocks, fake_blocks = blocks(real_units, how.seed), blocks(np.arange(len(used.fake)), how.seed + 1)
    kernel = KernelBlocks(torch.as_tensor(real[used.real]), torch.as_tensor(fake[used.fake]), real_blocks,
                          fake_blocks)
    count_real, count_fake = int(real_blocks.max()) + 1, int(fake_blocks.max()) + 1

    def statistic(real_index: np.ndarray, fake_index: np.ndarray) -> float:
        return kernel.mmd(np.bincount(real_index, minlength=count_real).astype(np.float64),
                          np.bincount(fake_index, minlength=count_fake).astype(np.float64))

    with one_thread():
        result = bootstrap(statistic, count_real, count_fake, resamples=how.resamples, seed=how.seed, scheme="half")
    result.update(resampled=how.resampled, n_real=n_real, n_fake=n_fake)
    return _placed(result, None, value, used, blocks=[count_real, count_fake])


def prdc_intervals(real: np.ndarray, fake: np.ndarray, how: Resampling, values: dict[str, float],
                   k: int = 5) -> dict[str, dict]:
    """Precision/recall/density/coverage intervals by half-sampling (no repeated rows in a k-NN resample),
    centred on the reported ``values``.

    The distance matrices of the sets are computed once and each half-sample indexes them
    (``prdc_of_distances``); above ``SUBSET_IMAGES`` images in all, of a random ``subset``, spread scaled.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    used = subset(len(real), len(fake), how)
    centre = real.mean(0)
    real_centred, fake_centred = real[used.real] - centre, fake[used.fake] - centre
    tables = [distance_table(real_centred, real_centred), distance_table(fake_centred, fake_centred),
              distance_table(real_centred, fake_centred)]

    def statistic(real_index: np.ndarray, fake_index: np.ndarray) -> list[float]:
        scores = prdc_of_distances(tables[0][np.ix_(real_index, real_index)], tables[1][np.ix_(fake_index, fake_index)],
                                   tables[2][np.ix_(real_index, fake_index)], k=k)
        return [scores[name] for name in PRDC_NAMES]

    with one_thread():
        result = bootstrap(statistic, len(used.real), len(used.fake), resamples=how.resamples, seed=how.seed,
                           real_groups=used.groups, scheme="half")
    result.update(resampled=how.resampled, n_real=len(real), n_fake=len(fake))
    # placed on the reported values: the tables' float64 distances may differ from prdc's float32 ones at a tie
    return {name: _placed(result, index, values[name], used) for index, name in enumerate(PRDC_NAMES)}


def distance_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] Euclidean distances, float32 (the diagonal of a table of a set with itself is 0)."""
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    table = np.sqrt(np.clip(squared, 0.0, None)).astype(np.float32)
    if a is b:
        np.fill_diagonal(table, 0.0)
    return table


def pair_statistics(pairs: PairValues, index: np.ndarray) -> tuple[float, float]:
    """Weighted mean MS-SSIM and duplicate-pair share of a resample (pair weight: product of its images' counts)."""
    counts = np.bincount(index, minlength=pairs.count).astype(np.float64)
    weights = counts[pairs.first] * counts[pairs.second]
    total = weights.sum()
    if total <= 0:
        raise DataError("no scored pair left in this resample")
    return float(weights @ pairs.values / total), float(weights @ (pairs.values >= DUPLICATE_MS_SSIM) / total)


DIVERSITY_KEYS = ("diversity.synthetic_ms_ssim.mean", "diversity.real_ms_ssim.mean", "diversity.relative_diversity",
                  "diversity.synthetic_ms_ssim.duplicate_fraction", "diversity.real_ms_ssim.duplicate_fraction")


def diversity_intervals(real_pairs: PairValues, fake_pairs: PairValues, how: Resampling) -> dict[str, dict]:
    """Intervals of the diversity numbers by resampling images and re-weighting their already scored pairs."""

    def statistic(real_index: np.ndarray, fake_index: np.ndarray) -> list[float]:
        real_mean, real_duplicates = pair_statistics(real_pairs, real_index)
        fake_mean, fake_duplicates = pair_statistics(fake_pairs, fake_index)
        relative = (1.0 - fake_mean) / max(1.0 - real_mean, 1e-6)
        return [fake_mean, real_mean, relative, fake_duplicates, real_duplicates]

    with one_thread():
        result = _run(statistic, real_pairs.count, fake_pairs.count, how)
    return {key: entry(result, index) for index, key in enumerate(DIVERSITY_KEYS)}


MEMORIZATION_KEYS = ("memorization.near_copy_fraction", "memorization.nearest_ssim.median",
                     "memorization.nearest_feature_distance.median", "memorization.baseline_near_copy_fraction",
                     "memorization.baseline_nearest_ssim.median",
                     "memorization.baseline_nearest_feature_distance.median")


def memorization_intervals(audit: MemorizationAudit, how: Resampling) -> dict[str, dict]:
    """Intervals of the audit's rates and medians: its per-image values resampled, the training set fixed.

    The baseline queries are real images (held-out ones, or training images left out one at a time, which are the
    real set when no separate training set is given): they are resampled by subject where ``how`` does.
    """
    synthetic, baseline, threshold = audit.synthetic, audit.baseline, audit.threshold
    groups = None
    if how.real_groups is not None and audit.baseline_queries is not None:
        groups = how.real_groups[audit.baseline_queries]

    def statistic(baseline_index: np.ndarray, synthetic_index: np.ndarray) -> list[float]:
        ssim, distance = synthetic.ssim[synthetic_index], synthetic.feature_distance[synthetic_index]
        base_ssim, base_distance = baseline.ssim[baseline_index], baseline.feature_distance[baseline_index]
        return [float(np.mean(ssim >= threshold)), float(np.median(ssim)), float(np.median(distance)),
                float(np.mean(base_ssim >= threshold)), float(np.median(base_ssim)), float(np.median(base_distance))]

    with one_thread():
        result = _run(statistic, len(baseline.ssim), len(synthetic.ssim), how, groups=groups)
    result["resampled"] = "subjects" if groups is not None else "images"
    return {key: entry(result, index) for index, key in enumerate(MEMORIZATION_KEYS)}


def normal_note(entries: dict[str, dict]) -> str | None:
    """A note naming the metrics whose resamples were cut for cost (normal intervals), or None."""
    cut = sorted({f"{key} ({value['resamples']})" for key, value in entries.items()
                  if value.get("resamples", NORMAL_BELOW) < NORMAL_BELOW})
    if not cut:
        return None
    return ("intervals from fewer resamples, to bound the cost (normal intervals from the resampled standard "
            f"deviation): {', '.join(cut)}")
