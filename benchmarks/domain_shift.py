"""Domain shift (issue 28, item 2): does GAN translation of the training images into the target domain's look help a
segmenter more than classic intensity augmentation or histogram matching? (After Sandfort et al. 2019, who
translated contrast CT into non-contrast CT with a CycleGAN to train kidney segmentation.)

Simulated CT phantom, not patient data. Per shift (``--shifts``):

- ``phase``: labelled portal-venous slices -> unenhanced test slices;
- ``dose``: labelled routine-dose (portal) slices -> quarter-dose test slices (``render_patient(dose=0.25)``);
- ``t1t2``: labelled T1 brain MR slices -> T2 test slices, on the simulated brain-tumour cohort, segmenting CSF,
  grey and white matter and the whole tumour (``domain_shift_brain.py`` has its data; the rest of this docstring
  describes the CT shifts, and that module where the brain differs).

Patients (phantom dataset seeds nobody else uses: ct-phantom 0, ct-lesions 1, paired tests 2, benchmarks 5-8):

- ``TRAIN_SEED`` 21: the labelled source-domain training patients (also rendered in the target domain, with the
  same labels, for the upper-bound row only);
- ``TARGET_SEED`` 22: other patients, target domain, *unlabelled*: the reference of histogram matching and domain A
  of the CycleGAN;
- ``TEST_SEED`` 23: new patients, never seen by a segmenter or the GAN, rendered in both domains (target: the test;
  source: the in-domain reference).

Each slice is rendered at 128 px (400 mm field of view) and block-averaged to 64 px (the demo's resolution), its
labels reduced to classes (liver = liver + intrahepatic vessels + lesions, as organ contours include them; kidney)
and taken at 64 px by majority over each 2 x 2 block. Images enter the segmenter through the abdomen window
(level 50, width 400 HU) mapped to [-1, 1].

Arms, all trained with ``medgan.evaluation.segmentation.train_segmenter`` (MONAI U-Net, Dice + CE, its rotation /
zoom augmentation in every arm) for the same number of optimizer steps (``--epochs`` passes over the labelled
originals), seeds 0..seeds-1 paired across arms (same initial weights and batch streams):

- ``none``: the source-domain originals;
- ``intensity``: the originals + ``INTENSITY_COPIES`` copies with random gamma, contrast, brightness, blur and
  noise (``acquisition_augment``), drawn anew per seed;
- ``histmatch``: every original histogram-matched (``skimage.exposure.match_histograms``, in HU) to the pooled
  unlabelled target-domain slices;
- ``histmatch-mix``: the originals + their histogram-matched copies (1:1), the like-for-like baseline of ``gan-mix``
  (added after the first run, which compared ``gan-mix`` with ``histmatch`` alone);
- ``gan-mix``: the originals + their CycleGAN translations into the target domain (1:1), the masks of the originals;
- ``gan-only``: the translations alone (a variant fixed before any result was seen);
- ``target``: the labelled target-domain slices of the training patients (upper bound).

Dice per test patient over its slices (``subject_dice``), per class; a seed's value is the mean over patients.
Intervals: 95% t over seeds (what retraining varies), and for the paired differences also a bootstrap over test
patients of the seed-averaged per-patient difference (what the choice of test patients varies).

The CycleGAN is the ``phases`` demo's recipe and budget (6 wall-clock minutes, ``demo_config("phases")``; for
``t1t2`` without identity loss and identity start, ``domain_shift_brain.gan_overrides``), trained per shift on the
labelled source slices (domain B) and the unlabelled target slices (domain A), one torch thread; its ``best.pt``
translates B -> A. ``--gan-seeds G`` trains G CycleGANs (training seeds 0..G-1); segmenter seed s then uses the
translations of GAN s mod G, so the intervals over seeds carry the GAN's own variation too. Renders, the GAN run and the translations are cached under ``--work``
(``--gan-run SHIFT=RUN`` reuses another run). The figures of docs/benchmarks.md ("Domain shift"), one process per
shift:

    PYTHONPATH=src python3 benchmarks/domain_shift.py --shifts phase --seeds 5 --epochs 40 \
        --work runs/domain-shift --out runs/domain-shift/phase.json
    PYTHONPATH=src python3 benchmarks/domain_shift.py --shifts dose --seeds 5 --epochs 40 \
        --work runs/domain-shift --out runs/domain-shift/dose.json

T1 -> T2 with five CycleGANs, trained first (two processes at a time, seeds 0 2 4 and 1 3), then the segmenters:

    python3 benchmarks/domain_shift.py --shifts t1t2 --work runs/domain-shift --train-gan 0   # ... to 4
    python3 benchmarks/domain_shift.py --shifts t1t2 --seeds 5 --gan-seeds 5 --epochs 40 \
        --work runs/domain-shift --out runs/domain-shift/t1t2.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import domain_shift_brain as brain  # same folder
import numpy as np
import torch
from inversion import cpu_name  # same folder
from scipy import stats
from skimage.exposure import match_histograms

from medgan.data.phantom.cases import patient_seed, render_patient
from medgan.data.phantom.sources import slice_heights
from medgan.data.phantom.tissue import LABEL
from medgan.data.transforms import acquisition_augment
from medgan.evaluation.segmentation import (
    LabelSet,
    SegmentationConfig,
    SegmentationPairs,
    predict_labels,
    subject_dice,
    train_segmenter,
    training_steps,
)

TRAIN_SEED, TARGET_SEED, TEST_SEED = 21, 22, 23  # phantom dataset seeds (patients 21000+, 22000+, 23000+)
RENDER_SIZE, SIZE = 128, 64  # rendered, then block-averaged to the demo's 64 px
WINDOW = (50.0, 400.0)  # abdomen window (level, width) in HU -> [-1, 1]
INTENSITY_COPIES = 3  # intensity-augmented copies per original in the "intensity" arm
CLASSES = LabelSet("liver-kidney", (("liver", (LABEL["liver"], LABEL["liver-vessel"], LABEL["lesion"])),
                                    ("kidney", (LABEL["kidney"],))),
                   "liver (with intrahepatic vessels and lesions) and kidney; everything else background")
ARMS = ("none", "intensity", "histmatch", "histmatch-mix", "gan-mix", "gan-only", "target")
# Brain T1 -> T2 only: contrast inversion inside the head, then histogram matching, + originals (1:1), the classic
# baseline a monotone map cannot give (fixed before any t1t2 result was seen; its head mask was corrected after the
# first seed, when the figure showed grey backgrounds).
EXTRA_ARMS = {"inverted-mix": ("gan-mix", "inverted-mix")}
# Like for like: translations + originals against histogram-matched + originals, translations alone against
# histogram-matched alone.
DIFFERENCES = (("gan-mix", "intensity"), ("gan-mix", "histmatch"), ("gan-mix", "histmatch-mix"),
               ("gan-only", "intensity"), ("gan-only", "histmatch"))


@dataclass(frozen=True)
class Shift:
    """A source -> target domain pair: ``render_patient`` keywords of each (CT), or ``{"sequence": ...}`` (brain)."""

    name: str
    source: dict
    target: dict
    description: str
    data: str = "ct"  # "ct": the abdominal phantom (this module); "brain": domain_shift_brain


SHIFTS = {
    "phase": Shift("phase", {"phase": "portal", "dose": 1.0}, {"phase": "unenhanced", "dose": 1.0},
                   "portal-venous -> unenhanced CT (routine dose)"),
    "dose": Shift("dose", {"phase": "portal", "dose": 1.0}, {"phase": "portal", "dose": 0.25},
                  "routine dose -> quarter dose CT (portal-venous)"),
    "t1t2": Shift("t1t2", {"sequence": "t1"}, {"sequence": "t2"},
                  "T1 -> T2 brain MR (simulated tumour patients)", "brain"),
}


# --------------------------------------------------------------------------------------------------------
# data


ROLE_SEEDS = {"train": TRAIN_SEED, "target": TARGET_SEED, "test": TEST_SEED}


def render_set(role: str, patients: int, slices: int, domain: dict, cache: Path) -> dict:
    """``{"hu": [N, 64, 64] float32, "labels": [N, 64, 64] int64 classes, "subjects": [N]}`` of the role's
    phantom dataset (``ROLE_SEEDS``), cached in ``cache``."""
    dataset_seed = ROLE_SEEDS[role]
    if cache.exists():
        stored = np.load(cache)
        return {"hu": stored["hu"], "labels": stored["labels"], "subjects": list(stored["subjects"])}
    hu, labels, subjects = [], [], []
    for index in range(patients):
        patient = patient_seed(dataset_seed, index)
        for z in slice_heights(patient, slices):
            case = render_patient(patient, RENDER_SIZE, n_lesions=(0, 2), z_mm=float(z), **domain)
            hu.append(case.image_hu.reshape(SIZE, 2, SIZE, 2).mean(axis=(1, 3)))
            labels.append(brain.halved_classes(CLASSES, case.organ_labels))
            subjects.append(case.patient)
    result = {"hu": np.stack(hu).astype(np.float32), "labels": np.stack(labels).astype(np.int64),
              "subjects": subjects}
    brain.save_npz(cache, hu=result["hu"], labels=result["labels"], subjects=np.array(subjects))
    return result


def hu_to_unit(hu: np.ndarray) -> torch.Tensor:
    """HU [N, H, W] -> [N, 1, H, W] in [-1, 1] through the abdomen window."""
    level, width = WINDOW
    return torch.from_numpy(np.clip((hu - level) / (width / 2), -1.0, 1.0)).float()[:, None]


@dataclass(frozen=True)
class Data:
    """What differs between the CT phantom and the brain cohort: classes, rendering, the segmenter's input map, the
    CycleGAN's settings and translation."""

    classes: LabelSet
    render: object  # (role, patients, slices, domain, cache) -> {"hu", "labels", "subjects"}
    to_unit: object  # stored values [N, H, W] -> [N, 1, H, W] in [-1, 1]
    gan_overrides: dict
    translate: object  # (run, stored source values) -> stored target-domain values
    tag: object  # domain -> cache-name fragment
    extra_arms: tuple[str, ...] = ()  # arms only this data has (EXTRA_ARMS)


