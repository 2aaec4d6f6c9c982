"""Through-plane super-resolution of thick-slice brain MR measured: slice-wise 2D vs 2.5D (``data.context``) pix2pix
on held-out subjects' whole volumes, in 3D, beside linear and cubic interpolation.

Synthetic data: subjects of the MNI152 cohort (``medgan.data.cohort``: one template at 2 mm, deformed, with bias
fields and noise; subjects 0 on train, 10,000 on are held out). Each thin (2 mm) volume is the target; its
thick-slice acquisition is simulated along the slicing axis (z, axial): slabs of ``--factor`` thin slices averaged
(a box slice profile) and kept every ``--factor`` slices (6 mm slices for factor 3), then put back on the thin grid
by linear interpolation between slab centres, as a user resamples a thick-slice scan before a paired model
(``data.input`` the interpolated volume, ``data.source`` the thin one, matched by name). For each ``--contexts`` K
and ``--seeds`` s, pix2pix trains on whole native slices (padded, no resampling) within one CPU-time budget; K = 0
is slice-wise 2D. Each run translates the held-out interpolated volumes with ``medgan translate`` and the outputs
are measured in 3D inside the head (truth above 5% of its 99th percentile) with
``medgan.metrics.volume_translation``: MAE, PSNR and SSIM (range: the truth's 99.5th percentile) and the
through-plane consistency error, with 95% bootstrap intervals over held-out subjects; per seed, the paired
difference 2.5D - 2D per subject, and over seeds a 95% t interval. Classic baselines: the linear interpolation
itself (the input) and cubic interpolation of the thick slices.

    OMP_WAIT_POLICY=PASSIVE python3 benchmarks/volume_superres.py --out /tmp/volume-superres

Arms run ``--parallel`` at a time, one torch thread each. Volumes and runs already in ``--out`` are reused. Say
which CPU the numbers came from, and that the subjects are synthetic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.interpolate import interp1d

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from inversion import cpu_name  # same folder
from volume_tables import (UNITLESS, arm_label, budget_train, only_these, run_arms, seed_differences,  # same folder
                           tables, zyx)

from medgan.config import from_dict
from medgan.data.cohort import HELD_OUT, write_mni_cohort
from medgan.metrics.volume_translation import volume_translation_metrics
from medgan.training.tasks import recipe
from medgan.utils import atomic_path



def thick_slices(volume: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Slabs of ``factor`` thin slices along the last axis averaged and kept every ``factor``: ``(centres in
    thin-slice units, thick slices [X, Y, n])``."""
    count = volume.shape[-1] // factor
    slabs = volume[..., : count * factor].reshape(*volume.shape[:-1], count, factor).mean(-1)
    return np.arange(count) * factor + (factor - 1) / 2.0, slabs


def on_thin_grid(centres: np.ndarray, slabs: np.ndarray, depth: int, kind: str) -> np.ndarray:
    """Thick slices interpolated back to the ``depth`` thin slices (``kind``: "linear" or "cubic"); beyond the end
    centres the end slab is held."""
    fill = (slabs[..., 0], slabs[..., -1])
    function = interp1d(centres, slabs, kind=kind, axis=-1, bounds_error=False, fill_value=fill)
    return np.clip(function(np.arange(depth)), 0, None).astype(np.float32)


def write_pairs(folder: Path, count: int, first: int, factor: int) -> list[str]:
    """Thin subjects in ``thin/``, their linearly interpolated thick-slice versions in ``thick/`` and cubic ones in
    ``cubic/`` (same grid and header); returns the subject names."""
    names = []
    for path in write_mni_cohort(folder / "thin", count, first):
        name = path.name.removesuffix(".nii.gz")
        names.append(name)
        image = nib.load(path)
        thin = np.asarray(image.dataobj, dtype=np.float32)
        centres, slabs = thick_slices(thin, factor)
        for kind, sub in (("linear", "thick"), ("cubic", "cubic")):
            target = folder / sub / path.name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            derived = nib.Nifti1Image(on_thin_grid(centres, slabs, thin.shape[-1], kind), image.affine, image.header)
            derived.set_data_dtype(np.float32)
            with atomic_path(target) as temporary:
                nib.save(derived, str(temporary))
    only_these(folder / "thin", names)
    return names


def run_config(args: argparse.Namespace, context: int, seed: int, data: Path):
    """The one recipe of every arm: pix2pix on whole native 2 mm slices (padded, not resampled), one CPU budget."""
    return from_dict({
        "task": "paired",
        "data": {"source": str(data / "thin"), "input": str(data / "thick"), "resolution": args.resolution,
                 "fit": "pad", "crop_foreground": False, "context": context},
        "paired": {"patch": args.patch},
        "train": budget_train(args.cpu_minutes, seed),
    }, base=recipe("pix2pix"))


