"""Counterfactuals of the liver lesion run on new patients: how often does re-rendering an inverted lesion ROI as
another class change a judge's decision, and how much of the image changes? (Issue 27.)

Setting (simulated phantom data throughout):

* the run: the liver demo (``medgan demo liver``: conditional, cyst / metastasis / hemangioma ROIs of the
  embedded ``ct-lesions`` patients); ``--run`` takes an existing one, else it is trained here (``--minutes``);
* the judge: ``medgan utility``'s ``judge.pt`` (the real arm's first classifier, trained on the ``ct-lesions``
  ROIs only), with its balanced accuracy on the new patients;
* the inputs: ``--per-class`` ROIs per class of new phantom patients (another dataset seed: neither the GAN nor
  the judge saw them), written as CT DICOM files.

Per input: one inversion (``medgan counterfactual``'s search: class searched, ``--steps`` x ``--restarts``), then
the latent rendered as each other class (the counterfactual) and compared with its reconstruction (the same
latent as the found class), exactly as ``medgan counterfactual`` does (``medgan.evaluation.counterfactual``).
The "new patient" baseline: for the same input, a random latent rendered as the target class, compared with the
same reconstruction: the change a different patient of that class would make.

Figures: the judge's class change rate (judge(counterfactual) != judge(reconstruction)) and to-class rate, with
Wilson 95% intervals over counterfactuals; median changed area (pixels whose change exceeds 5% of the window) and
median mean |change| in HU, with 95% percentile-bootstrap intervals over patients; the same for the baseline.
Reconstruction: the inversion's SSIM and PSNR against the retrieval baseline (each input's most similar training
ROI by SSIM, ``benchmarks/inversion.py``'s), means with 95% patient-bootstrap intervals, and their paired difference.
Steering (``--steer N``, as ``medgan counterfactual --steer``): the class weights walk from the found class to the
target in N steps until the judge's decision changes; the share of walks where it does (Wilson interval), the
median class weight at that point, and the median changed area of that minimal counterfactual beside the full one's
(the same counterfactuals; patient-bootstrap intervals).
The inversion is cached in ``WORK/inversion.pt`` (a rerun with the same search settings reuses it).

Usage::

    python3 benchmarks/counterfactual.py --work /tmp/cf-bench [--run /tmp/cf-bench/liver] [--per-class 16]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_audit import write_lesion_non_members  # same folder: new patients' ROIs as CT DICOM + labels.csv
from inversion import cpu_name, retrieval, subject_interval  # same folder: retrieval baseline, patient bootstrap

NEW_PATIENT_SEED = 7  # phantom dataset seed of the inputs (ct-lesions uses seed 1)
BOOTSTRAP = 2000


def medgan(*arguments: str) -> str:
    print("$ medgan " + " ".join(arguments), flush=True)
    result = subprocess.run([sys.executable, "-m", "medgan.cli", *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    print(result.stdout, flush=True)
    return result.stdout


def wilson(successes: int, total: int, z: float = 1.959964) -> list[float]:
    """Wilson score 95% interval of a binomial proportion."""
    if total == 0:
        return [float("nan"), float("nan")]
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(float(centre - half), 3), round(float(centre + half), 3)]


def median_interval(values: np.ndarray, patients: np.ndarray, seed: int = 0) -> list[float]:
    """Median with a 95% percentile-bootstrap interval, resampling patients (all their values kept)."""
    rng = np.random.default_rng(seed)
    unique = np.unique(patients)
    rows = {p: np.flatnonzero(patients == p) for p in unique}
    draws = []
    for _ in range(BOOTSTRAP):
        picked = rng.choice(unique, size=len(unique), replace=True)
        draws.append(np.median(values[np.concatenate([rows[p] for p in picked])]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return [round(float(np.median(values)), 4), round(float(low), 4), round(float(high), 4)]


def inputs_by_class(folder: Path, per_class: int) -> dict[str, list[Path]]:
    """The first ``per_class`` files of each class in ``folder/labels.csv``."""
    groups: dict[str, list[Path]] = {}
    for line in (folder / "labels.csv").read_text().splitlines()[1:]:
        name, label = line.split(",")
        if len(groups.setdefault(label, [])) < per_class:
            groups[label].append(folder / name)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cf-bench"))
    parser.add_argument("--run", type=Path, help="an existing liver demo run (default: trained here)")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget when the run is trained here")
    parser.add_argument("--per-class", type=int, default=16, help="new-patient ROIs per class to invert")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steer", type=int, default=10, help="steps of the class walk (0: no steering)")
    args = parser.parse_args()

    from medgan.data.readers import read_volume
    from medgan.evaluation.counterfactual import changes, counterfactual_images, judged, load_judge, steer
    from medgan.evaluation.inversion import invert_targets, target_from_volume
    from medgan.inference.inversion import InversionConfig
    from medgan.inference.sampling import load_generator

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    run = args.run or work / "liver"
    if not (run / "checkpoints").is_dir():
        medgan("demo", "liver", "--out", str(run), "--minutes", str(args.minutes), "--quiet")
    new = work / "new-patients"
    if not (new / "labels.csv").is_file():
        write_lesion_non_members(new, per_class=max(40, args.per_class), seed=NEW_PATIENT_SEED)
    utility = work / "utility"
    if not (utility / "judge.pt").is_file():
        shutil.rmtree(utility, ignore_errors=True)
        medgan("utility", "--synthetic", str(run), "--test", str(new), "--test-labels", str(new / "labels.csv"),
               "--seeds", "1", "--out", str(utility),
               "--quiet")
    judge_record = json.loads((utility / "metrics.json").read_text())["utility"]["judge"]

    model = load_generator(run)
    judge = load_judge(utility / "judge.pt", model)
    names = model.class_names
    groups = inputs_by_class(new, args.per_class)
    files = [path for name in names for path in groups[name]]
    true = [name for name in names for _ in groups[name]]
    volumes = [read_volume(path) for path in files]
    targets = [target_from_volume(model, volume) for volume in volumes]
    patients = np.array([str(volume.subject) for volume in volumes])
    tiles = torch.cat([t.tile for t in targets])
    started = time.monotonic()
    config = InversionConfig(steps=args.steps, restarts=args.restarts, seed=args.seed)
    cache = work / "inversion.pt"
    key = {"run": str(run), "files": [str(f) for f in files], "search": config.__dict__}
    cached = torch.load(cache, weights_only=False) if cache.is_file() else None
    if cached is not None and cached["key"] == key:
        result, quality, seconds = cached["result"], cached["quality"], cached["seconds"]
    else:
        result, quality = invert_targets(model, tiles, config, progress=True)
        seconds = time.monotonic() - started
        torch.save({"key": key, "result": result, "quality": quality, "seconds": seconds}, cache)
    found = [names[int(i)] for i in result.labels]
    judge_input = judged(judge, tiles, names)
    # The retrieval baseline: each input's most similar training ROI (SSIM), as benchmarks/inversion.py does.
    from medgan.data import load_slices

    training = load_slices(model.config.data, progress=False).images.float()
    found_ssim, found_psnr = retrieval(tiles, training)
    subjects = list(patients)
    reconstruction = {
        "inversion": {"ssim": subject_interval(quality["ssim"], subjects),
                      "psnr_db": subject_interval(quality["psnr"], subjects)},
        "retrieval (nearest training ROI)": {"ssim": subject_interval(found_ssim, subjects),
                                             "psnr_db": subject_interval(found_psnr, subjects)},
        "inversion - retrieval": {"ssim": subject_interval(quality["ssim"] - found_ssim, subjects),
                                  "psnr_db": subject_interval(quality["psnr"] - found_psnr, subjects)},
        "training_rois": len(training),
    }

    generator = torch.Generator().manual_seed(args.seed + 1)
    rows = []
    for to_index, to_class in enumerate(names):
        keep = [k for k, name in enumerate(found) if name != to_class]  # rendering the found class changes nothing
        if not keep:
            continue
        index = torch.as_tensor(keep)
        recon, changed = counterfactual_images(model, result.latents[index], result.labels[index], to_index)
        other = torch.randn(len(keep), result.latents.shape[1], generator=generator)
        _, stranger = counterfactual_images(model, other, result.labels[index], to_index)
        before, after = judged(judge, recon, names), judged(judge, changed, names)
        stranger_judged = judged(judge, stranger, names)
        alphas, minimal = (steer(model, judge, result.latents[index], result.labels[index], recon, to_index, args.steer)
                           if args.steer else ([None] * len(keep), None))
        for j, k in enumerate(keep):
            _, l1, area = changes(targets[k], recon[j : j + 1], changed[j : j + 1])
            _, base_l1, base_area = changes(targets[k], recon[j : j + 1], stranger[j : j + 1])
            rows.append({"input": files[k].name, "patient": patients[k], "true": true[k], "found": found[k],
                         "to": to_class, "judge_input": judge_input[k], "judge_before": before[j],
                         "judge_after": after[j], "judge_new_patient": stranger_judged[j], "l1": l1, "area": area,
                         "new_patient_l1": base_l1, "new_patient_area": base_area, "steer_alpha": alphas[j]})
            if alphas[j] is not None:
                _, rows[-1]["steer_l1"], rows[-1]["steer_area"] = changes(targets[k], recon[j : j + 1],
                                                                         minimal[j : j + 1])

    count = len(rows)
    changed_class = sum(r["judge_before"] != r["judge_after"] for r in rows)
    to_class_hits = sum(r["judge_after"] == r["to"] for r in rows)
    row_patients = np.array([r["patient"] for r in rows])
    summary = {
        "run": str(run), "cpu": cpu_name(),
        "inputs": len(files), "per_class": args.per_class, "patients": len(np.unique(patients)),
        "inversion": {"steps": args.steps, "restarts": args.restarts, "seconds": round(seconds, 1),
                      "ssim_mean": round(float(quality["ssim"].mean()), 3),
                      "psnr_mean_db": round(float(quality["psnr"].mean()), 2),
                      "found_class_is_true_class": round(float(np.mean([f == t for f, t in zip(found, true)])), 3)},
        "reconstruction": reconstruction,
        "judge": {"trained_on": "ct-lesions (the GAN's training patients)",
                  "balanced_accuracy_new_patients": round(judge_record["balanced_accuracy"], 3),
                  "accuracy_on_inputs": round(float(np.mean([j == t for j, t in zip(judge_input, true)])), 3),
                  "reconstruction_keeps_input_class": round(float(np.mean(
                      [judged(judge, result.images[k : k + 1], names)[0] == judge_input[k] for k in range(len(files))]
                  )), 3)},
        "counterfactuals": count,
        "judge_class_change_rate": [round(changed_class / count, 3), *wilson(changed_class, count)],
        "judge_to_class_rate": [round(to_class_hits / count, 3), *wilson(to_class_hits, count)],
        "new_patient_to_class_rate": [round(sum(r["judge_new_patient"] == r["to"] for r in rows) / count, 3),
                                      *wilson(sum(r["judge_new_patient"] == r["to"] for r in rows), count)],
        "median_changed_area": median_interval(np.array([r["area"] for r in rows]), row_patients),
        "median_l1_hu": median_interval(np.array([r["l1"] for r in rows]), row_patients),
        "new_patient_median_changed_area": median_interval(np.array([r["new_patient_area"] for r in rows]),
                                                           row_patients),
        "new_patient_median_l1_hu": median_interval(np.array([r["new_patient_l1"] for r in rows]), row_patients),
        "per_pair": {},
    }
    if args.steer:
        walked = [r for r in rows if r["steer_alpha"] is not None]
        walked_patients = np.array([r["patient"] for r in walked])
        summary["steer"] = {
            "steps": args.steer,
            "judge_change_rate": [round(len(walked) / count, 3), *wilson(len(walked), count)],
            "median_alpha": median_interval(np.array([r["steer_alpha"] for r in walked]), walked_patients),
            "median_changed_area_minimal": median_interval(np.array([r["steer_area"] for r in walked]),
                                                           walked_patients),
            "median_changed_area_full_same_rows": median_interval(np.array([r["area"] for r in walked]),
                                                                  walked_patients),
            "median_l1_hu_minimal": median_interval(np.array([r["steer_l1"] for r in walked]), walked_patients),
            "median_area_ratio_minimal_to_full": median_interval(
                np.array([r["steer_area"] / max(r["area"], 1e-9) for r in walked]), walked_patients),
        }
    for source in names:
        for to_class in names:
            pair = [r for r in rows if r["true"] == source and r["to"] == to_class]
            if pair:
                hits = sum(r["judge_after"] == to_class for r in pair)
                summary["per_pair"][f"{source}->{to_class}"] = {
                    "n": len(pair), "judge_to_class_rate": round(hits / len(pair), 3),
                    "median_changed_area": round(float(np.median([r["area"] for r in pair])), 4)}
    (work / "counterfactual-rows.json").write_text(json.dumps(rows, indent=1))
    (work / "counterfactual-summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