def pairs(data: Data, values: np.ndarray, labels: np.ndarray, subjects: list[str] | None = None) -> SegmentationPairs:
    return SegmentationPairs(data.to_unit(values), torch.from_numpy(labels), list(subjects or []))


def histogram_matched(hu: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each slice of ``hu`` matched to the pooled histogram of all ``reference`` slices (2D: rows stacked)."""
    pooled = reference.reshape(-1, reference.shape[-1])
    return np.stack([match_histograms(image, pooled) for image in hu]).astype(np.float32)


def intensity_augmented(images: torch.Tensor, copies: int, seed: int) -> torch.Tensor:
    """``copies`` random intensity versions of every image (in [-1, 1]): gamma 0.6-1.6 (log-uniform), contrast
    x0.75-1.25 about the image mean, brightness +/-0.1, then blur and noise (``acquisition_augment``)."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    out = []
    count = images.shape[0]

    def draw(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, 1, 1, 1, generator=generator)

    for _ in range(copies):
        unit = (images + 1) / 2
        unit = unit.clamp(0, 1) ** torch.exp(draw(np.log(0.6), np.log(1.6)))
        mean = unit.mean(dim=(2, 3), keepdim=True)
        unit = (unit - mean) * draw(0.75, 1.25) + mean + draw(-0.1, 0.1)
        out.append(acquisition_augment((unit * 2 - 1).clamp(-1, 1), generator=generator).clamp(-1, 1))
    return torch.cat(out)


# --------------------------------------------------------------------------------------------------------
# the CycleGAN (domain A = target, domain B = source, as in the phases demo: A unenhanced, B portal)


def gan_run(shift: Shift, source_hu: np.ndarray, target_hu: np.ndarray, work: Path, minutes: float,
            given: Path | None, seed: int = 0) -> Path:
    """A CycleGAN run trained unpaired on the source training slices (B) and unlabelled target slices (A): the
    phases demo's recipe and budget, training seed ``seed``; reused when ``given`` (seed 0) or
    ``work/gan-<shift>[-seed<seed>]/`` already holds one."""
    if given is not None and seed == 0:
        return given
    run = work / (f"gan-{shift.name}" if seed == 0 else f"gan-{shift.name}-seed{seed}")
    if (run / "checkpoints").exists() and any((run / "checkpoints").glob("*.pt")):
        print(f"reusing the CycleGAN run {run}")
        return run
    from medgan.demos import demo_config
    from medgan.metrics import training_score
    from medgan.training.loop import train

    folders = {}
    for name, stack in (("source", source_hu), ("target", target_hu)):
        folder = work / f"gan-data-{shift.name}{'' if seed == 0 else f'-seed{seed}'}" / name
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(stack):  # names differ between domains: no subject is taken as shared
            np.save(folder / f"{name}-slice{index:04d}.npy", image)
        folders[name] = folder
    data = DATA[shift.data]
    overrides = {**data.gan_overrides,
                 "data": {**data.gan_overrides.get("data", {}), "source": str(folders["source"]),
                          "domain_a": [str(folders["target"])]},
                 "train": {"threads": 1, "seed": seed}}
    config = demo_config("phases", minutes, overrides)
    print(f"training the CycleGAN ({shift.description}, seed {seed}) for {minutes:g} minutes into {run}")
    result = train(config, run, progress=False, scorer=training_score)
    print(result.summary())
    return run


def translated_hu(run: Path, source_hu: np.ndarray) -> np.ndarray:
    """The source slices translated B -> A (into the target domain), in HU."""
    import medgan

    model = medgan.load(run)
    return np.stack([model.translate(image, direction="b2a").array for image in source_hu]).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# statistics


def t_interval(values: list[float] | np.ndarray, confidence: float = 0.95) -> dict:
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return {"mean": mean, "low": None, "high": None, "n": len(values)}
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(values)}


