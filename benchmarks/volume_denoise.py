"""Volumetric denoising measured: slice-wise 2D vs 2.5D (``data.context``) vs a 3D U-Net on slabs
(``model.name: unet3d``), on held-out phantom patients, in 3D.

Simulated data. Renders contiguous phantom patients (``phantom_patient_volume``: portal phase, 2.5 mm slices, 3D
texture, each dose its own scan with noise independent from slice to slice) at routine dose, quarter dose and
noise-free, writes them as NIfTI (``save_patient_volume``), and for each ``--contexts`` K trains the paired pix2pix
run quarter dose -> routine dose on the training patients' folders (``data.source`` the routine-dose folder,
``data.input`` the quarter-dose one; K = 0 is slice-wise 2D) with one recipe and one CPU-time budget
(``train.cpu_minutes``), and for each ``--unet3d`` K the same with the 3D U-Net on slabs of 2K + 1 slices. Arms run
``--parallel`` at a time in worker processes, one torch thread each by default. Each run translates every held-out
quarter-dose volume with ``medgan translate`` (the CLI, whole NIfTI volumes, neighbours stacked by the run itself),
and the outputs are measured in 3D inside the body (tissue label not air) with
``medgan.metrics.volume_translation``: MAE (HU), PSNR and SSIM on the CT window, and the through-plane consistency
error (mean |change of the error between adjacent slices|), each with a 95% bootstrap interval over held-out
patients, against the routine-dose scan (what the runs learn) and against the noise-free scan (the truth without the
target's own noise). Paired differences (each other arm minus 2D, per patient) come with their intervals; the
quarter-dose input is the baseline row. Writes ``results.json`` and prints markdown tables.

    OMP_WAIT_POLICY=PASSIVE python3 benchmarks/volume_denoise.py --out /tmp/volume-denoise

Volumes and runs already in ``--out`` are reused (``--retrain`` trains again). Say which CPU the numbers came from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from inversion import cpu_name  # same folder
from volume_tables import apart, budget_train, difference_cell, method_rows, only_these, run_arms, zyx  # same folder

from medgan.config import from_dict
from medgan.data.phantom import ct_rendering_name, phantom_patient_volume, save_patient_volume
from medgan.data.phantom.cases import patient_id, patient_seed
from medgan.inference import load_model
from medgan.metrics.volume_translation import MEASURES, paired_difference, volume_translation_metrics
from medgan.training.tasks import recipe

TRAIN_SEED, TEST_SEED = 5, 6  # phantom dataset seeds: patients 5000+ train, 6000+ held out (no other source's)
QUARTER = 0.25
TARGETS = {"routine": ct_rendering_name("portal", 1.0), "noisefree": ct_rendering_name("portal", None)}
INPUT = ct_rendering_name("portal", QUARTER)
SHOWN = (("mae", "MAE HU", 2), ("psnr", "PSNR dB", 2), ("ssim", "SSIM", 4),
         ("through_plane_mae", "through-plane HU", 2), ("through_plane_ratio", "through-plane / MAE", 3))
IDEAL = "noise-free scan (ideal denoiser)"  # against the routine scan: the floor its own slice-wise noise sets


def render(folder: Path, dataset_seed: int, count: int, size: int, slices: int) -> list[str]:
    """Writes ``count`` phantom patients (routine, quarter and noise-free portal CT, labels); returns their ids."""
    names = []
    for index in range(count):
        seed = patient_seed(dataset_seed, index)
        names.append(patient_id(seed))
        if (folder / INPUT / f"{names[-1]}.nii.gz").is_file():
            continue
        volume = phantom_patient_volume(seed, n_slices=slices, size=size, doses=(None, 1.0, QUARTER),
                                        phases=("portal",), sequences=())
        save_patient_volume(volume, folder)
    only_these(folder / INPUT, names)
    return names


def run_config(args: argparse.Namespace, context: int, data: Path, model: str = "unet"):
    """The one recipe of every arm: pix2pix on whole native slices (no crop, no resampling), one CPU budget; arms
    differ in ``data.context`` and the generator (``model.name``: the 2D U-Net, or the 3D U-Net on slabs)."""
    return from_dict({
        "task": "paired",
        "data": {"source": str(data / TARGETS["routine"]), "input": str(data / INPUT), "resolution": args.size,
                 "crop_foreground": False, "context": context},
        "model": {"name": model},
        "paired": {"patch": args.patch},
        "train": budget_train(args.cpu_minutes, args.seed, args.threads),
    }, base=recipe("pix2pix"))


def measure_arms(test: Path, names: list[str], outputs: dict[str, Path], window: tuple[float, float]) -> dict:
    """Per target: every method's 3D metrics and the paired differences of each 2.5D arm against 2D."""
    low, width = window
    body = np.stack([zyx(test / "labels" / f"{name}.nii.gz") > 0 for name in names])
    methods = {"input (quarter dose)": np.stack([zyx(test / INPUT / f"{name}.nii.gz") for name in names])}
    for label, folder in outputs.items():
        methods[label] = np.stack([zyx(folder / f"{name}_translated.nii.gz") for name in names])
    ideal = {IDEAL: np.stack([zyx(test / TARGETS["noisefree"] / f"{name}.nii.gz") for name in names])}
    results = {}
    for target_name, rendering in TARGETS.items():
        truth = np.stack([zyx(test / rendering / f"{name}.nii.gz") for name in names])
        compared = methods | ideal if target_name == "routine" else methods
        scored = {label: volume_translation_metrics(volumes, truth, width, low, body, names, "HU")
                  for label, volumes in compared.items()}
        baseline = next(label for label in outputs if label.startswith("2D"))  # every other arm against 2D
        differences = {label: {measure: paired_difference(scored[label]["per_volume"][measure],
                                                          scored[baseline]["per_volume"][measure], names)
                               for measure in MEASURES}
                       for label in outputs if label != baseline}
        results[target_name] = {"methods": scored, "differences": differences, "baseline": baseline}
    return results


