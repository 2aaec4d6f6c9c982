"""Synthesis quality per CPU budget: recipes trained side by side, several seeds, on the same data.

Every run trains through ``medgan.training.loop.train`` with ``train.cpu_minutes`` (the CPU time of the training
process, ``time.process_time``) and one torch thread, two runs at a time in separate processes. A wall-clock
budget is not fair on a shared 2-core machine: another user's job would shorten whichever run it overlaps.
Each recipe therefore gets the same CPU-seconds; the steps it reaches depend on its per-step cost.

Recipes: ``medgan`` (the default), ``dcgan`` (classic), ``standard`` (the textbook data-efficient recipe of
issue 13, ``medgan.training.tasks.RECIPES.get("standard")``), ``previous`` (the default before issue 13, spelled
out) and the candidates in ``CANDIDATES``. Datasets:

* ``mni``: the 112 axial MNI152 slices (64 x 64), unconditional. The template is one subject: there are no
  held-out real images, so FID/KID/PRDC and real's pairwise MS-SSIM use the training slices, and the
  nearest-training SSIM baseline is leave-one-out.
* ``lesions``: the ``ct-lesions`` phantom ROIs (180, conditional; the liver demo's window; medgan-family recipes
  also get the demo's AC head and translation/cutout policy). Real reference: 90 ROIs of new patients (held
  out: another dataset seed); diversity is also reported within class.

After training, the final EMA generator makes the samples (no in-training FID selection: its cost would come
out of the budget). Metrics (``medgan.metrics.compute_metrics``, offline features): FID, KID, precision, recall,
density, coverage, mean pairwise MS-SSIM among samples (real's beside it), the median nearest-training SSIM, the
synthetic / real power per radial frequency band (``medgan.metrics.spectrum``), FRD and the GLCM contrast ratio.
Each run keeps a grid of 64 samples (``samples.png``) and its 512 samples (``samples.npy``, float16).
Tables give means with 95% t intervals over seeds. Per-run results are cached in ``--out``, so a rerun resumes.

    python benchmarks/bench_quality.py --datasets mni --seeds 3 --cpu-minutes 1 --parallel 2 --out bench-quality
    python benchmarks/bench_quality.py ... --report   # tabulate what is cached in --out, train nothing
"""

from __future__ import annotations

import os

# One thread per run and sleeping OpenMP workers: the budget is CPU time, and two runs share the 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

# TASK stands for the run's own config section, named after its task (unconditional on mni, conditional on
# lesions): ``run_config`` renames it (``for_task``). Mode seeking is a key of that section.
TASK = "<task>"
PREVIOUS = {"optim": {"betas": [0.5, 0.999], "lr_discriminator": 2e-4},  # the default before issue 13
            "model": {"generator_channels": 32, "discriminator_channels": 32}, "train": {"ema": 0.999},
            TASK: {"mode_seeking": 0.1}}
# Every candidate is a change of the default as it was when it was tried, so each keeps meaning what it measured.
# BEFORE_SESSION5: the default until session 5 of issue 13 (mode seeking 0.075; "before-s5"); BEFORE_SESSION4:
# the one before it (also classic rotation 5 degrees and zoom 0.05 of the real images, D width 32; "before-s4").
# "ms075-norot-d24" is "before-s5", and "s5-ms09" is today's default ("medgan").
BEFORE_SESSION5 = {TASK: {"mode_seeking": 0.075}}
BEFORE_SESSION4 = {**BEFORE_SESSION5, "data": {"rotate_degrees": 5.0, "scale": 0.05},
                   "model": {"discriminator_channels": 32}}