def patient_bootstrap(differences: np.ndarray, draws: int = 10_000, seed: int = 0) -> dict:
    """95% percentile bootstrap over test patients of the mean of per-patient differences ``[S]`` (NaN skipped)."""
    values = differences[np.isfinite(differences)]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (draws, len(values)))].mean(axis=1)
    return {"mean": float(values.mean()), "low": float(np.quantile(means, 0.025)),
            "high": float(np.quantile(means, 0.975)), "n": len(values)}


def seed_rows(dice: list[np.ndarray]) -> np.ndarray:
    """Per-seed ``[seeds, K + 1]``: the mean over patients of each class, then the mean over classes."""
    per_class = np.stack([np.nanmean(matrix, axis=0) for matrix in dice])
    return np.concatenate([per_class, per_class.mean(axis=1, keepdims=True)], axis=1)


def patient_mean_dice(matrix: np.ndarray) -> np.ndarray:
    """Per patient: the mean Dice over the classes it has ``[S]``."""
    return np.nanmean(matrix, axis=1)


# --------------------------------------------------------------------------------------------------------
# one shift


def rendered(shift: Shift, args: argparse.Namespace, role: str, domain: str) -> dict:
    """The slices of ``role`` ("train", "target" or "test") in ``domain`` ("source" or "target"), cached."""
    data = DATA[shift.data]
    kwargs = shift.source if domain == "source" else shift.target
    patients = {"train": args.train_patients, "target": args.target_patients, "test": args.test_patients}[role]
    folder = args.work / "render" / ("" if shift.data == "ct" else shift.data)
    return data.render(role, patients, args.slices, kwargs,
                       folder / f"{role}-{data.tag(kwargs)}-{patients}x{args.slices}.npz")


