"""Bootstrap intervals for set-level metrics: resample the real and the synthetic set, recompute, take percentiles.

A metric of two image sets (FID, KID, precision/recall, a spectrum ratio, ...) is a statistic of both samples, so
both are resampled with replacement, independently. Where the real images come from known subjects (several
slices per patient), whole subjects are resampled (a cluster bootstrap): slices of one patient are not independent,
and resampling them one by one would give intervals that are too narrow. Synthetic images are independent draws
of the generator and are resampled one by one.

The interval is the percentile interval of the resampled statistic (Efron & Tibshirani 1993, ch. 13). It is read
as the spread the metric would show on another draw of real images and samples of the same size; it does not
remove a metric's own small-N bias (FID is biased upward at small N, so its interval is too: see
``medgan.metrics.fid_infinity``). ``paired_bootstrap`` resamples the same indices for two generators' metrics, so
the interval of their difference keeps the correlation that a shared real set brings.

No library in medgan's stack does this: ``scipy.stats.bootstrap`` resamples independent observations of one or
more samples and has no cluster (subject) resampling, and its statistic must be vectorized over resamples, which
FID (an eigendecomposition per resample) is not.

Two refinements, both opt-in (``scheme``, ``centred``), for statistics where plain resampling with replacement
misleads:

* ``scheme="half"``: half-sampling, i.e. subsampling without replacement of m = n // 2 units (images or
  subjects) of each set (Politis & Romano 1994, "Large sample confidence regions based on subsamples under
  minimal assumptions"; the delete-d jackknife with d = n/2, Shao & Wu 1989). A with-replacement resample
  repeats about a third of the rows; a repeated row sits at distance 0 from its copy, which shrinks every k-NN
  radius (precision/recall/density/coverage) and puts k(x, x) on the off-diagonal of a U-statistic (KID). A
  half-sample has no repeats. For a statistic that converges at the root-n rate, the subsample statistic
  varies around its own centre with variance ``Var(T_n) (n - m) / m`` (the finite-population factor of
  sampling without replacement), which is ``Var(T_n)`` at m = n / 2: the half-sample spread is the full-sample
  spread without rescaling (for odd n the factor ``sqrt(m / (n - m))`` differs from 1 by under 1% above 50
  units and is not applied).
* ``centred=True`` (always on for half-sampling): the interval is the resampled distribution's spread placed
  around the reported value, ``value + (percentile - median of the resampled values)``. Resampling shifts
  some statistics by itself: FID of a with-replacement resample has fewer distinct rows (about 0.632 n), so a
  larger small-N bias; a k-NN statistic of a half-sample has larger radii. That shift is an artefact of the
  resampling, not of the data, so only the spread is kept. The interval therefore always contains the value.

With fewer than ``NORMAL_BELOW`` resamples (callers cut the count for expensive statistics), percentiles are too
coarse and the interval is the normal one, ``value +- z * standard deviation of the resampled values``
(Efron & Tibshirani 1993, ch. 6: 25 resamples give a usable standard error, percentiles need far more).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from medgan.errors import DataError

CONFIDENCE = 0.95
RESAMPLES = 200  # enough for 95% percentile bounds to about +-10% of the interval's width at set-metric cost
NORMAL_BELOW = 100  # fewer resamples than this: a normal interval from the resampled standard deviation
SCHEMES = ("bootstrap", "half")  # with replacement (Efron) / half-sampling without replacement

Statistic = Callable[[np.ndarray, np.ndarray], "float | np.ndarray"]


def resample_indices(count: int, rng: np.random.Generator, groups: Sequence | np.ndarray | None = None,
                     scheme: str = "bootstrap") -> np.ndarray:
    """Indices of one resample of ``count`` items, by group where ``groups`` (one label per item) is given.

    With groups, as many groups as there are are drawn with replacement (``scheme="bootstrap"``), or half of them
    without replacement (``"half"``), and all their items are taken, so the resample's size varies.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown resampling scheme {scheme!r}")
    if groups is None:
        if scheme == "half":
            return np.sort(rng.choice(count, size=max(1, count // 2), replace=False))
        return rng.integers(0, count, size=count)
    labels = np.asarray(groups)
    if labels.shape[0] != count:
        raise DataError(f"subject labels: {labels.shape[0]} labels for {count} images")
    unique, inverse = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inverse == group) for group in range(len(unique))]
    if scheme == "half":
        chosen = np.sort(rng.choice(len(unique), size=max(1, len(unique) // 2), replace=False))
    else:
        chosen = rng.integers(0, len(unique), size=len(unique))
    return np.concatenate([members[group] for group in chosen])


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile bounds along axis 0 of resampled statistics (NaN rows are ignored)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    return np.nanpercentile(values, tail, axis=0), np.nanpercentile(values, 100.0 - tail, axis=0)


def interval(values: np.ndarray, value: np.ndarray | float, confidence: float = CONFIDENCE,
             centred: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """(low, high, method) from resampled statistics (axis 0) and the full-sample ``value``.

    Methods: ``"percentile"``; ``"centred percentile"`` (the percentiles shifted so that the resampled median
    sits on ``value``); ``"normal"`` (``value +- z sd``) when fewer than ``NORMAL_BELOW`` resamples are finite.
    """
    value = np.asarray(value, dtype=np.float64)
    finite = np.isfinite(values).all(axis=tuple(range(1, values.ndim))) if values.ndim > 1 else np.isfinite(values)
    if finite.sum() < NORMAL_BELOW:
        from statistics import NormalDist

        if finite.sum() < 2:  # nothing to read a spread from
            return np.full(value.shape, np.nan), np.full(value.shape, np.nan), "normal"
        spread = NormalDist().inv_cdf(0.5 + confidence / 2.0) * np.std(values[finite], axis=0, ddof=1)
        return value - spread, value + spread, "normal"
    low, high = percentile_interval(values, confidence)
    if not centred:
        return low, high, "percentile"
    shift = value - np.nanmedian(values, axis=0)
    return low + shift, high + shift, "centred percentile"


def _resampled(statistic: Statistic, n_real: int, n_fake: int, resamples: int, seed: int,
               real_groups: Sequence | None, scheme: str = "bootstrap") -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        real_index = resample_indices(n_real, rng, real_groups, scheme)
        fake_index = resample_indices(n_fake, rng, None, scheme)
        try:
            values.append(np.asarray(statistic(real_index, fake_index), dtype=np.float64))
        except DataError:  # a resample where the metric is undefined (e.g. too few distinct subjects) counts as missing
            values.append(None)
    shape = next((value.shape for value in values if value is not None), None)
    if shape is None:
        raise DataError("the metric is undefined on every bootstrap resample")
    return np.stack([np.full(shape, np.nan) if value is None else value for value in values])


def bootstrap(statistic: Statistic, n_real: int, n_fake: int, resamples: int = RESAMPLES, seed: int = 0,
              real_groups: Sequence | None = None, confidence: float = CONFIDENCE, scheme: str = "bootstrap",
              centred: bool = False) -> dict:
    """A metric with its bootstrap percentile interval.

    Args:
        statistic: ``(real_index, fake_index) -> value`` (a float or an array); called once on the full sets
            (``arange``) for the point value, then once per resample.
        n_real: images in the real set.
        n_fake: images in the synthetic set.
        resamples: bootstrap resamples.
        seed: resampling seed (the interval is reproducible).
        real_groups: one subject label per real image: subjects are resampled instead of images.
        confidence: coverage of the interval.
        scheme: ``"bootstrap"`` (with replacement) or ``"half"`` (half-sampling without replacement; always
            centred): see the module docstring.
        centred: place the resampled spread around the value (see the module docstring).

    Returns:
        ``{"value", "low", "high", "confidence", "resamples", "resampled", "scheme", "method", "n_real",
        "n_fake"}`` (lists for an array statistic); ``resampled`` says whether real subjects or images were
        drawn, ``method`` how the bounds were read off (``interval``).
    """
    if n_real < 2 or n_fake < 2:
        raise DataError(f"intervals need at least 2 images per set, got {n_real} real and {n_fake} synthetic")
    value = np.asarray(statistic(np.arange(n_real), np.arange(n_fake)), dtype=np.float64)
    values = _resampled(statistic, n_real, n_fake, resamples, seed, real_groups, scheme)
    low, high, method = interval(values, value, confidence, centred or scheme == "half")
    return {"value": _plain(value), "low": _plain(low), "high": _plain(high), "confidence": confidence,
            "resamples": resamples, "resampled": "subjects" if real_groups is not None else "images",
            "scheme": scheme, "method": method, "n_real": n_real, "n_fake": n_fake}


def paired_bootstrap(statistic_a: Statistic, statistic_b: Statistic, n_real: int, n_fake_a: int, n_fake_b: int,
                     resamples: int = RESAMPLES, seed: int = 0, real_groups: Sequence | None = None,
                     confidence: float = CONFIDENCE, scheme: str = "bootstrap", centred: bool = False) -> dict:
    """The difference ``a - b`` of one metric for two synthetic sets against one real set, with its interval.

    Each resample draws one real resample shared by both metrics and one resample of each synthetic set, so the
    real set's sampling noise, common to both, cancels in the difference. ``scheme`` and ``centred`` as in
    ``bootstrap``; a statistic may return an array (then ``a``, ``b``, ``difference``, ``low`` and ``high`` are
    lists and ``separated`` is a list too).

    Returns:
        ``{"a", "b", "difference", "low", "high", "confidence", "resamples", "resampled", "scheme", "method",
        "n_real", "n_fake_a", "n_fake_b", "separated"}``; ``separated`` is True when the interval excludes 0.
    """
    if min(n_real, n_fake_a, n_fake_b) < 2:
        raise DataError("intervals need at least 2 images per set")
    value_a = np.asarray(statistic_a(np.arange(n_real), np.arange(n_fake_a)), dtype=np.float64)
    value_b = np.asarray(statistic_b(np.arange(n_real), np.arange(n_fake_b)), dtype=np.float64)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        real_index = resample_indices(n_real, rng, real_groups, scheme)
        try:
            differences.append(np.asarray(statistic_a(real_index, resample_indices(n_fake_a, rng, None, scheme)),
                                          dtype=np.float64)
                               - np.asarray(statistic_b(real_index, resample_indices(n_fake_b, rng, None, scheme)),
                                            dtype=np.float64))
        except DataError:
            differences.append(np.full(value_a.shape, np.nan))
    low, high, method = interval(np.stack(differences), value_a - value_b, confidence, centred or scheme == "half")
    separated = (low > 0) | (high < 0)
    return {"a": _plain(value_a), "b": _plain(value_b), "difference": _plain(value_a - value_b), "low": _plain(low),
            "high": _plain(high), "confidence": confidence, "resamples": resamples,
            "resampled": "subjects" if real_groups is not None else "images", "scheme": scheme, "method": method,
            "n_real": n_real, "n_fake_a": n_fake_a, "n_fake_b": n_fake_b,
            "separated": bool(separated) if separated.ndim == 0 else [bool(item) for item in separated]}


def _plain(value: np.ndarray) -> float | list[float]:
    return float(value) if value.ndim == 0 else [float(item) for item in value]