# Candidates defined before unconditional tasks used mode_seeking: on mni they ran without the term.
WITHOUT_UNCONDITIONAL_MS = ("previous", "ttur", "ttur-wide", "ttur-ada", "ttur-ms")
TTUR = {"optim": {"betas": [0.0, 0.99], "lr_generator": 2e-4, "lr_discriminator": 4e-4}}
CANDIDATES = {  # name: (recipe, overrides on it and on BEFORE_SESSION4)
    "before-s4": ("medgan", {}),
    "previous": ("medgan", PREVIOUS),
    "ttur": ("medgan", {**PREVIOUS, **TTUR}),
    "ttur-wide": ("medgan", {**PREVIOUS, **TTUR, "model": {"generator_channels": 48, "discriminator_channels": 48}}),
    "ttur-ada": ("medgan", {**PREVIOUS, **TTUR, "augment": {"adaptive": True}}),
    "ttur-ms": ("medgan", {**PREVIOUS, **TTUR, TASK: {"mode_seeking": 1.0}}),  # conditional: stronger MSGAN term
    "no-ms": ("medgan", {TASK: {"mode_seeking": 0.0}}),  # the default before unconditional mode seeking
    "ms05": ("medgan", {TASK: {"mode_seeking": 0.05}}),
    "ms075": ("medgan", {TASK: {"mode_seeking": 0.075}}),
    "ms01": ("medgan", {TASK: {"mode_seeking": 0.1}}),
    "ms-ema995": ("medgan", {TASK: {"mode_seeking": 0.1}, "train": {"ema": 0.995}}),
    "ms-r1": ("medgan", {TASK: {"mode_seeking": 0.1}, "loss": {"r1_gamma": 1.0}}),
    "ms-ada": ("medgan", {TASK: {"mode_seeking": 0.1}, "augment": {"adaptive": True}}),
    "ms05-g48": ("medgan", {TASK: {"mode_seeking": 0.05}, "model": {"generator_channels": 48}}),
    # Session 4 candidates, each the default (mode seeking 0.075) with one change:
    "ms075-cos": ("medgan", {"optim": {"schedule": "cosine"}}),  # LR decays to 0 over the budget's steps
    "ms075-r1": ("medgan", {"loss": {"r1_gamma": 1.0}}),  # lazy R1 (every 16 D steps) beside SN
    "ms075-lr15": ("medgan", {"optim": {"lr_generator": 3e-4, "lr_discriminator": 6e-4}}),
    "ms075-lr2": ("medgan", {"optim": {"lr_generator": 4e-4, "lr_discriminator": 8e-4}}),
    "ms075-bal": ("medgan", {"data": {"balance": 1.0}}),  # small slices drawn as often as large ones
    "ms075-bal04": ("medgan", {"data": {"balance": 0.4}}),
    "ms075-d48": ("medgan", {"model": {"discriminator_channels": 48}}),  # the D/G width balance
    "ms075-d24": ("medgan", {"model": {"discriminator_channels": 24}}),
    # Classic rotation/zoom reach only the real images (DiffAugment reaches both): G may learn them.
    "ms075-norot": ("medgan", {"data": {"rotate_degrees": 0.0, "scale": 0.0}}),
    "ms075-norot-d24": ("medgan", {"data": {"rotate_degrees": 0.0, "scale": 0.0},
                                   "model": {"discriminator_channels": 24}}),
    "cbn": ("medgan", {"model": {"conditional_norm": True}}),  # lesions: conditional BatchNorm in G
}
# Session 5 candidates: BEFORE_SESSION5 (no rotation/zoom, D 24, mode seeking 0.075) with one change each.
ON_SESSION5 = {
    "before-s5": {},
    "s5-ms09": {TASK: {"mode_seeking": 0.09}},
    "s5-ms01": {TASK: {"mode_seeking": 0.1}},
    "s5-ema995": {"train": {"ema": 0.995}},  # EMA half-life 138 steps (4,400 images) instead of 693 (22,000)
}
CANDIDATES.update({name: ("medgan", overrides) for name, overrides in ON_SESSION5.items()})
# Session 6 (issue 25) candidates against grain (excess power in the highest spatial frequencies): the default of
# session 5 (transposed convolutions in G: BEFORE_SESSION6, "before-s6") with one change each.
BEFORE_SESSION6 = {"model": {"upsample": "transposed"}}
ON_SESSION6 = {
    "before-s6": {},
    "up-bilinear": {"model": {"upsample": "bilinear"}},  # resize-convolution instead of transposed convolutions
    "up-nearest": {"model": {"upsample": "nearest"}},
    "out-bilinear": {"model": {"upsample": "bilinear-output"}},  # transposed inside, resize-convolution into the image
    "out-nearest": {"model": {"upsample": "nearest-output"}},
}
CANDIDATES.update({name: ("medgan", overrides) for name, overrides in ON_SESSION6.items()})
# Session 7 (issue 25) candidates against grain: today's default with the spectral term of medgan.losses.spectral
# at a weight each, and without the mode-seeking term (whose pixel distances grain inflates cheaply).
ON_SESSION7 = {
    "spec-03": {TASK: {"spectral": 0.3}},
    "spec-1": {TASK: {"spectral": 1.0}},
    "spec-3": {TASK: {"spectral": 3.0}},
    "ms0": {TASK: {"mode_seeking": 0.0}},
    "ms-pool4": {TASK: {"mode_seeking_pool": 4}},  # mode seeking on 16 x 16 average-pooled images
    "ms0-spec1": {TASK: {"mode_seeking": 0.0, "spectral": 1.0}},
    "pool4-spec1": {TASK: {"mode_seeking_pool": 4, "spectral": 1.0}},
    "ms0-outnear": {TASK: {"mode_seeking": 0.0}, "model": {"upsample": "nearest-output"}},
    "pool4-outnear": {TASK: {"mode_seeking_pool": 4}, "model": {"upsample": "nearest-output"}},
}
CANDIDATES.update({name: ("medgan", overrides) for name, overrides in ON_SESSION7.items()})
# Session 8 (issue 25): the lead of session 7 (nearest resize-convolution into the image) with a diversity term
# that pays less for speckle: mode seeking on 8 x 8 average-pooled images, or on 16 x 16 with a light spectral term.
ON_SESSION8 = {
    "pool8-outnear": {TASK: {"mode_seeking_pool": 8}, "model": {"upsample": "nearest-output"}},
    "pool4-outnear-spec03": {TASK: {"mode_seeking_pool": 4, "spectral": 0.3}, "model": {"upsample": "nearest-output"}},
}
CANDIDATES.update({name: ("medgan", overrides) for name, overrides in ON_SESSION8.items()})
# Session 9 (issue 25): the bilinear resize-convolution into the image. Nearest interpolation copies each 32 x 32
# map's spectrum into 16-32 cycles per 64 px, damped only by a sinc; bilinear damps those copies by a sinc squared,
# so the 3x3 convolution after it has less to remove. With pooled mode seeking, and with a longer EMA horizon.
POOL4_BILOUT = {TASK: {"mode_seeking_pool": 4}, "model": {"upsample": "bilinear-output"}}
ON_SESSION9 = {
    "pool4-bilout": POOL4_BILOUT,
    "pool4-bilout-ema9995": {**POOL4_BILOUT, "train": {"ema": 0.9995}},  # EMA half-life 1,386 steps instead of 693
    "pool4-outnear-ema9995": {TASK: {"mode_seeking_pool": 4}, "model": {"upsample": "nearest-output"},
                              "train": {"ema": 0.9995}},
    # bilinear into the image left the top bands below real (0.70-0.73 on seed 1) and 16-20 cycles, where the
    # 32 x 32 transposed convolution's checkerboard sits, 16% above: the spectral term at 0.3 to even them out, or
    # bilinear resize-convolutions at every step (no checkerboard anywhere; 1.5x the CPU per step)
    "pool4-bilout-spec03": {**POOL4_BILOUT, TASK: {"mode_seeking_pool": 4, "spectral": 0.3}},
    "pool4-upbil": {TASK: {"mode_seeking_pool": 4}, "model": {"upsample": "bilinear"}},
    # the spectral term on the fine scales only (from half the Nyquist frequency up): pool4-bilout-spec03 was
    # within ±15% in every band but about 2.5 FID above the default on seeds 0-2; the coarse radii, where the term
    # matches each batch's anatomy rather than its texture, may be what costs FID
    "pool4-bilout-spechi03": {**POOL4_BILOUT, TASK: {"mode_seeking_pool": 4, "spectral": 0.3, "spectral_from": 0.5}},
    # a stronger spectral term: pool4-bilout-spec03 left 16-24 cycles up to 16% above real on seed 4
    "pool4-bilout-spec05": {**POOL4_BILOUT, TASK: {"mode_seeking_pool": 4, "spectral": 0.5}},
}
CANDIDATES.update({name: ("medgan", overrides) for name, overrides in ON_SESSION9.items()})
# pool4-bilout-spec05 became the default in session 9 ("medgan"); the candidates of sessions 7-9 were changes of the
# default before it, BEFORE_SESSION10 ("before-s10"). "grain-s10" is the new default's grain settings on a dataset
# whose "medgan" runs differ (the lesion ROIs keep the liver demo's settings, transposed convolutions included).
BEFORE_SESSION10 = {"model": {"upsample": "transposed"}, TASK: {"mode_seeking_pool": 1, "spectral": 0.0}}
ON_SESSION10 = {
    "before-s10": BEFORE_SESSION10,
    "grain-s10": {"model": {"upsample": "bilinear-output"}, TASK: {"mode_seeking_pool": 4, "spectral": 0.5}},
}
CANDIDATES.update({name: ("medgan", overrides) for name, overrides in ON_SESSION10.items()})
ON_SESSIONS_7_TO_10 = {*ON_SESSION7, *ON_SESSION8, *ON_SESSION9, *ON_SESSION10}
BASE_RECIPES = ("medgan", "dcgan", "standard")
DATASETS = {
    "mni": {"task": "unconditional", "data": {"source": "mni152"}},
    "lesions": {"task": "conditional", "data": {"source": "ct-lesions", "window": "liver-portal"}},
}
SAMPLES = 512  # unconditional samples per run
PER_CLASS = 100  # conditional samples per class per run
HELDOUT_SEED, HELDOUT_PER_CLASS = 5, 30  # new phantom patients for the lesion reference
COLUMNS = (  # (label, key in a run's result, digits)
    ("FID", "fid", 2), ("KID", "kid", 0), ("precision", "precision", 3), ("recall", "recall", 3),
    ("density", "density", 3), ("coverage", "coverage", 3), ("pairwise MS-SSIM", "pairwise_ms_ssim", 3),
    ("nearest-training SSIM", "nearest_ssim", 3), ("top-band power ratio", "high_frequency_ratio", 2),
    ("largest band deviation", "max_band_deviation", 2), ("FRD", "frd", 2),
    ("GLCM contrast ratio", "glcm_contrast_ratio", 2))