def tables(results: dict) -> str:
    """Markdown: per target, the methods with intervals, then the paired differences against 2D."""
    lines = []
    for target_name, found in results.items():
        lines += ["", f"Against the {target_name} scan (body voxels; mean [95% interval] over held-out patients):", "",
                  *method_rows(found["methods"], SHOWN)]
        lines += ["", (f"Paired differences against {found['baseline']} (per patient; * = interval excludes 0; "
                       "intervals apart = the two methods' own intervals do not overlap):"), "",
                  "| method - 2D | " + " | ".join(title for _, title, _ in SHOWN[:4]) + " |", "|---" * 5 + "|"]
        baseline = found["methods"][found["baseline"]]
        for label, measures in found["differences"].items():
            cells = [difference_cell(measures[key], digits, apart(found["methods"][label], baseline, key))
                     for key, _, digits in SHOWN[:4]]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (volumes, runs, translations, results.json)")
    parser.add_argument("--train-patients", type=int, default=10)
    parser.add_argument("--test-patients", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="in-plane pixels (400 mm field of view)")
    parser.add_argument("--slices", type=int, default=48, help="2.5 mm slices per patient")
    parser.add_argument("--contexts", type=int, nargs="+", default=[0, 1, 2], help="data.context per arm (0 = 2D)")
    parser.add_argument("--cpu-minutes", type=float, default=8.0, help="CPU-time budget per arm")
    parser.add_argument("--patch", type=int, default=64, help="paired.patch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per arm (one count for every arm, so "
                        "a CPU-second buys the same work in each)")
    parser.add_argument("--unet3d", type=int, nargs="*", default=[], help="data.context of arms with the 3D U-Net "
                        "on slabs (model.name unet3d; at least 1)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every arm")
    parser.add_argument("--dataset-seeds", type=int, nargs=2, default=[TRAIN_SEED, TEST_SEED],
                        metavar=("TRAIN", "TEST"), help="phantom dataset seeds of the training and held-out patients")
    parser.add_argument("--parallel", type=int, default=2, help="arms trained at once")
    parser.add_argument("--retrain", action="store_true", help="train again even where a run exists")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.monotonic()
    train_names = render(out / "train", args.dataset_seeds[0], args.train_patients, args.size, args.slices)
    test_names = render(out / "test", args.dataset_seeds[1], args.test_patients, args.size, args.slices)
    print(f"rendered {len(train_names)} + {len(test_names)} patients: {time.monotonic() - started:.0f} s", flush=True)
    seed = f"-seed{args.seed}" if args.seed else ""  # a run of another seed is another arm
    arms_wanted = [(f"context{k}{seed}", "unet", k, "2D (context 0)" if k == 0 else f"2.5D (context {k})")
                   for k in args.contexts]
    arms_wanted += [(f"unet3d-context{k}{seed}", "unet3d", k, f"3D U-Net (slab of {2 * k + 1})") for k in args.unet3d]
    if args.retrain:
        for folder, *_ in arms_wanted:
            shutil.rmtree(out / "runs" / folder, ignore_errors=True)
            shutil.rmtree(out / "translated" / folder, ignore_errors=True)
    jobs = [(label, run_config(args, context, out / "train", model), out / "runs" / folder,
             ["--input", str(out / "test" / INPUT)], test_names, out / "translated" / folder)
            for folder, model, context, label in arms_wanted]
    arms = run_arms(jobs, args.parallel)
    outputs = {label: out / "translated" / folder for folder, _, _, label in arms_wanted}
    first = out / "runs" / arms_wanted[0][0]
    mapping = load_model(first).spec.mapping
    results = measure_arms(out / "test", test_names, outputs, (mapping.low, mapping.high - mapping.low))
    summary = {"cpu": cpu_name(), "arms": arms, "train_patients": train_names, "test_patients": test_names,
               "size": args.size, "slices": args.slices, "cpu_minutes": args.cpu_minutes, "patch": args.patch,
               "window_hu": [mapping.low, mapping.high], "wall_s": time.monotonic() - started, "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"\nCPU {summary['cpu']}; {len(train_names)} training / {len(test_names)} held-out patients, {args.slices} "
          f"slices of 2.5 mm at {args.size} px; {args.cpu_minutes:g} CPU-minutes per arm; "
          f"wall {summary['wall_s']:.0f} s")
    print(tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
