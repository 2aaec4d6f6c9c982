"""Liver CT project measurements: class fidelity and downstream utility of a conditional GAN.

1. Class fidelity: a classifier trained on the real phantom lesion ROIs only labels samples generated for
   each class (cyst, metastasis, hemangioma); accuracy well above chance (1/3) means the conditioning works.
2. Utility on the phantom: ``run_utility`` trained on the run's ROIs (real / real+synthetic / synthetic only,
   several seeds, confidence intervals) and tested on ROIs of new phantom patients (the GAN saw none of them).
3. Utility on a MedMNIST-format npz: phantom lesion ROIs from new patients are written as a MedMNIST-style
   ``.npz`` (uint8, train/val/test by patient), a conditional GAN is trained on its train split, and the
   utility is measured on its test split. This exercises the npz path end to end; real MedMNIST files work
   the same way (``--data organamnist.npz``).

    python benchmarks/liver_experiments.py --run medgan-demo-liver [--npz-minutes 4] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from medgan.config import DataConfig  # noqa: E402
from medgan.data import CT_WINDOWS, SliceSet, load_slices, slices_from_volumes  # noqa: E402
from medgan.data.phantom import lesion_rois, slice_volume  # noqa: E402
from medgan.evaluation.utility import (UtilityConfig, class_fidelity, format_utility, run_utility,  # noqa: E402
                                      synthetic_set)
from medgan.inference.sampling import load_generator  # noqa: E402
from medgan.training.loop import train  # noqa: E402
from medgan.training.tasks import resolve_config  # noqa: E402


def write_medmnist_like(path: Path, per_class: int, seed: int) -> Path:
    """Phantom lesion ROIs as a MedMNIST-format npz: uint8 [N, 64, 64] in the portal liver window (L90 W200),
    labels [N, 1], patients split 70/15/15 into train/val/test."""
    rois = lesion_rois(n_per_class=per_class, roi_size=64, seed=seed)
    level, width = CT_WINDOWS["liver-portal"]
    images = np.clip((rois.images_hu - (level - width / 2)) / width * 255.0 + 0.5, 0, 255).astype(np.uint8)
    patients = np.asarray(rois.patients)
    unique = np.random.default_rng(seed).permutation(np.unique(patients))
    cut = [int(len(unique) * 0.7), int(len(unique) * 0.85)]
    groups = {"train": unique[: cut[0]], "val": unique[cut[0] : cut[1]], "test": unique[cut[1] :]}
    arrays = {}
    for split, members in groups.items():
        chosen = np.isin(patients, members)
        arrays[f"{split}_images"] = images[chosen]
        arrays[f"{split}_labels"] = np.asarray(rois.labels)[chosen].reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def new_patient_rois(config: DataConfig, per_class: int = 30, seed: int = 5) -> SliceSet:
    """Phantom lesion ROIs of patients that are not in ``ct-lesions`` (another dataset seed), windowed as
    ``config`` windows the training ROIs."""
    rois = lesion_rois(n_per_class=per_class, roi_size=config.roi_size, seed=seed)
    volumes = [slice_volume(image, rois.pixel_spacing_mm, f"new/{patient}/{index}", patient)
               for index, (image, patient) in enumerate(zip(rois.images_hu, rois.patients))]
    return slices_from_volumes(volumes, config, [int(label) for label in rois.labels], rois.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a conditional run on ct-lesions (e.g. medgan demo liver)")
    parser.add_argument("--npz-minutes", type=float, default=4.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="liver-experiments.json")
    args = parser.parse_args()
    results = {}
    utility = UtilityConfig(seeds=args.seeds)

    loaded = load_generator(args.run)
    real = load_slices(loaded.config.data, progress=False)
    per_class = int(real.labels.bincount().max())
    synthetic = synthetic_set(args.run, per_class=per_class, seed=0)
    results["class_fidelity"] = class_fidelity(real, synthetic, utility)
    print("class fidelity (judge trained on real phantom ROIs):", json.dumps(results["class_fidelity"]))
    # The judge's own accuracy on real ROIs of new patients, for scale.
    new_patients = new_patient_rois(loaded.config.data)
    results["judge_on_new_real_patients"] = class_fidelity(real, new_patients, utility)
    print("judge on real ROIs of new patients:", json.dumps(results["judge_on_new_real_patients"]))
    # The same judge without blur/noise augmentation learns the phantom's noise texture (see acquisition_augment).
    results["class_fidelity_without_acquisition_augment"] = class_fidelity(real, synthetic,
                                                                           replace(utility, acquisition=False))
    print("class fidelity (judge without blur/noise augmentation):",
          json.dumps(results["class_fidelity_without_acquisition_augment"]))

    # The GAN saw every ct-lesions ROI, so the test set is new patients: no test patient shaped the synthetic data.
    results["utility_phantom"] = run_utility(real, new_patients, synthetic, utility, progress=True)
    print(format_utility(results["utility_phantom"]))

    with tempfile.TemporaryDirectory() as folder:
        npz = write_medmnist_like(Path(folder) / "lesionmnist_64.npz", per_class=40, seed=7)
        config = resolve_config({"task": "conditional", "data": {"source": str(npz), "split": "train"},
                                 "model": {"auxiliary_classifier": True},
                                 "train": {"minutes": args.npz_minutes, "steps": 0}}, "medgan")
        train(config, Path(folder) / "run", progress=True)
        npz_train = load_slices(config.data, progress=False)
        npz_test = load_slices(replace(config.data, split="test"), progress=False)
        npz_synthetic = synthetic_set(str(Path(folder) / "run"), int(npz_train.labels.bincount().max()), seed=0)
        results["utility_medmnist_npz"] = run_utility(npz_train, npz_test, npz_synthetic, utility, progress=True)
        results["class_fidelity_npz"] = class_fidelity(npz_train, npz_synthetic, utility)
        print(format_utility(results["utility_medmnist_npz"]))
        print("class fidelity (npz):", json.dumps(results["class_fidelity_npz"]))
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
