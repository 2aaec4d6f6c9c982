"""The Frid-Adar protocol done properly (issue 28, item 3): classic augmentation added in steps until it
saturates, then synthetic lesions added in steps on top of it, per-class GANs against one conditional GAN, with
3-fold patient-level cross-validation and intervals.

Frid-Adar et al. 2018 (182 liver lesions, 3 classes, 64 x 64 ROIs): classic augmentation raised accuracy from 57%
to 78.6%, where it saturated; per-class DCGAN lesions added on top raised it to 85.7%.

Data (simulated, not patient data): ``--per-class`` lesion ROIs per class (cyst, metastasis, hemangioma) of
phantom patients of dataset seed ``DATASET_SEED`` (patients 13000 on: none shared with ``ct-lesions``, the
utility test patients or the counterfactual benchmark), at the hard regime's dose (``HARD_LESION_DOSE``: where a
real-only classifier is far from perfect), windowed as the liver demo windows its ROIs.

Folds: the patients of each class are dealt in a seeded order to 3 folds (a patient's lesions stay in one fold;
every fold has every class). Per fold, trained on the other two folds only:

* GANs: one class-conditional GAN (the liver demo's config) and one unconditional GAN per class (the same config
  with ``task: unconditional``), each ``--gan-steps`` steps (a fixed count: the result does not depend on the
  machine's load; the per-class arm so costs three times the conditional arm's GAN compute).
* Classifiers (``SmallClassifier``, the utility protocol's network): every arm trains ``--steps`` AdamW steps of
  64 images (a fixed budget, so an arm differs only in its data), without on-line augmentation, on

  - classic k: the real ROIs plus k augmented copies of each (random flip, rotation +/-10 degrees, zoom +/-10%:
    ``classic_augment`` as the utility protocol draws it), k in ``--copies``; copies are nested (k copies are
    the first k of 2k);
  - classic K + synthetic m, for each GAN kind: the largest classic set plus m synthetic ROIs per class per real
    ROI of that class (``--synthetic``, nested as well).

  ``--seeds`` classifier seeds per arm (a seed also draws the copies).

Scores: the 3 folds' out-of-fold predictions are pooled, so every ROI is a test ROI once per seed; accuracy and
balanced accuracy are computed over all ROIs per seed and averaged over seeds. Intervals: 95% percentile bootstrap
over patients (all of a drawn patient's ROIs kept; 5,000 draws) of the seed-averaged score, and the paired
differences against the largest classic arm under the same draws.

Results are cached in ``--work`` (GAN runs, synthetic sets, one file per fold and seed): a rerun resumes.

    python3 benchmarks/frid_adar.py --work /tmp/frid-adar
    python3 benchmarks/frid_adar.py --work /tmp/frid-adar --report   # tabulate the cache, draw the curves
"""

from __future__ import annotations

import os

# One thread per worker process, idle OpenMP workers asleep (as benchmarks/liver_hard_regime.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATASET_SEED = 13
FOLDS = 3
GAN_KINDS = ("conditional", "per-class")
DRAWS = 5000


def liver_config(task: str, steps: int, seed: int):
    """The liver demo's config (``task: conditional``), or the same without its conditional parts."""
    from medgan.demos import demo_config
    from medgan.training.tasks import DEMOS, resolve_config

    overrides = {"train": {"steps": steps, "minutes": 0, "cpu_minutes": 0, "threads": 1, "eval_every": 0,
                           "seed": seed, "sample_every": max(steps, 1)}}
    if task == "conditional":
        return demo_config("liver", overrides=overrides)
    demo = DEMOS.get("liver")
    values = {key: value for key, value in demo.values.items() if key != "conditional"}
    values["model"] = {**values["model"], "auxiliary_classifier": False}
    values["data"] = {**values["data"], "source": demo.source}
    return resolve_config({**values, "task": "unconditional", **overrides})


def lesion_pool(per_class: int, work: Path):
    """The pool of labelled lesion ROIs (a SliceSet whose subjects are patient ids), cached in ``work``."""
    from medgan.data.phantom.cases import lesion_rois
    from medgan.data.phantom.sources import HARD_LESION_DOSE, lesion_slice_set

    cache = work / "pool.pt"
    if cache.exists():
        return torch.load(cache, weights_only=False)
    config = liver_config("conditional", 1, 0).data
    rois = lesion_rois(per_class, config.roi_size, DATASET_SEED, dose=HARD_LESION_DOSE)
    pool = lesion_slice_set(rois, config, prefix="frid-adar")
    torch.save(pool, cache)
    return pool