def run_shift(shift: Shift, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    data = DATA[shift.data]
    work = args.work / shift.name
    names = data.classes.class_names
    source = rendered(shift, args, "train", "source")
    target_labelled = rendered(shift, args, "train", "target")
    unlabelled = rendered(shift, args, "target", "target")
    tests = {domain: rendered(shift, args, "test", domain) for domain in ("target", "source")}
    print(f"[{shift.name}] rendered in {time.perf_counter() - started:.0f} s")

    gan_started = time.perf_counter()
    runs, fakes = [], []
    for gan_seed in range(args.gan_seeds):
        run = gan_run(shift, source["hu"], unlabelled["hu"], work, args.gan_minutes,
                      args.gan_run.get(shift.name) if args.gan_run else None, gan_seed)
        runs.append(run)
        fakes.append(_translations(data, run, source["hu"], work / ("translated.npz" if gan_seed == 0
                                                                     else f"translated-seed{gan_seed}.npz")))
    gan_seconds = time.perf_counter() - gan_started
    matched_hu = histogram_matched(source["hu"], unlabelled["hu"])
    fidelity_per_gan = [fidelity(data, source, target_labelled, fake, matched_hu) for fake in fakes]
    print(f"[{shift.name}] GAN + translation {gan_seconds:.0f} s; {json.dumps(fidelity_per_gan[0])}")

    originals = pairs(data, source["hu"], source["labels"])
    config = SegmentationConfig(epochs=args.epochs, batch_size=8, seeds=args.seeds)
    steps = training_steps(len(originals), config)
    test_target = pairs(data, tests["target"]["hu"], tests["target"]["labels"], tests["target"]["subjects"])
    test_source = pairs(data, tests["source"]["hu"], tests["source"]["labels"], tests["source"]["subjects"])
    matched = pairs(data, matched_hu, source["labels"])
    arm_names = (*ARMS, *data.extra_arms)
    dice: dict[str, list[np.ndarray]] = {arm: [] for arm in arm_names}
    dice_source: dict[str, list[np.ndarray]] = {arm: [] for arm in arm_names}
    inverted = pairs(data, inverted_matched(source["hu"], unlabelled["hu"]), source["labels"]) \
        if data.extra_arms else None
    for seed in range(args.seeds):
        fake = pairs(data, fakes[seed % len(fakes)], source["labels"])
        arm_data = {
            "none": originals,
            "intensity": _concat(originals, SegmentationPairs(
                intensity_augmented(originals.images, INTENSITY_COPIES, seed),
                originals.labels.repeat(INTENSITY_COPIES, 1, 1))),
            "histmatch": matched,
            "histmatch-mix": _concat(originals, matched),
            "gan-mix": _concat(originals, fake),
            "gan-only": fake,
            "target": pairs(data, target_labelled["hu"], target_labelled["labels"]),
        }
        if inverted is not None:
            arm_data["inverted-mix"] = _concat(originals, inverted)
        for arm in arm_names:
            arm_started = time.perf_counter()
            model = train_segmenter(arm_data[arm], len(names), config, seed, steps)
            dice[arm].append(subject_dice(predict_labels(model, test_target.images), test_target.labels,
                                          test_target.subjects, len(names)))
            dice_source[arm].append(subject_dice(predict_labels(model, test_source.images), test_source.labels,
                                                 test_source.subjects, len(names)))
            print(f"[{shift.name}] seed {seed} {arm:10s} target Dice {np.nanmean(dice[arm][-1], axis=0).round(3)} "
                  f"source Dice {np.nanmean(dice_source[arm][-1], axis=0).round(3)} "
                  f"({time.perf_counter() - arm_started:.0f} s)", flush=True)
    columns = (*names, "mean")
    arms = {arm: {column: t_interval(seed_rows(dice[arm])[:, k]) for k, column in enumerate(columns)}
            for arm in arm_names}
    in_domain = {arm: {column: t_interval(seed_rows(dice_source[arm])[:, k]) for k, column in enumerate(columns)}
                 for arm in arm_names}
    differences = {}
    for arm, base in (*DIFFERENCES, *(EXTRA_ARMS[name] for name in data.extra_arms)):
        rows = seed_rows(dice[arm]) - seed_rows(dice[base])
        per_patient = np.mean([patient_mean_dice(a) - patient_mean_dice(b)
                               for a, b in zip(dice[arm], dice[base])], axis=0)
        differences[f"{arm} - {base}"] = {
            **{column: t_interval(rows[:, k]) for k, column in enumerate(columns)},
            "mean_patient_bootstrap": patient_bootstrap(per_patient)}
    return {
        "shift": shift.description, "source": shift.source, "target": shift.target,
        "classes": data.classes.description, "class_names": list(names),
        "arms": arms, "in_domain": in_domain, "differences": differences,
        "per_seed_subject_dice": {arm: [m.tolist() for m in rows] for arm, rows in dice.items()},
        "test_subjects": sorted(set(test_target.subjects)),
        "gan_runs": [str(run) for run in runs], "gan_and_translation_seconds": round(gan_seconds, 1),
        "fidelity": fidelity_per_gan[0], "fidelity_per_gan": fidelity_per_gan,
        "sizes": {"train_slices": len(originals), "train_patients": args.train_patients,
                  "unlabelled_target_slices": len(unlabelled["hu"]), "unlabelled_target_patients": args.target_patients,
                  "test_slices": len(test_target), "test_patients": args.test_patients, "image_px": SIZE,
                  "steps_per_run": steps, "gans": len(runs)},
        "seconds": round(time.perf_counter() - started, 1),
    }


def train_gan_only(shift: Shift, args: argparse.Namespace) -> Path:
    """Renders the shift's training and unlabelled target slices and trains CycleGAN ``args.train_gan``."""
    source, unlabelled = rendered(shift, args, "train", "source"), rendered(shift, args, "target", "target")
    return gan_run(shift, source["hu"], unlabelled["hu"], args.work / shift.name, args.gan_minutes, None,
                   args.train_gan)


def _translations(data: Data, run: Path, source: np.ndarray, cache: Path) -> np.ndarray:
    """The source slices translated by ``run``, cached in ``cache`` (valid for the same run, not older than its
    checkpoints)."""
    newest = max(path.stat().st_mtime for path in (run / "checkpoints").glob("*.pt"))
    stored = np.load(cache) if cache.exists() and cache.stat().st_mtime >= newest else None
    if stored is not None and str(stored["run"]) == str(run.resolve()) and len(stored["hu"]) == len(source):
        return stored["hu"]
    fake = data.translate(run, source)
    brain.save_npz(cache, hu=fake, run=np.array(str(run.resolve())))
    return fake


def _tag(domain: dict) -> str:
    return f"{domain['phase']}-d{domain['dose']:g}"


def inverted_matched(values: np.ndarray, reference: np.ndarray, head: float = -0.6) -> np.ndarray:
    """The classic answer to an inverted contrast (brain T1 -> T2): inside the head (unit values above ``head``;
    the background stays -1) each slice is negated and histogram-matched to the pooled head pixels of the target
    slices. Matching the head alone: a whole-slice match maps a slice's large, flat background to grey wherever
    its share of the slice exceeds the reference's."""
    pooled = reference[reference > head]
    out = np.full_like(values, -1.0, dtype=np.float32)
    for image, result in zip(values, out):
        inside = image > head
        result[inside] = match_histograms(-image[inside], pooled)
    return out


def _concat(a: SegmentationPairs, b: SegmentationPairs) -> SegmentationPairs:
    return SegmentationPairs(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]))