def for_task(values: dict, task: str) -> dict:
    """``values`` with the placeholder section ``TASK`` named after ``task`` (the run's own section)."""
    return {task if key == TASK else key: value for key, value in values.items()}


def run_config(dataset: str, name: str, cpu_minutes: float, seed: int, steps: int = 0):
    from medgan.config import deep_update
    from medgan.training.tasks import DEMOS, resolve_config

    base, overrides = CANDIDATES.get(name, (name, {}))
    values = json.loads(json.dumps(DATASETS[dataset]))
    task = values["task"]
    if dataset == "lesions" and base == "medgan":
        values = deep_update(values, DEMOS.get("liver").values)  # portal window, AC head, D 32, its augmentation
    if name in CANDIDATES and name not in ON_SESSION10:  # every earlier candidate: before the grain change
        values = deep_update(values, for_task(BEFORE_SESSION10, task))
    if name in ON_SESSION6:
        values = deep_update(values, for_task(BEFORE_SESSION6, task))
    elif name in CANDIDATES and name not in ON_SESSIONS_7_TO_10:  # those are on the default of their day as it is
        values = deep_update(values, for_task(BEFORE_SESSION5 if name in ON_SESSION5 else BEFORE_SESSION4, task))
    values = deep_update(values, for_task(overrides, task))
    if dataset == "mni" and name in WITHOUT_UNCONDITIONAL_MS:
        values = deep_update(values, {task: {"mode_seeking": 0.0}})
    values = deep_update(values, {"train": {"cpu_minutes": 0 if steps else cpu_minutes, "minutes": 0,
                                            "steps": steps, "seed": seed,
                                            "threads": 1, "eval_every": 0, "sample_every": 10**9,
                                            "checkpoint_every": 10**9}})
    return resolve_config(values, base)


