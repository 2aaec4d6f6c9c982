"""Volumetric unpaired MR -> CT measured: slice-wise 2D vs 2.5D (``data.context``) CycleGANs, on held-out phantom
patients' whole volumes, in 3D.

Simulated data. Renders contiguous phantom patients (``phantom_patient_volume``: portal-phase routine-dose CT, T1w
and T2w MR of the same anatomy, 2.5 mm slices, 3D texture) and writes them as NIfTI (``save_patient_volume``). The
training patients are split in two disjoint halves: the first half's MR is domain A (T1 + T2 folders), the second
half's CT domain B, so no pair is ever seen. For each ``--contexts`` K and each ``--seeds`` s, one CycleGAN is
trained with the ``mr2ct`` demo's settings (body-wide window, no identity loss or identity start, constant learning
rate, batch 4) on whole native slices (no crop) within one CPU-time budget (``train.cpu_minutes``); K = 0 is the
slice-wise 2D model, K = 1 gives G each MR slice with its neighbours. Each run translates every held-out patient's
T1 + T2 volumes with ``medgan translate`` (the CLI on whole NIfTI volumes; neighbours stacked by the run itself),
and the outputs are measured in 3D inside the body (tissue label not air) against the patient's true CT with
``medgan.metrics.volume_translation``: MAE (HU), PSNR and SSIM on the body-wide window, and the through-plane
consistency error (mean |change of the error between adjacent slices|), each with a 95% bootstrap interval over
held-out patients. Per seed, the paired difference 2.5D - 2D (per patient) comes with its interval; over seeds,
the mean difference with a 95% t interval over seeds. The classic baseline row is "moments": T1 mapped linearly
so that its body mean and SD match CT's, each from its own training half (no pairs used).

    OMP_WAIT_POLICY=PASSIVE python3 benchmarks/volume_mr2ct.py --out /tmp/volume-mr2ct

Arms run ``--parallel`` at a time, one torch thread each (a CPU-second buys the same work in every arm). Volumes
and runs already in ``--out`` are reused. Say which CPU the numbers came from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from inversion import cpu_name  # same folder
from volume_tables import (arm_label, budget_train, only_these, run_arms, seed_differences, tables,  # same folder
                           zyx)

from medgan.config import from_dict
from medgan.data.phantom import ct_rendering_name, phantom_patient_volume, save_patient_volume
from medgan.data.phantom.cases import patient_id, patient_seed
from medgan.inference import load_model
from medgan.metrics.volume_translation import volume_translation_metrics
from medgan.training.tasks import recipe

TRAIN_SEED, TEST_SEED = 11, 12  # phantom dataset seeds of no other source or benchmark (patients 11000+, 12000+)
CT = ct_rendering_name("portal", 1.0)
MR = ("t1", "t2")
SHOWN = (("mae", "MAE HU", 1), ("psnr", "PSNR dB", 2), ("ssim", "SSIM", 4),
         ("through_plane_mae", "through-plane HU", 1), ("through_plane_ratio", "through-plane / MAE", 3))


def render(folder: Path, dataset_seed: int, count: int, size: int, slices: int) -> list[str]:
    """Writes ``count`` phantom patients (routine-dose portal CT, T1w, T2w, labels); returns their ids."""
    names = []
    for index in range(count):
        seed = patient_seed(dataset_seed, index)
        names.append(patient_id(seed))
        if (folder / CT / f"{names[-1]}.nii.gz").is_file() and (folder / "t2" / f"{names[-1]}.nii.gz").is_file():
            continue
        volume = phantom_patient_volume(seed, n_slices=slices, size=size, doses=(1.0,), phases=("portal",),
                                        sequences=MR)
        save_patient_volume(volume, folder)
    only_these(folder / CT, names)
    return names


def split_domains(train_dir: Path, names: list[str]) -> Path:
    """Domain folders of disjoint halves: ``domains/a/{t1,t2}`` (first half's MR), ``domains/b`` (second's CT)."""
    root = train_dir.parent / "domains"
    half = len(names) // 2
    for folder, rendering, chosen in [*((root / "a" / seq, seq, names[:half]) for seq in MR),
                                      (root / "b", CT, names[half:])]:
        folder.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            target = folder / f"{name}.nii.gz"
            if not target.exists():
                target.symlink_to((train_dir / rendering / f"{name}.nii.gz").resolve())
    return root


def run_config(args: argparse.Namespace, context: int, seed: int, domains: Path):
    """The one recipe of every arm: the mr2ct demo's settings on whole native slices, one CPU budget."""
    return from_dict({
        "task": "unpaired",
        "data": {"source": str(domains / "b"), "domain_a": [str(domains / "a" / seq) for seq in MR],
                 "window": "body-wide", "resolution": args.size, "crop_foreground": False, "context": context},
        "model": {"residual": False},
        "unpaired": {"identity": 0.0},
        "optim": {"schedule": "constant"},
        "train": {**budget_train(args.cpu_minutes, seed), "batch_size": 4},
    }, base=recipe("cyclegan"))