def fidelity(data: Data, source: dict, target: dict, fake: np.ndarray, matched: np.ndarray) -> dict:
    """How close translated / matched training slices are to the same slices truly rendered in the target domain
    (the training patients' own target rendering, which only this check and the upper-bound arm use): mean
    absolute error inside the body (CT: > -500 HU) or brain (MR: labelled pixels), per-class medians. CT in HU
    (keys ``mae_hu``, ``median_hu_CLASS``), MR in unit intensities (``mae_unit``, ``median_CLASS``)."""
    ct = data.classes is CLASSES
    inside = target["hu"] > -500 if ct else source["labels"] > 0
    stacks = (("source", source["hu"]), ("gan", fake), ("histmatch", matched))
    result = {"mae_hu" if ct else "mae_unit": {name: float(np.abs(stack - target["hu"])[inside].mean())
                                               for name, stack in stacks}}
    for k, name in enumerate(data.classes.class_names, start=1):
        mask = source["labels"] == k
        result[f"median_hu_{name}" if ct else f"median_{name}"] = {
            label: float(np.median(stack[mask])) for label, stack in (*stacks[:1], ("target", target["hu"]),
                                                                      *stacks[1:])}
    return result


DATA = {
    "ct": Data(CLASSES, render_set, hu_to_unit,
               {"data": {"modality": "ct", "crop_foreground": False, "min_foreground": 0.0}},
               translated_hu, _tag),
    "brain": Data(brain.CLASSES, brain.render_set, brain.to_unit, brain.gan_overrides(), brain.translated,
                  lambda domain: domain["sequence"], ("inverted-mix",)),
}