def real_sets(dataset: str, config) -> tuple[object, object]:
    """(training set, reference set for the distribution metrics)."""
    from medgan.data import load_slices

    train = load_slices(config.data, progress=False)
    if dataset != "lesions":
        return train, train
    from medgan.data.phantom.sources import lesion_slice_set

    return train, lesion_slice_set(heldout_rois(config.data.roi_size), config.data, prefix="heldout")


@functools.lru_cache(maxsize=1)
def heldout_rois(roi_size: int):
    """Lesion ROIs of new phantom patients, rendered once per worker process."""
    from medgan.data.phantom.cases import lesion_rois

    return lesion_rois(n_per_class=HELDOUT_PER_CLASS, roi_size=roi_size, seed=HELDOUT_SEED)


def within_class_ms_ssim(images: torch.Tensor, labels: torch.Tensor) -> float:
    from medgan.metrics import pairwise_ms_ssim

    return float(sum(pairwise_ms_ssim(images[labels == c], pairs=200)["mean"] for c in labels.unique())
                 / len(labels.unique()))


def one_run(dataset: str, name: str, seed: int, cpu_minutes: float, out: str, steps: int = 0) -> dict:
    """Trains one recipe/seed under the CPU budget (or for ``steps`` steps) and evaluates it; cached as result.json."""
    torch.set_num_threads(1)
    folder = Path(out) / dataset / name / f"seed{seed}"
    cached = folder / "result.json"
    if cached.exists():
        return json.loads(cached.read_text())
    from medgan.evaluation.utility import synthetic_set
    from medgan.metrics import compute_metrics, get_extractor
    from medgan.metrics.spectrum import spectrum_ratio
    from medgan.visuals import save_grid
    from medgan.inference.sampling import generate, load_generator
    from medgan.training.loop import train

    config = run_config(dataset, name, cpu_minutes, seed, steps)
    train_set, reference = real_sets(dataset, config)
    run = folder / "run"
    if run.exists():  # an interrupted run: start it again
        import shutil
        shutil.rmtree(run)
    cpu_start, wall_start = time.process_time(), time.monotonic()
    trained = train(config, run, progress=False, data=train_set)
    cpu_seconds = time.process_time() - cpu_start
    loaded = load_generator(run, "latest")
    if dataset == "lesions":
        synthetic = synthetic_set(run, PER_CLASS, seed=1000, loaded=loaded)
        fake, labels = synthetic.images, synthetic.labels
    else:
        fake, labels = generate(run, SAMPLES, seed=1000, loaded=loaded)[0], None
    metrics, _ = compute_metrics(reference.images, fake, reference.mapping, get_extractor("offline"),
                                 train=train_set.images)
    distribution, memorization = metrics["distribution"], metrics["memorization"]
    spectrum = spectrum_ratio(reference.images, fake, resamples=50)
    texture = texture_columns(reference.images, fake)
    result = {
        "dataset": dataset, "recipe": name, "seed": seed, "steps": trained.steps, "cpu_seconds": cpu_seconds,
        "wall_seconds": time.monotonic() - wall_start, "cpu_seconds_per_step": cpu_seconds / max(trained.steps, 1),
        "fid": distribution["fid"], "kid": distribution["kid_mean"],
        **{k: distribution[k] for k in ("precision", "recall", "density", "coverage")},
        "pairwise_ms_ssim": metrics["diversity"]["synthetic_ms_ssim"]["mean"],
        "real_pairwise_ms_ssim": metrics["diversity"]["real_ms_ssim"]["mean"],
        "nearest_ssim": memorization["nearest_ssim"]["median"],
        "baseline_nearest_ssim": memorization["baseline_nearest_ssim"]["median"],
        "band_ratios": [band["ratio"] for band in spectrum["bands"]],
        "high_frequency_ratio": spectrum["high_frequency_ratio"], "max_band_deviation": spectrum["max_deviation"],
        **texture,
    }
    if labels is not None:
        result["within_class_ms_ssim"] = within_class_ms_ssim(fake, labels)
        result["real_within_class_ms_ssim"] = within_class_ms_ssim(reference.images, reference.labels)
    folder.mkdir(parents=True, exist_ok=True)
    save_grid(fake[:64], folder / "samples.png", columns=8, scale=2)
    np.save(folder / "samples.npy", fake.numpy().astype(np.float16))  # for measures added later (2 MB per 512)
    cached.write_text(json.dumps(result, indent=2))
    # The run directory is large and only needed for a look at the grid: keep the grid, drop the checkpoints.
    import shutil
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    return result


