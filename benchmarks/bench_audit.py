"""Membership-inference audit (``medgan audit``) on the brain and liver demo settings and a deliberately
overfitted run. Prints AUC [95% CI by patient] and TPR at 1% FPR per attack and run.

Settings (every run is trained here unless an existing run directory is given):

* brain: the brain demo recipe (unconditional, MNI152 T1 at 64 px). The template is one subject, so the
  "patients" are axial slabs of it: slabs of 12 slices alternate between members and non-members, and the 2
  slices at each slab edge are dropped (members and non-members are then >= 4 mm apart, while both sets span the
  whole brain). The run trains on the member slabs only (``--brain-minutes``, default 3; the demo trains 8).
* liver: the liver demo recipe (conditional lesion ROIs, portal window, AC head) on the embedded ``ct-lesions``
  patients (members); non-members are new phantom patients (another dataset seed, so no shared patient),
  written as DICOM files with their PatientID. ``--liver-run`` audits an existing liver demo run instead.
* overfit: a small GAN (32 px, widths 16, latent 16) trained on the member slabs cut to their 2 middle slices
  (7 slabs, 14 images) for ``--overfit-steps`` steps with no augmentation and no EMA: a run that memorizes.

Usage::

    python3 benchmarks/bench_audit.py --work /tmp/audit-bench [--brain-minutes 3 | --brain-steps 3418] [--liver-minutes 3]
        [--liver-run /tmp/demo-liver] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

SLAB = 12  # slices per brain slab ("patient")
EDGE = 2  # slices dropped at each slab edge
NON_MEMBER_SEED = 7  # phantom dataset seed of the liver non-members (ct-lesions uses another one)
NON_MEMBERS_PER_CLASS = 40


def write_brain_slabs(folder: Path, axis_slices: tuple[int, int] | None = None, slab: int = SLAB,
                      edge: int = EDGE, keep: int = 0) -> tuple[Path, Path]:
    """MNI152 axial slabs as NIfTI files, alternating into ``members/`` and ``non-members/`` (empty slabs skipped).

    Each slab of ``slab`` slices keeps its middle ``slab - 2 * edge`` slices, or its middle ``keep`` slices when
    ``keep`` > 0 (the overfit setting's tiny training set).
    """
    from medgan.data.sources import mni152_path

    volume = nib.as_closest_canonical(nib.load(str(mni152_path())))
    data = np.asarray(volume.dataobj, dtype=np.float32)
    first, last = axis_slices or (0, data.shape[2])
    members, non_members = folder / "members", folder / "non-members"
    members.mkdir(parents=True, exist_ok=True)
    non_members.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(first, last - slab + 1, slab)):
        low, high = start + edge, start + slab - edge
        if keep:
            middle = (low + high) // 2
            low, high = middle - keep // 2, middle - keep // 2 + keep
        if not data[:, :, low:high].any():  # empty slabs above the head
            continue
        affine = volume.affine.copy()
        affine[:3, 3] = (volume.affine @ np.array([0, 0, low, 1.0]))[:3]
        target = members if number % 2 == 0 else non_members
        nib.save(nib.Nifti1Image(data[:, :, low:high], affine), str(target / f"slab-{number:02d}.nii.gz"))
    return members, non_members


def write_lesion_non_members(folder: Path, per_class: int = NON_MEMBERS_PER_CLASS, seed: int = NON_MEMBER_SEED) -> Path:
    """New phantom patients' lesion ROIs as CT DICOM files (PatientID = patient, HU at 0.1 HU) + labels.csv."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from medgan.data.phantom.cases import lesion_rois

    folder.mkdir(parents=True, exist_ok=True)
    rois = lesion_rois(per_class, 64, seed=seed)
    rows = ["file,label"]
    for index, (image, label, patient) in enumerate(zip(rois.images_hu, rois.labels, rois.patients)):
        dataset, instance = Dataset(), generate_uid()
        dataset.file_meta = FileMetaDataset()
        for keyword, value in {"MediaStorageSOPClassUID": CTImageStorage, "MediaStorageSOPInstanceUID": instance,
                               "TransferSyntaxUID": ExplicitVRLittleEndian}.items():
            setattr(dataset.file_meta, keyword, value)
        for keyword, value in {"SOPClassUID": CTImageStorage, "SOPInstanceUID": instance, "Modality": "CT",
                               "PatientID": str(patient), "StudyInstanceUID": generate_uid(),
                               "SeriesInstanceUID": generate_uid(), "PixelSpacing": [float(rois.pixel_spacing_mm)] * 2,
                               "RescaleSlope": 0.1, "RescaleIntercept": -1024.0}.items():
            setattr(dataset, keyword, value)
        stored = np.round((np.asarray(image, dtype=np.float64) + 1024.0) / 0.1).clip(0, 32767)
        dataset.set_pixel_data(stored.astype(np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
        name = f"roi-{index:03d}.dcm"
        dataset.save_as(str(folder / name), enforce_file_format=True)
        rows.append(f"{name},{rois.class_names[label]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def medgan(*arguments: str) -> str:
    """Runs the medgan CLI, echoing and returning its stdout."""
    print("$ medgan " + " ".join(arguments), flush=True)
    result = subprocess.run([sys.executable, "-m", "medgan.cli", *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    print(result.stdout, flush=True)
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/audit-bench"))
    parser.add_argument("--brain-minutes", type=float, default=3.0)
    parser.add_argument("--brain-steps", type=int, default=0,
                        help="train the brain run for this many steps instead (0: --brain-minutes); fair on a busy CPU")
    parser.add_argument("--liver-minutes", type=float, default=3.0)
    parser.add_argument("--liver-run", type=Path, help="an existing liver demo run (skips liver training)")
    parser.add_argument("--overfit-steps", type=int, default=600)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--only", choices=("brain", "liver", "overfit"), action="append")
    args = parser.parse_args()
    work = args.work
    wanted = args.only or ["brain", "liver", "overfit"]
    results = {}
    if "brain" in wanted:
        members, non_members = write_brain_slabs(work / "brain-data")
        run = work / "brain-run"
        if not (run / "checkpoints").is_dir():
            budget = (["--steps", str(args.brain_steps), "--set", "train.minutes=0"] if args.brain_steps
                      else ["--minutes", str(args.brain_minutes)])
            medgan("train", "--data", str(members), "--out", str(run), *budget, "--quiet")
        results["brain"] = audit(run, members, non_members, work / "brain-audit", args.samples)
    if "liver" in wanted:
        non_members = work / "liver-non-members"
        if not (non_members / "labels.csv").is_file():
            write_lesion_non_members(non_members)
        run = args.liver_run or work / "liver-run"
        if args.liver_run is None and not (run / "checkpoints").is_dir():
            started = time.monotonic()
            from medgan.demos import demo_config
            from medgan.metrics import training_score
            from medgan.training.loop import train

            train(demo_config("liver", args.liver_minutes), run, progress=False, scorer=training_score)
            print(f"liver run trained in {time.monotonic() - started:.0f} s", flush=True)
        results["liver"] = audit(run, "ct-lesions", non_members, work / "liver-audit", args.samples)
    if "overfit" in wanted:
        members, non_members = write_brain_slabs(work / "overfit-data", keep=2)
        run = work / "overfit-run"
        if not (run / "checkpoints").is_dir():
            tiny = {"model.generator_channels": 16, "model.discriminator_channels": 16, "model.latent_dim": 16,
                    "augment.policy": "[]", "data.flip": "false", "data.rotate_degrees": 0, "data.scale": 0,
                    "data.min_foreground": 0, "train.eval_every": 0, "train.ema": 0}
            settings = [item for key, value in tiny.items() for item in ("--set", f"{key}={value}")]
            medgan("train", "--data", str(members), "--out", str(run), "--steps", str(args.overfit_steps),
                   "--resolution", "32", "--batch-size", "14", *settings, "--quiet")
        results["overfit"] = audit(run, members, non_members, work / "overfit-audit", args.samples)
    print(json.dumps({name: summary(result) for name, result in results.items()}, indent=2))


def audit(run: Path, members, non_members, out: Path, samples: int) -> dict:
    medgan("audit", "--run", str(run), "--members", str(members), "--non-members", str(non_members),
           "--out", str(out), "--samples", str(samples), "--quiet")
    return json.loads((out / "audit.json").read_text())


def summary(result: dict) -> dict:
    """The figures of the README table, plus the counts and the run's training steps."""
    attacks = {name: {"auc": round(attack["auc"], 3),
                      "ci": [round(attack["auc_ci_low"], 3), round(attack["auc_ci_high"], 3)],
                      "tpr_at_1pct_fpr": attack["tpr_at_fpr"].get("0.01"), "tpr_at_zero_fpr": attack["tpr_at_zero_fpr"],
                      **({"inverted": attack["inverted"]} if "inverted" in attack else {})}
               for name, attack in result["attacks"].items()}
    log = (Path(result["run"]) / "train.log").read_text().splitlines()
    finished = [line for line in log if "finished at step" in line]
    return {"members": result["members"], "non_members": result["non_members"], "attacks": attacks,
            "training": finished[-1].split(" ", 2)[-1] if finished else None}


if __name__ == "__main__":
    main()