def fold_of(subjects: list[str], labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fold index per ROI: each class's patients dealt in a seeded order to FOLDS folds."""
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    for label in np.unique(labels):
        patients = sorted({s for s, lab in zip(subjects, labels) if lab == label})
        for index, patient in enumerate(rng.permutation(patients)):
            assignment[str(patient)] = index % FOLDS
    return np.array([assignment[s] for s in subjects])


def subset(pool, rows: np.ndarray):
    index = torch.as_tensor(rows)
    return replace(pool, images=pool.images[index], labels=pool.labels[index],
                   subjects=[pool.subjects[i] for i in rows], sources=[pool.sources[i] for i in rows])


def gan_job(work: str, fold: int, kind: str, class_index: int, steps: int) -> str:
    """Trains (or finds) one GAN of a fold; returns its run directory."""
    from medgan.training.loop import train

    torch.set_num_threads(1)
    pool = torch.load(Path(work) / "pool.pt", weights_only=False)
    folds = fold_of(pool.subjects, pool.labels.numpy())
    rows = np.flatnonzero(folds != fold)
    name = "conditional" if kind == "conditional" else f"class{class_index}"
    if kind != "conditional":
        rows = rows[pool.labels.numpy()[rows] == class_index]
    run = Path(work) / f"fold{fold}" / name
    if (run / "checkpoints" / "latest.pt").exists():
        return str(run)
    if run.exists():
        import shutil

        shutil.rmtree(run)
    data = subset(pool, rows)
    if kind != "conditional":
        data = replace(data, labels=None, class_names=())
    started = time.time()
    train(liver_config("conditional" if kind == "conditional" else "unconditional", steps, fold), run,
          progress=False, data=data)
    print(f"fold {fold} {name}: {steps} steps on {len(rows)} ROIs in {time.time() - started:.0f} s", flush=True)
    return str(run)


def synthetic(work: Path, fold: int, kind: str, per_class: np.ndarray, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``multiple`` x (real ROIs of the class) synthetic ROIs per class from the fold's GAN(s), cached."""
    from medgan.inference.sampling import generate, load_generator

    cache = work / f"fold{fold}" / f"synthetic-{kind}.pt"
    if cache.exists():
        return torch.load(cache)
    conditional = work / f"fold{fold}" / "conditional"
    loaded = load_generator(conditional) if kind == "conditional" else None
    images, labels = [], []
    for index, count in enumerate(per_class):
        n = int(count) * multiple
        if kind == "conditional":
            batch, _ = generate(conditional, n, seed=1000 + index, class_name=loaded.class_names[index], loaded=loaded)
        else:
            batch, _ = generate(work / f"fold{fold}" / f"class{index}", n, seed=1000 + index)
        images.append(batch.float())
        labels.append(torch.full((n,), index, dtype=torch.int64))
    result = (torch.cat(images), torch.cat(labels))
    torch.save(result, cache)
    return result


def nested_synthetic(images: torch.Tensor, labels: torch.Tensor, per_class: np.ndarray, multiple: int):
    """The first ``multiple`` x (real count) synthetic ROIs of every class."""
    rows = np.concatenate([np.flatnonzero(labels.numpy() == c)[: int(n) * multiple] for c, n in enumerate(per_class)])
    return images[torch.as_tensor(rows)], labels[torch.as_tensor(rows)]


def copies(images: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` classic-augmented copies of every image, copy j drawn from its own seed (nested in ``count``)."""
    from medgan.data.transforms import classic_augment

    made = [classic_augment(images, flip=True, rotate_degrees=10.0, scale=0.1,
                            generator=torch.Generator().manual_seed(seed * 1000 + j)) for j in range(count)]
    return torch.cat(made) if made else images[:0]


def arm_names(args: argparse.Namespace) -> list[str]:
    names = [f"classic {k}" for k in args.copies]
    return names + [f"{kind} +{m}" for kind in GAN_KINDS for m in args.synthetic]


def classifier_job(work: str, fold: int, seed: int, args: argparse.Namespace) -> str:
    """Every arm's classifier of one fold and seed; their test probabilities saved as one .npz."""
    from medgan.evaluation.utility.classifier import predict_probabilities, train_classifier
    from medgan.evaluation.utility.config import UtilityConfig

    torch.set_num_threads(1)
    out = Path(work) / f"fold{fold}" / f"seed{seed}.npz"
    if out.exists():
        return str(out)
    pool = torch.load(Path(work) / "pool.pt", weights_only=False)
    folds = fold_of(pool.subjects, pool.labels.numpy())
    train_rows, test_rows = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    images, labels = pool.images[torch.as_tensor(train_rows)].float(), pool.labels[torch.as_tensor(train_rows)]
    classes = len(pool.class_names)
    per_class = np.bincount(labels.numpy(), minlength=classes)
    config = UtilityConfig(augment=False, threads=1)
    augmented = copies(images, max(args.copies), seed)
    pools = {kind: torch.load(Path(work) / f"fold{fold}" / f"synthetic-{kind}.pt") for kind in GAN_KINDS}
    results = {}
    for name in arm_names(args):
        if name.startswith("classic"):
            k = int(name.split()[1])
            x = torch.cat([images, augmented[: k * len(images)]])
            y = labels.repeat(k + 1)
        else:
            kind, m = name.split(" +")
            fake = nested_synthetic(*pools[kind], per_class, int(m))
            x = torch.cat([images, augmented[: max(args.copies) * len(images)], fake[0]])
            y = torch.cat([labels.repeat(max(args.copies) + 1), fake[1]])
        model = train_classifier(x, y, classes, config, seed=seed, steps=args.steps)
        results[name] = predict_probabilities(model, pool.images[torch.as_tensor(test_rows)].float(), config)
    np.savez(out, rows=test_rows, names=np.array(list(results)), probabilities=np.stack(list(results.values())))
    return str(out)


def balanced(correct: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Balanced accuracy of ``correct`` [..., N] (mean over classes of the per-class hit rate)."""
    rates = [correct[..., labels == c].mean(axis=-1) for c in range(classes) if (labels == c).any()]
    return np.mean(rates, axis=0)


def summarise(work: Path, args: argparse.Namespace) -> dict:
    """Scores per arm with patient-bootstrap intervals, and paired differences against the largest classic arm."""
    pool = torch.load(work / "pool.pt", weights_only=False)
    labels, subjects = pool.labels.numpy(), np.array(pool.subjects)
    names = arm_names(args)
    correct = np.zeros((args.seeds, len(names), len(labels)))
    for fold in range(FOLDS):
        for seed in range(args.seeds):
            saved = np.load(work / f"fold{fold}" / f"seed{seed}.npz")
            order = [list(saved["names"]).index(name) for name in names]
            predicted = saved["probabilities"][order].argmax(axis=-1)
            correct[seed][:, saved["rows"]] = predicted == labels[saved["rows"]]
    classes = len(pool.class_names)
    reference = names.index(f"classic {max(args.copies)}")
    patients = np.unique(subjects)
    members = [np.flatnonzero(subjects == p) for p in patients]
    rng = np.random.default_rng(0)
    draws = {"accuracy": [], "balanced_accuracy": []}
    for _ in range(DRAWS):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(patients), len(patients))])
        sample = correct[:, :, rows]
        draws["accuracy"].append(sample.mean(axis=-1).mean(axis=0))
        draws["balanced_accuracy"].append(balanced(sample, labels[rows], classes).mean(axis=0))
    result = {"arms": {}, "rois": len(labels), "patients": len(patients), "class_names": list(pool.class_names),
              "per_class": np.bincount(labels).tolist(), "settings": {k: v for k, v in vars(args).items()
                                                                      if k not in ("report",)}}
    for metric, values in draws.items():
        values = np.array(values)  # [DRAWS, arms]
        per_seed = correct.mean(axis=-1) if metric == "accuracy" else balanced(correct, labels, classes)
        full = per_seed.mean(axis=0)
        for index, name in enumerate(names):
            difference = values[:, index] - values[:, reference]
            result["arms"].setdefault(name, {})[metric] = {
                "mean": float(full[index]), "low": float(np.quantile(values[:, index], 0.025)),
                "high": float(np.quantile(values[:, index], 0.975)), "seeds": per_seed[:, index].tolist(),
                "minus_classic_max": {"mean": float(full[index] - full[reference]),
                                      "low": float(np.quantile(difference, 0.025)),
                                      "high": float(np.quantile(difference, 0.975))}}
    return result


def markdown(result: dict, args: argparse.Namespace) -> str:
    header = ("| arm | training images (fold mean) | accuracy [95% CI] | balanced accuracy [95% CI] | "
              "balanced accuracy - classic max [95% CI] |")
    lines = [header, "|---|---|---|---|---|"]
    real = sum(result["per_class"]) * (FOLDS - 1) / FOLDS
    for name, scores in result["arms"].items():
        if name.startswith("classic"):
            count = real * (int(name.split()[1]) + 1)
        else:
            count = real * (max(args.copies) + 1 + int(name.split("+")[1]))
        acc, bal = scores["accuracy"], scores["balanced_accuracy"]
        diff = bal["minus_classic_max"]
        lines.append(f"| {name} | {count:.0f} | {acc['mean']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] | "
                     f"{bal['mean']:.3f} [{bal['low']:.3f}, {bal['high']:.3f}] | "
                     f"{diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}] |")
    return "\n".join(lines)


def plot(result: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a benchmark script, not the library: it may choose its backend
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    arms = result["arms"]

    def band(axis, xs, names, label, colour):
        means = [arms[n]["balanced_accuracy"]["mean"] for n in names]
        lows = [arms[n]["balanced_accuracy"]["low"] for n in names]
        highs = [arms[n]["balanced_accuracy"]["high"] for n in names]
        axis.plot(xs, means, "o-", color=colour, label=label)
        axis.fill_between(xs, lows, highs, color=colour, alpha=0.2)

    band(axes[0], args.copies, [f"classic {k}" for k in args.copies], "real + classic copies", "tab:grey")
    axes[0].set_xlabel("classic augmented copies per real ROI")
    axes[0].set_ylabel("balanced accuracy, new patients (3-fold CV)")
    axes[0].set_xscale("symlog", linthresh=1)
    top = max(args.copies)
    for kind, colour in zip(GAN_KINDS, ("tab:blue", "tab:orange")):
        band(axes[1], [0, *args.synthetic], [f"classic {top}"] + [f"{kind} +{m}" for m in args.synthetic],
             f"classic {top} + {kind} GAN" + ("s" if kind == "per-class" else ""), colour)
    axes[1].set_xlabel(f"synthetic ROIs per real ROI, on top of classic {top}")
    axes[1].set_xscale("symlog", linthresh=1)
    axes[0].set_xticks(args.copies, [str(k) for k in args.copies])
    axes[1].set_xticks([0, *args.synthetic], ["0", *(str(m) for m in args.synthetic)])
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle("Frid-Adar protocol on simulated liver lesions (cyst / metastasis / hemangioma), "
                    "95% patient-bootstrap bands", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/frid-adar")
    parser.add_argument("--per-class", type=int, default=45, help="lesion ROIs per class in the pool")
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--copies", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    parser.add_argument("--synthetic", type=int, nargs="+", default=[1, 3, 9],
                        help="synthetic ROIs per real ROI of the class, on top of the largest classic arm")
    parser.add_argument("--steps", type=int, default=400, help="classifier optimizer steps (every arm)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--figure", help="write the curves to this PNG")
    parser.add_argument("--report", action="store_true", help="only tabulate the cache")
    args = parser.parse_args()
    if min(args.synthetic) < 1 or min(args.copies) < 0:
        parser.error("--synthetic takes multiples >= 1 (0 is the largest classic arm), --copies counts >= 0")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if not args.report:
        started = time.time()
        pool = lesion_pool(args.per_class, work)
        print(f"pool: {len(pool.labels)} ROIs of {len(set(pool.subjects))} patients "
              f"({time.time() - started:.0f} s)", flush=True)
        context = multiprocessing.get_context("spawn")
        classes = len(pool.class_names)
        with ProcessPoolExecutor(max_workers=args.parallel, mp_context=context) as workers:
            gans = [(fold, "conditional", -1) for fold in range(FOLDS)]
            gans += [(fold, "per-class", c) for fold in range(FOLDS) for c in range(classes)]
            for future in [workers.submit(gan_job, str(work), f, k, c, args.gan_steps) for f, k, c in gans]:
                future.result()
            print(f"GANs done ({time.time() - started:.0f} s)", flush=True)
            folds = fold_of(pool.subjects, pool.labels.numpy())
            for fold in range(FOLDS):
                per_class = np.bincount(pool.labels.numpy()[folds != fold], minlength=classes)
                for kind in GAN_KINDS:
                    synthetic(work, fold, kind, per_class, max(args.synthetic))
            jobs = [workers.submit(classifier_job, str(work), f, s, args) for s in range(args.seeds)
                    for f in range(FOLDS)]
            for future in jobs:
                future.result()
        print(f"classifiers done ({time.time() - started:.0f} s)", flush=True)
    result = summarise(work, args)
    result["cpu"] = cpu_name()
    (work / "results.json").write_text(json.dumps(result, indent=2))
    print(markdown(result, args))
    if args.figure:
        plot(result, args, Path(args.figure))


def cpu_name() -> str:
    from inversion import cpu_name as name  # benchmarks/ is on sys.path

    return name()


if __name__ == "__main__":
    main()