def texture_columns(real: torch.Tensor, fake: torch.Tensor) -> dict:
    """FRD (medgan's radiomic features) and the synthetic / real ratio of mean GLCM contrast: texture beside the
    power spectrum, which a generator can match with speckle in place of the real images' edges."""
    from medgan.metrics.radiomics import frd, radiomic_features
    from medgan.metrics.texture import glcm_statistics

    contrast = [float(glcm_statistics(images)["contrast"].mean()) for images in (real, fake)]
    return {"frd": frd(radiomic_features(real), radiomic_features(fake)),
            "glcm_contrast_ratio": contrast[1] / contrast[0]}


def cell(values: list[float], digits: int, key: str = "") -> str:
    from medgan.evaluation.utility.statistics import summarize

    # Intervals are clipped to the metric's range (KID's unbiased estimate may be negative; the others may not).
    bounds = None if key in ("kid", "frd") else (0.0, 1.0) if key not in ("fid", "density", "high_frequency_ratio",
                                                                  "max_band_deviation", "glcm_contrast_ratio") \
        else (0.0, float("inf"))
    if not values:  # a measure added after these runs were cached
        return "-"
    summary = summarize(values, bounds=bounds)
    if summary["ci_low"] is None:
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} [{summary['ci_low']:.{digits}f}, {summary['ci_high']:.{digits}f}]"


