"""``medgan evaluate --compare RUN_A RUN_B``: two noise-to-image runs scored against one real set, each headline
metric with the paired 95% interval of the difference A - B and a plain verdict.

Both runs generate the same number of images with the same seed, as ``--fake RUN`` does
(``medgan.evaluation.inputs.generate_set``); features, pair scores, band powers and radiomic features are computed
once per set. Each metric's difference gets ``medgan.metrics.bootstrap.paired_bootstrap``: every resample draws one
real resample (by subject where known) shared by A and B and one resample of each synthetic set, so the real set's
noise, common to both, cancels. The resampling of each metric is the one its interval gets in ``medgan evaluate``
(``medgan.metrics.intervals``): half-samples for KID and precision/recall/density/coverage, the bootstrap with
replacement for the rest.

A verdict reads the interval of the difference of a *criterion*: the metric itself where lower is better, its
negative where higher is better, and the distance to the target for density (1), the spectrum's top-band ratio (1)
and pairwise MS-SSIM (the real set's). "A better" when that interval lies below 0, "B better" above, else "not
separated at 95%".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medgan.errors import ConfigError, DataError
from medgan.evaluation.inputs import GENERATED_IMAGES, ImageSet, generate_set, limit, load_real
from medgan.evaluation.shareable import shared_name
from medgan.metrics.bootstrap import paired_bootstrap
from medgan.metrics.diversity import pair_values
from medgan.metrics.feature_cache import cached_features
from medgan.metrics.features import DEFAULT_FEATURES, extract_features, get_extractor
from medgan.metrics.fid import fid_of_rows
from medgan.metrics.fid_infinity import small_n_warning
from medgan.metrics.intervals import (SUBSET_IMAGES, Resampling, affordable, blocks, distance_table,
                                      one_thread, pair_statistics, real_resampling)
from medgan.metrics.kid import KernelBlocks, kid, subset_size_for
from medgan.metrics.prdc import prdc, prdc_of_distances
from medgan.metrics.radiomics import frd, radiomic_features
from medgan.metrics.sections import cached_radiomics
from medgan.metrics.spectrum import band_power
from medgan.metrics.suite import DIVERSITY_PAIRS, INTERVAL_RESAMPLES, KID_SUBSET_SIZE, KID_SUBSETS, SAMPLE_SEED
from medgan.run import RunDir, check_output_folder

Statistic = Callable[[np.ndarray, np.ndarray], list]


@dataclass(frozen=True)
class Compared:
    """One row of the comparison: a headline metric and what "better" means for it."""

    key: str
    label: str
    better: str  # "lower", "higher", "closer to 1" or "closer to real"


ROWS = (Compared("fid", "FID", "lower"), Compared("kid", "KID", "lower"),
        Compared("precision", "Precision", "higher"), Compared("recall", "Recall", "higher"),
        Compared("density", "Density", "closer to 1"), Compared("coverage", "Coverage", "higher"),
        Compared("pairwise_ms_ssim", "Pairwise MS-SSIM, synthetic", "closer to real"),
        Compared("frd", "FRD (radiomics)", "lower"), Compared("spectrum_top_band", "Spectrum ratio, top band",
                                                             "closer to 1"))


def _criterion(better: str, value: float, target: float = 1.0) -> float:
    """Lower is better: the value, its negative, or its distance to the target."""
    return value if better == "lower" else -value if better == "higher" else abs(value - target)


@dataclass
class Side:
    """What is computed once per synthetic set (A or B)."""

    images: ImageSet
    features: np.ndarray
    pairs: Any
    power: np.ndarray
    radiomics: np.ndarray | None


def compare_runs(run_a: str | Path, run_b: str | Path, real: str | Path, out: str | Path,
                 features: str = DEFAULT_FEATURES, max_images: int | None = None, data_config: Any = None,
                 progress: bool = True, real_images: bool = True, resamples: int | None = None) -> dict:
    """Scores two runs against one real set and writes ``metrics.json`` and ``report.html`` into ``out``.

    Args:
        run_a, run_b: noise-to-image run directories.
        real: real images: an embedded source name, a data path or a run directory (its training data); read with
            ``run_a``'s data config unless it is a run or ``data_config`` is given.
        out: report folder (created).
        features: feature extractor for FID/KID/precision/recall/density/coverage.
        max_images: images per set (each run generates this many; default 1000) and at most this many real ones.
        data_config: ``medgan.config.DataConfig`` for reading ``real``.
        progress: progress bars.
        real_images: False names no user path in the outputs (``medgan.evaluation.shareable``); the comparison
            report shows no real image either way.
        resamples: resamples per metric (default ``INTERVAL_RESAMPLES``).

    Returns:
        The metrics dict written to ``metrics.json``: ``comparison`` (one row per metric: a, b, difference, low,
        high, verdict, ...), ``resampling``, ``small_n``, ``inputs``, ``notes``.

    Raises:
        MedganError: a path that is not a noise-to-image run, unreadable real images, a bad feature extractor.
    """
    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, "--out")
    extractor = get_extractor(features)
    for run in (run_a, run_b):
        check_noise_run(run)
    if torch.cuda.is_available():
        extractor = extractor.to("cuda")
    real_set = load_real(str(real), data_config, Path(run_a), progress)
    limit(real_set, max_images)
    resolution, count = int(real_set.images.shape[-1]), max_images or GENERATED_IMAGES
    how = real_resampling(real_set.subjects, len(real_set.images), resamples or INTERVAL_RESAMPLES, SAMPLE_SEED)
    real_features = cached_features(real_set.images, extractor, progress=progress, what="real").double().numpy()
    real_pairs = pair_values(real_set.images, DIVERSITY_PAIRS, SAMPLE_SEED)
    real_power = band_power(real_set.images).numpy()
    notes: list[str] = []
    real_radiomics = _radiomics(real_set.images, notes, cached=True)
    sides = []
    for run in (run_a, run_b):
        images = generate_set(Path(run), count, resolution)
        sides.append(Side(images, extract_features(images.images, extractor, progress=progress,
                                                   what="synthetic").double().numpy(),
                          pair_values(images.images, DIVERSITY_PAIRS, SAMPLE_SEED + 1),
                          band_power(images.images).numpy(),
                          None if real_radiomics is None else _radiomics(images.images, notes)))
    rows = _rows(real_features, real_pairs, real_power, real_radiomics, sides, how, notes)
    warning = small_n_warning(len(real_features), count, real_features.shape[1])
    if warning:
        notes.append(f"warning: {warning}")
    if how.note:
        notes.append(f"intervals: {how.note}")
    labels = {"a": run_a, "b": run_b}
    metrics = {
        "comparison": rows,
        "runs": {side: (str(path) if real_images else shared_name(path, f"run {side.upper()}"))
                 for side, path in labels.items()},
        "resampling": how.describe(len(real_features), count),
        "small_n": {"flagged": warning is not None, "message": warning, "n_real": len(real_features),
                    "n_synthetic": count, "feature_dim": int(real_features.shape[1])},
        "inputs": {"real": real_set.description if real_images else real_set.shared, "real_images": len(real_features),
                   "synthetic_images": count, "seed": SAMPLE_SEED, "features": features,
                   "feature_dim": int(real_features.shape[1]), "resolution": resolution},
        "notes": notes,
        "timings_s": {"total": time.perf_counter() - started},
    }
    write_comparison(out, metrics, [side.images.images for side in sides])
    return metrics


def _radiomics(images: torch.Tensor, notes: list[str], cached: bool = False) -> np.ndarray | None:
    """Radiomic features of a set (the real one through the cache), or None (with a note) where undefined."""
    try:
        return cached_radiomics(images) if cached else radiomic_features(images).double().numpy()
    except DataError as error:
        notes.append(f"FRD not compared: {error.message}")
        return None


def check_noise_run(path: str | Path) -> None:
    """Raises ConfigError unless ``path`` is a run directory of a task that generates images from noise."""
    from medgan.inference.noise import KIND
    from medgan.training.tasks import TASKS

    if not RunDir.is_run(path):
        raise ConfigError("--compare takes two run directories (RUN_A RUN_B); this is not a run", path)
    task = TASKS.get(RunDir(path).read_config().task or TASKS.default)
    if task.inference_kind != KIND:
        raise ConfigError(f"--compare RUN_A RUN_B compares runs that generate images from noise; task {task.name!r} "
                          "translates images (compare translation runs with --fake RUN --compare OTHER)", path)


def _rows(real: np.ndarray, real_pairs: Any, real_power: np.ndarray, real_radiomics: np.ndarray | None,
          sides: list[Side], how: Resampling, notes: list[str]) -> list[dict]:
    """One row per ``ROWS`` entry (a metric undefined on these sets is left out, with a note)."""
    a, b = sides
    count = len(a.features)
    rows: dict[str, dict] = {}

    def add(names: tuple[str, ...], statistic: Callable[[Side], Statistic], n_real: int, n_fake: int,
            scheme: str = "bootstrap", groups: Any = "real", shown: tuple[float, float] | None = None,
            resamples: int | None = None) -> None:
        try:
            with one_thread(real.shape[1] <= 256):  # 2048-D eigensolvers gain from threads
                result = paired_bootstrap(statistic(a), statistic(b), n_real, n_fake, n_fake,
                                          resamples=resamples or how.resamples, seed=how.seed,
                                          real_groups=how.real_groups if groups == "real" else groups,
                                          scheme=scheme, centred=True)
        except DataError as error:
            labels = ", ".join(next(row.label for row in ROWS if row.key == name) for name in names)
            notes.append(f"{labels} not compared: {error.message}")
            return
        result["resampled"] = how.resampled
        width = len(names)
        for index, name in enumerate(names):
            info = next(row for row in ROWS if row.key == name)
            rows[name] = _row(info, result, index, width, count, len(real), shown if width == 1 else None)

    dim = real.shape[1]
    if min(len(real), count) > dim:
        work = min(len(real) * count * (dim + 4 * min(len(real), count)), (len(real) + count) * dim**2 + 10 * dim**3)
        add(("fid",), lambda side: lambda r, f: [fid_of_rows(real[r], side.features[f])] * 2, len(real), count,
            resamples=affordable(2 * work, how.resamples))
    else:
        notes.append(f"FID not compared: it needs more images than the {dim} features in each set, got "
                     f"{len(real)} real and {count} synthetic")
    _kid(add, real, a, b, how)
    tabled = len(real) + 2 * count <= SUBSET_IMAGES  # else prdc per half-sample, fewer of them
    tables = [distance_table(real, real)] if tabled else []

    def prdc_statistic(side: Side) -> Statistic:
        own, cross = (distance_table(side.features, side.features), distance_table(real, side.features)) if tabled \
            else (None, None)

        def statistic(r: np.ndarray, f: np.ndarray) -> list:
            values = prdc_of_distances(tables[0][np.ix_(r, r)], own[np.ix_(f, f)], cross[np.ix_(r, f)]) if tabled \
                else prdc(real[r], side.features[f])
            raw = [values[name] for name in ("precision", "recall", "density", "coverage")]
            return raw + [-raw[0], -raw[1], abs(raw[2] - 1.0), -raw[3]]
        return statistic

    add(("precision", "recall", "density", "coverage"), prdc_statistic, len(real), count, scheme="half",
        resamples=None if tabled else affordable(2 * ((len(real) + count) / 2.0) ** 2 * real.shape[1], how.resamples))

    def ms_ssim_statistic(side: Side) -> Statistic:
        def statistic(r: np.ndarray, f: np.ndarray) -> list:
            fake_mean, real_mean = pair_statistics(side.pairs, f)[0], pair_statistics(real_pairs, r)[0]
            return [fake_mean, abs(fake_mean - real_mean)]
        return statistic

    add(("pairwise_ms_ssim",), ms_ssim_statistic, len(real), count)
    if real_radiomics is not None and a.radiomics is not None and b.radiomics is not None:
        add(("frd",), lambda side: lambda r, f: [frd(real_radiomics[r], side.radiomics[f])] * 2, len(real), count)

    def spectrum_statistic(side: Side) -> Statistic:
        def statistic(r: np.ndarray, f: np.ndarray) -> list:
            ratio = side.power[f, -1].mean() / max(real_power[r, -1].mean(), 1e-20)
            return [ratio, abs(ratio - 1.0)]
        return statistic

    add(("spectrum_top_band",), spectrum_statistic, len(real), count)
    return [rows[row.key] for row in ROWS if row.key in rows]


def _kid(add: Callable, real: np.ndarray, a: Side, b: Side, how: Resampling) -> None:
    """KID of each side (mean over subsets, as ``medgan evaluate``) with the half-sampled block MMD difference."""
    real_units = how.real_groups if how.real_groups is not None else np.arange(len(real))
    real_blocks, fake_blocks = blocks(real_units, how.seed), blocks(np.arange(len(a.features)), how.seed + 1)
    count_real, count_fake = int(real_blocks.max()) + 1, int(fake_blocks.max()) + 1
    size = subset_size_for(len(real), len(a.features), KID_SUBSET_SIZE)
    means = [kid(real, side.features, subsets=KID_SUBSETS, subset_size=size, seed=SAMPLE_SEED)[0] for side in (a, b)]
    kernels = {id(side): KernelBlocks(torch.as_tensor(real), torch.as_tensor(side.features), real_blocks, fake_blocks)
               for side in (a, b)}

    def statistic(side: Side) -> Statistic:
        kernel = kernels[id(side)]
        return lambda r, f: [kernel.mmd(np.bincount(r, minlength=count_real).astype(np.float64),
                                        np.bincount(f, minlength=count_fake).astype(np.float64))] * 2

    add(("kid",), statistic, count_real, count_fake, scheme="half", groups=None, shown=(means[0], means[1]))


def _row(info: Compared, result: dict, index: int, width: int, n_fake: int, n_real: int,
         shown: tuple[float, float] | None) -> dict:
    """A comparison row from a paired result whose statistics are [raw values..., criteria...] (``width`` each)."""
    a, b = result["a"][index], result["b"][index]
    low, high = result["low"][index], result["high"][index]
    if shown is not None:  # KID: the values shown are the subset means; the interval is moved onto their difference
        shift = (shown[0] - shown[1]) - (a - b)
        a, b, low, high = shown[0], shown[1], low + shift, high + shift
    criterion_low, criterion_high = result["low"][width + index], result["high"][width + index]
    if shown is not None:
        criterion_low, criterion_high = criterion_low + shift, criterion_high + shift
    verdict = ("A better" if criterion_high < 0 else "B better" if criterion_low > 0 else "not separated at 95%")
    return {"key": info.key, "label": info.label, "better": info.better, "a": a, "b": b, "difference": a - b,
            "low": low, "high": high, "criterion_low": criterion_low, "criterion_high": criterion_high,
            "verdict": verdict, "confidence": result["confidence"], "scheme": result["scheme"],
            "method": result["method"], "resamples": result["resamples"], "resampled": result["resampled"],
            "n_real": n_real, "n_fake": n_fake}


def format_comparison(metrics: dict, written: str) -> str:
    """The lines ``medgan evaluate --compare`` prints: A, B, A - B [interval] and the verdict per metric."""
    lines = [f"A: {metrics['runs']['a']}", f"B: {metrics['runs']['b']}"]
    small = metrics.get("small_n") or {}
    if small.get("message"):
        lines.insert(0, f"warning: {small['message']}")
    lines.append(f"{'metric':<30} {'A':>10} {'B':>10}  {'A - B [95% interval]':<34} verdict")
    for row in metrics["comparison"]:
        difference = f"{row['difference']:.4g} [{row['low']:.4g}, {row['high']:.4g}]"
        lines.append(f"{row['label']:<30} {row['a']:>10.4g} {row['b']:>10.4g}  {difference:<34} {row['verdict']} "
                     f"({row['better']} is better)")
    lines.extend(f"note: {note}" for note in metrics.get("notes", [])
                 if not note.startswith(("warning: small sets", "intervals:")))  # both are said on their own lines
    resampling = metrics.get("resampling") or {}
    drawn = "real subjects" if resampling.get("real_resampled") == "subjects" else "real images"
    lines.append(f"paired intervals: {resampling.get('resamples')} resamples of {drawn} (N real "
                 f"{resampling.get('n_real')}, shared by A and B) and of each synthetic set "
                 f"(N {resampling.get('n_synthetic')})" + (f"; {resampling['note']}" if resampling.get("note") else ""))
    return "\n".join([*lines, written])


def write_comparison(out: Path, metrics: dict, samples: list[torch.Tensor]) -> None:
    """Writes ``metrics.json`` and ``report.html`` into ``out``, all or nothing."""
    import json

    from medgan.evaluation.evaluate import _json_ready
    from medgan.report.comparison import render_comparison
    from medgan.utils import atomic_write_files

    clean = _json_ready(metrics)
    metrics.clear()
    metrics.update(clean)
    atomic_write_files({out / "metrics.json": json.dumps(metrics, indent=2, allow_nan=False) + "\n",
                        out / "report.html": render_comparison(metrics, samples)})