def figure(out: Path, subject: str, seed: int, contexts: list[int], path: Path) -> None:
    """Sagittal mid-planes of one held-out subject: linear | cubic | each arm of ``seed`` | the thin truth."""
    from PIL import Image

    columns = [out / "test" / "thick" / f"{subject}.nii.gz", out / "test" / "cubic" / f"{subject}.nii.gz"]
    columns += [out / "translated" / f"context{k}-seed{seed}" / f"{subject}_translated.nii.gz" for k in contexts]
    columns.append(out / "test" / "thin" / f"{subject}.nii.gz")
    planes = []
    for column in columns:
        volume = zyx(column)  # [Z, Y, X]: the sagittal plane is Z x Y at the middle X, superior up
        planes.append(volume[::-1, :, volume.shape[2] // 2])
    top = np.percentile(planes[-1], 99.5)
    strip = np.concatenate([np.clip(plane / top, 0, 1) for plane in planes], axis=1)
    image = Image.fromarray((np.kron(strip, np.ones((3, 3))) * 255).astype(np.uint8))
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (volumes, runs, translations, results.json)")
    parser.add_argument("--train-subjects", type=int, default=16)
    parser.add_argument("--test-subjects", type=int, default=8)
    parser.add_argument("--factor", type=int, default=3, help="thin slices per thick slice (3: 6 mm from 2 mm)")
    parser.add_argument("--resolution", type=int, default=128, help="tile side: the 2 mm slices padded to it")
    parser.add_argument("--patch", type=int, default=64, help="paired.patch")
    parser.add_argument("--contexts", type=int, nargs="+", default=[0, 2], help="data.context per arm (0 = 2D)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of each arm")
    parser.add_argument("--cpu-minutes", type=float, default=6.0, help="CPU-time budget per arm")
    parser.add_argument("--parallel", type=int, default=2, help="arms trained at once (one thread each)")
    parser.add_argument("--figure", type=Path, help="write a PNG of sagittal mid-planes of the first held-out "
                        "subject: linear | cubic | each arm of the first seed | truth")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.monotonic()
    train_names = write_pairs(out / "train", args.train_subjects, 0, args.factor)
    test_names = write_pairs(out / "test", args.test_subjects, HELD_OUT, args.factor)
    print(f"wrote {len(train_names)} + {len(test_names)} subjects: {time.monotonic() - started:.0f} s", flush=True)
    jobs = [(f"{context}/{seed}", run_config(args, context, seed, out / "train"),
             out / "runs" / f"context{context}-seed{seed}", ["--input", str(out / "test" / "thick")], test_names,
             out / "translated" / f"context{context}-seed{seed}") for seed in args.seeds for context in args.contexts]
    arms = run_arms(jobs, args.parallel)
    truth = np.stack([zyx(out / "test" / "thin" / f"{n}.nii.gz") for n in test_names])
    head = np.stack([volume > 0.05 * np.percentile(volume, 99) for volume in truth])
    data_range = float(np.percentile(truth[head], 99.5))

    def score(folder: Path, suffix: str = "") -> dict:
        volumes = np.stack([zyx(folder / f"{n}{suffix}.nii.gz") for n in test_names])
        return volume_translation_metrics(volumes, truth, data_range, 0.0, head, test_names, "a.u.")

    methods = {"linear interpolation (the input)": score(out / "test" / "thick"),
               "cubic interpolation": score(out / "test" / "cubic")}
    for seed in args.seeds:
        for context in args.contexts:
            folder = out / "translated" / f"context{context}-seed{seed}"
            methods[arm_label(context, seed)] = score(folder, "_translated")
    differences = seed_differences(methods, args.contexts, args.seeds, test_names)
    summary = {"cpu": cpu_name(), "arms": arms, "train_subjects": train_names, "test_subjects": test_names,
               "factor": args.factor, "resolution": args.resolution, "cpu_minutes": args.cpu_minutes,
               "data_range": data_range, "wall_s": time.monotonic() - started, "methods": methods,
               "differences": differences}
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"\nCPU {summary['cpu']}; synthetic MNI152 cohort: {len(train_names)} training / {len(test_names)} held-out "
          f"subjects, 2 mm thin slices from {2 * args.factor} mm thick ones; {args.cpu_minutes:g} CPU-minutes per "
          f"arm; wall {summary['wall_s']:.0f} s; MAE in the template's units (range {data_range:.0f})\n")
    print(tables(methods, differences, UNITLESS))
    if args.figure:
        figure(out, test_names[0], args.seeds[0], args.contexts, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