# --------------------------------------------------------------------------------------------------------
# output


def _cell(summary: dict) -> str:
    if summary["low"] is None:
        return f"{summary['mean']:.3f}"
    return f"{summary['mean']:.3f} [{summary['low']:.3f}, {summary['high']:.3f}]"


def _signed(summary: dict) -> str:
    if summary["low"] is None:
        return f"{summary['mean']:+.3f}"
    return f"{summary['mean']:+.3f} [{summary['low']:+.3f}, {summary['high']:+.3f}]"


ARM_TITLES = {
    "none": "(a) no augmentation", "intensity": f"(b) intensity augmentation (+{INTENSITY_COPIES} copies)",
    "histmatch": "(c) histogram matching", "histmatch-mix": "(c') histogram-matched + originals (1:1)",
    "gan-mix": "(d) CycleGAN translations + originals (1:1)",
    "gan-only": "(d') CycleGAN translations only", "target": "(e) upper bound: labelled target-domain slices",
    "inverted-mix": "(c'') inverted, histogram-matched + originals (1:1)",
}


def markdown(result: dict) -> str:
    lines = []
    for shift in result["shifts"].values():
        classes = shift["class_names"]
        names = (*classes, "mean")
        sizes = shift["sizes"]
        lines += [f"### {shift['shift']}", "",
                  (f"{sizes['train_patients']} labelled training patients ({sizes['train_slices']} slices), "
                  f"{sizes['unlabelled_target_patients']} unlabelled target-domain patients, "
                  f"{sizes['test_patients']} test patients ({sizes['test_slices']} slices), {sizes['image_px']} px, "
                  f"{sizes['steps_per_run']} steps per run, {result['seeds']} seeds. Dice on the target-domain test "
                   "patients, mean over seeds [95% t over seeds]."), "",
                  "| arm | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for arm in shift["arms"]:
            lines.append(f"| {ARM_TITLES[arm]} | " + " | ".join(_cell(shift["arms"][arm][c]) for c in names) + " |")
        lines.append("| (e) in-domain: (a) tested on source-domain test patients | "
                     + " | ".join(_cell(shift["in_domain"]["none"][c]) for c in names) + " |")
        lines += ["", ("Paired differences (same seeds, same test patients): mean [95% t over seeds]; last column: "
                       "mean Dice, 95% bootstrap over test patients of the seed-averaged per-patient difference."), "",
                  "| difference | " + " | ".join(names) + " | mean (patient bootstrap) |",
                  "|---|" + "---|" * (len(names) + 1)]
        for label, summary in shift["differences"].items():
            lines.append(f"| {label} | " + " | ".join(_signed(summary[c]) for c in names)
                         + f" | {_signed(summary['mean_patient_bootstrap'])} |")
        lines.append("")
        measured = shift["fidelity"]
        unit, digits = ("HU", 0) if "mae_hu" in measured else ("(unit intensities)", 2)
        mae = measured.get("mae_hu", measured.get("mae_unit"))
        medians = [measured.get(f"median_hu_{c}", measured.get(f"median_{c}")) for c in classes]
        lines.append(f"Training slices vs the same slices rendered in the target domain (first GAN): MAE {unit} "
                     + ", ".join(f"{k} {v:.{digits + 1}f}" for k, v in mae.items()) + f"; median {unit} "
                     + "; ".join(f"{c}: " + ", ".join(f"{k} {v:.{digits}f}" for k, v in median.items())
                                 for c, median in zip(classes, medians)) + ".")
        if len(shift.get("fidelity_per_gan", [])) > 1:
            key = "mae_hu" if "mae_hu" in measured else "mae_unit"
            lines.append("GAN MAE per CycleGAN seed: " + ", ".join(
                f"{entry[key]['gan']:.{digits + 1}f}" for entry in shift["fidelity_per_gan"]) + ".")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shifts", default="phase", help="comma-separated: phase, dose, t1t2")
    parser.add_argument("--seeds", type=int, default=5, help="segmenter seeds per arm (0..seeds-1, paired)")
    parser.add_argument("--epochs", type=int, default=40, help="passes over the labelled originals per run")
    parser.add_argument("--train-patients", type=int, default=24, help="labelled source-domain patients")
    parser.add_argument("--target-patients", type=int, default=24, help="unlabelled target-domain patients")
    parser.add_argument("--test-patients", type=int, default=16, help="test patients")
    parser.add_argument("--slices", type=int, default=4, help="axial slices per patient")
    parser.add_argument("--gan-minutes", type=float, default=6.0, help="CycleGAN budget (the phases demo: 6)")
    parser.add_argument("--gan-seeds", type=int, default=1, help="CycleGANs per shift (training seeds 0..G-1)")
    parser.add_argument("--train-gan", type=int, default=None, metavar="SEED",
                        help="only render and train the CycleGAN of this seed (to train several in parallel)")
    parser.add_argument("--gan-run", action="append", default=[], metavar="SHIFT=RUN",
                        help="reuse a trained CycleGAN run for a shift (domain A target, B source)")
    parser.add_argument("--work", type=Path, default=Path("runs/domain-shift"), help="cache folder")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args(argv)
    if args.gan_seeds < 1 or (args.train_gan is not None and args.train_gan < 0):
        parser.error("--gan-seeds must be at least 1 and --train-gan at least 0")
    args.gan_run = {key: Path(value) for key, value in (item.split("=", 1) for item in args.gan_run)}
    torch.set_num_threads(1)  # a shared CPU; the library itself leaves threads alone
    started = time.perf_counter()
    result = {"command": " ".join(["python3", "benchmarks/domain_shift.py", *(argv or sys.argv[1:])]),
              "cpu": cpu_name(), "torch_threads": 1, "seeds": args.seeds,
              "dataset_seeds": {"train": TRAIN_SEED, "unlabelled_target": TARGET_SEED, "test": TEST_SEED},
              "shifts": {}}
    if args.train_gan is not None:
        for name in args.shifts.split(","):
            train_gan_only(SHIFTS[name], args)
        return result
    for name in args.shifts.split(","):
        result["shifts"][name] = run_shift(SHIFTS[name], args)
        result["seconds"] = round(time.perf_counter() - started, 1)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1))
    table = markdown(result)
    print(table)
    print(f"CPU: {result['cpu']}; wall time {result['seconds']:.0f} s; command: {result['command']}")
    return result


if __name__ == "__main__":
    main()