def moments_baseline(train_dir: Path, names: list[str], test: Path, test_names: list[str],
                     window: tuple[float, float]) -> np.ndarray:
    """T1 linearly mapped so that its body mean and SD match CT's, each from its own disjoint training half."""
    half = len(names) // 2
    t1 = np.concatenate([zyx(train_dir / "t1" / f"{n}.nii.gz")[zyx(train_dir / "labels" / f"{n}.nii.gz") > 0]
                         for n in names[:half]])
    ct = np.concatenate([zyx(train_dir / CT / f"{n}.nii.gz")[zyx(train_dir / "labels" / f"{n}.nii.gz") > 0]
                         for n in names[half:]])
    slope = ct.std() / max(t1.std(), 1e-6)
    intercept = ct.mean() - slope * t1.mean()
    return np.stack([np.clip(slope * zyx(test / "t1" / f"{n}.nii.gz") + intercept, *window) for n in test_names])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (volumes, runs, translations, results.json)")
    parser.add_argument("--train-patients", type=int, default=16, help="split in two disjoint halves: A's MR, B's CT")
    parser.add_argument("--test-patients", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="in-plane pixels (400 mm field of view)")
    parser.add_argument("--slices", type=int, default=32, help="2.5 mm slices per patient")
    parser.add_argument("--contexts", type=int, nargs="+", default=[0, 1], help="data.context per arm (0 = 2D)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of each arm")
    parser.add_argument("--cpu-minutes", type=float, default=8.0, help="CPU-time budget per arm")
    parser.add_argument("--parallel", type=int, default=2, help="arms trained at once (one thread each)")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.monotonic()
    train_names = render(out / "train", TRAIN_SEED, args.train_patients, args.size, args.slices)
    test_names = render(out / "test", TEST_SEED, args.test_patients, args.size, args.slices)
    domains = split_domains(out / "train", train_names)
    print(f"rendered {len(train_names)} + {len(test_names)} patients: {time.monotonic() - started:.0f} s", flush=True)
    test = out / "test"
    translate = ["--input", str(test / MR[0]), "--domain", f"input2={test / MR[1]}"]
    names = {(c, s): f"context{c}-seed{s}" for s in args.seeds for c in args.contexts}
    jobs = [(f"{c}/{s}", run_config(args, c, s, domains), out / "runs" / name, translate, test_names,
             out / "translated" / name) for (c, s), name in names.items()]
    arms = run_arms(jobs, args.parallel)
    mapping = load_model(jobs[0][2]).spec.mapping
    window = (mapping.low, mapping.high)
    body = np.stack([zyx(out / "test" / "labels" / f"{n}.nii.gz") > 0 for n in test_names])
    truth = np.stack([zyx(out / "test" / CT / f"{n}.nii.gz") for n in test_names])

    def score(volumes: np.ndarray) -> dict:
        return volume_translation_metrics(volumes, truth, window[1] - window[0], window[0], body, test_names, "HU")

    methods = {"moments (T1 body mean/SD matched to CT)": score(moments_baseline(out / "train", train_names,
                                                                                 out / "test", test_names, window))}
    for seed in args.seeds:
        for context in args.contexts:
            folder = out / "translated" / f"context{context}-seed{seed}"
            translated = np.stack([zyx(folder / f"{n}_translated.nii.gz") for n in test_names])
            methods[arm_label(context, seed)] = score(translated)
    differences = seed_differences(methods, args.contexts, args.seeds, test_names)
    summary = {"cpu": cpu_name(), "arms": arms, "train_patients": train_names, "test_patients": test_names,
               "size": args.size, "slices": args.slices, "cpu_minutes": args.cpu_minutes, "window_hu": list(window),
               "wall_s": time.monotonic() - started, "methods": methods, "differences": differences}
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"\nCPU {summary['cpu']}; {len(train_names)} training patients (A: MR of {len(train_names) // 2}, B: CT of "
          f"the other {len(train_names) - len(train_names) // 2}) / {len(test_names)} held-out patients, "
          f"{args.slices} slices of 2.5 mm at {args.size} px; {args.cpu_minutes:g} CPU-minutes per arm; "
          f"wall {summary['wall_s']:.0f} s\n")
    print(tables(methods, differences, SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