def table(results: list[dict], dataset: str, order: list[str], cpu_minutes: float, steps: bool = False) -> str:
    rows = [r for r in results if r["dataset"] == dataset]
    if not rows:
        return ""
    columns = list(COLUMNS) + ([("within-class MS-SSIM", "within_class_ms_ssim", 3)]
                               if "within_class_ms_ssim" in rows[0] else [])
    real = rows[0]
    budget = "the steps given per recipe" if steps else f"{cpu_minutes:g} CPU-minutes per run (process time, 1 thread)"
    lines = [f"{dataset}: {budget}, means and 95% t intervals "
             f"over seeds; real pairwise MS-SSIM {real['real_pairwise_ms_ssim']:.3f}, real nearest-training SSIM "
             f"{real['baseline_nearest_ssim']:.3f}" + (f", real within-class MS-SSIM "
                                                      f"{real['real_within_class_ms_ssim']:.3f}"
                                                      if "real_within_class_ms_ssim" in real else ""), "",
             "| recipe | seeds | steps | CPU-s/step | " + " | ".join(label for label, _, _ in columns) + " |",
             "|---" * (4 + len(columns)) + "|"]
    for name in order:
        mine = [r for r in rows if r["recipe"] == name]
        if not mine:
            continue
        steps = sum(r["steps"] for r in mine) / len(mine)
        per_step = sum(r["cpu_seconds_per_step"] for r in mine) / len(mine)
        cells = [cell([r[key] for r in mine if key in r], digits, key) for _, key, digits in columns]
        lines.append(f"| {name} | {len(mine)} | {steps:.0f} | {per_step:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def band_table(results: list[dict], order: list[str]) -> str:
    """Synthetic / real power per radial frequency band (``medgan.metrics.spectrum``), mean over seeds per recipe."""
    rows = [r for r in results if "band_ratios" in r]
    if not rows:
        return ""
    bands = len(rows[0]["band_ratios"])
    lines = ["power ratio per band (cycles per 64 px; the last band includes the corners beyond Nyquist), mean over "
             "seeds [min, max]", "",
             "| recipe | seeds | " + " | ".join(f"{4 * b}-{4 * (b + 1)}" for b in range(bands)) + " |",
             "|---" * (bands + 2) + "|"]
    for name in order:
        mine = [r["band_ratios"] for r in rows if r["recipe"] == name]
        if mine:
            cells = [f"{sum(v[b] for v in mine) / len(mine):.2f} [{min(v[b] for v in mine):.2f}, "
                     f"{max(v[b] for v in mine):.2f}]" for b in range(bands)]
            lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mni", "lesions"], choices=sorted(DATASETS))
    parser.add_argument("--recipes", nargs="+", default=[*BASE_RECIPES, *CANDIDATES],
                        choices=[*BASE_RECIPES, *CANDIDATES])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None, metavar="SEED",
                        help="these seeds instead of --seeds (a screen on the seeds where a candidate failed)")
    parser.add_argument("--cpu-minutes", type=float, default=2.0, help="CPU-minutes of training per run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--steps", nargs="+", default=[], metavar="RECIPE=STEPS",
                        help="train these recipes for a number of steps instead of --cpu-minutes: the steps each "
                             "makes in a budget on a quiet machine, so that a busy machine slows but does not bias "
                             "the comparison")
    parser.add_argument("--out", default="bench-quality")
    parser.add_argument("--report", action="store_true", help="only tabulate the runs already cached in --out")
    args = parser.parse_args()
    seeds = args.seed_list if args.seed_list else range(args.seeds)
    jobs = [(dataset, name, seed) for dataset in args.datasets for seed in seeds for name in args.recipes]
    results = []
    if args.report:
        cached = [Path(args.out, dataset, name, f"seed{seed}", "result.json") for dataset, name, seed in jobs]
        results = [json.loads(path.read_text()) for path in cached if path.exists()]
        jobs = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.parallel, mp_context=context) as pool:
        steps = {name: int(count) for name, count in (item.split("=") for item in args.steps)}
        futures = {pool.submit(one_run, *job, args.cpu_minutes, args.out, steps.get(job[1], 0)): job for job in jobs}
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            print(f"{result['dataset']:8s} {result['recipe']:10s} seed {result['seed']}: {result['steps']} steps, "
                  f"FID {result['fid']:.2f}, pairwise MS-SSIM {result['pairwise_ms_ssim']:.3f} "
                  f"({result['wall_seconds']:.0f} s wall)", flush=True)
    text = "\n\n".join(table(results, dataset, args.recipes, args.cpu_minutes, bool(args.steps))
                         for dataset in args.datasets)
    text += "\n\n" + band_table(results, args.recipes)
    print("\n" + text)
    Path(args.out, "table.md").write_text(text + "\n")
    Path(args.out, "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
