"""Volumetric inpainting of 3D holes in brain MR measured: slice-wise 2D vs 2.5D (``data.context``) pix2pix on
held-out subjects' whole volumes, inside the holes, in 3D, beside biharmonic inpainting in 2D and in 3D.

Synthetic data: subjects of the MNI152 cohort (``medgan.data.cohort``: one template at 2 mm, deformed, with bias
fields and noise; subjects 0 on train, 10,000 on are held out). Each subject gets ``--holes`` ellipsoidal 3D holes
(radii 8-16 mm along each axis, centred in the brain, drawn from the subject's index), set to background in the
input; the pairs CSV (``data.pairs``: input, target, mask) gives the thin volume as the target and the hole as the
``mask`` domain. For each ``--contexts`` K and ``--seeds`` s, pix2pix trains on whole native slices (padded, not
resampled) within one CPU-time budget; K = 0 is slice-wise 2D, K > 0 gives each input slice its neighbours (the
mask stays the slice's own). Each run fills the held-out holes with ``medgan translate`` (``--domain mask=``), and
only the hole voxels are measured (``medgan.metrics.volume_translation`` with the hole as the mask): MAE, PSNR and
SSIM (range: the truth's 99.5th percentile in the head) and the through-plane consistency error, with 95% bootstrap
intervals over held-out subjects; per seed, the paired difference 2.5D - 2D per subject, and over seeds a 95% t
interval. Classic baselines: biharmonic inpainting (scikit-image) slice by slice, and in 3D, which sees the hole's
surroundings above and below as 2.5D does.

    OMP_WAIT_POLICY=PASSIVE python3 benchmarks/volume_inpaint.py --out /tmp/volume-inpaint

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
from skimage.restoration import inpaint_biharmonic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from inversion import cpu_name  # same folder
from volume_tables import (UNITLESS, arm_label, budget_train, only_these, run_arms, seed_differences,  # same folder
                           tables, zyx)

from medgan.config import from_dict
from medgan.data.cohort import HELD_OUT, write_mni_cohort
from medgan.metrics.volume_translation import volume_translation_metrics
from medgan.training.tasks import recipe
from medgan.utils import atomic_path

RADIUS_VOXELS = (4, 8)  # 8-16 mm at 2 mm
BRAIN_FRACTION = 0.3  # hole centres lie where the volume is above this fraction of its 99th percentile


def holes(volume: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` ellipsoids (radii ``RADIUS_VOXELS`` per axis) centred on brain voxels away from the edges."""
    rng = np.random.default_rng([seed, 7])
    brain = volume > BRAIN_FRACTION * np.percentile(volume, 99)
    margin = RADIUS_VOXELS[1]
    inner = np.zeros_like(brain)
    inner[margin:-margin, margin:-margin, margin:-margin] = True
    candidates = np.argwhere(brain & inner)
    grid = np.indices(volume.shape, dtype=np.float32)
    mask = np.zeros(volume.shape, dtype=bool)
    for _ in range(count):
        centre = candidates[rng.integers(len(candidates))]
        radii = rng.uniform(*RADIUS_VOXELS, 3)
        distance = sum(((grid[axis] - centre[axis]) / radii[axis]) ** 2 for axis in range(3))
        mask |= distance <= 1.0
    return mask


def _biharmonic(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic inpainting of ``hole`` in ``image`` (2D or 3D); the image as is without a hole."""
    if not hole.any():
        return image
    return inpaint_biharmonic(np.ascontiguousarray(image), np.ascontiguousarray(hole))


def _save(array: np.ndarray, image: nib.Nifti1Image, path: Path, dtype) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    derived = nib.Nifti1Image(array.astype(dtype), image.affine, image.header)
    derived.set_data_dtype(dtype)
    with atomic_path(path) as temporary:
        nib.save(derived, str(temporary))


def write_pairs(folder: Path, count: int, first: int, hole_count: int) -> list[str]:
    """Thin subjects in ``thin/``, holed inputs in ``input/``, holes in ``mask/``, the two biharmonic baselines in
    ``biharmonic2d/`` and ``biharmonic3d/`` (test only: ``first`` >= ``HELD_OUT``), and ``pairs.csv``."""
    names, rows = [], ["input,target,mask"]
    folder = folder.resolve()  # the CSV's paths are read relative to its own folder otherwise
    for path in write_mni_cohort(folder / "thin", count, first):
        name = path.name.removesuffix(".nii.gz")
        names.append(name)
        rows.append(f"{folder / 'input' / path.name},{path},{folder / 'mask' / path.name}")
        if (folder / "mask" / path.name).exists():
            continue
        image = nib.load(path)
        thin = np.asarray(image.dataobj, dtype=np.float32)
        hole = holes(thin, hole_count, int(name.split("-")[1]))
        holed = np.where(hole, 0.0, thin)
        _save(holed, image, folder / "input" / path.name, np.float32)
        if first >= HELD_OUT:
            flat = _biharmonic(holed, hole)
            slices = np.stack([_biharmonic(holed[..., z], hole[..., z]) for z in range(holed.shape[-1])], axis=-1)
            _save(flat, image, folder / "biharmonic3d" / path.name, np.float32)
            _save(slices, image, folder / "biharmonic2d" / path.name, np.float32)
        _save(hole, image, folder / "mask" / path.name, np.uint8)  # last: marks the subject complete
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    only_these(folder / "thin", names)
    return names


def run_config(args: argparse.Namespace, context: int, seed: int, data: Path):
    """The one recipe of every arm: pix2pix on whole native 2 mm slices (padded, not resampled), one CPU budget."""
    # No identity start (model.residual): the hole is background (-1), where the start's tanh is flat, and a first
    # run with it left the holes unfilled (mean 5 inside them against the truth's 182 after 6 CPU-minutes).
    return from_dict({
        "task": "paired",
        "data": {"source": str(data / "thin"), "pairs": str(data / "pairs.csv"), "resolution": args.resolution,
                 "fit": "pad", "crop_foreground": False, "context": context},
        "model": {"residual": False},
        "paired": {"patch": args.patch},
        "train": budget_train(args.cpu_minutes, seed),
    }, base=recipe("pix2pix"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working folder (volumes, runs, translations, results.json)")
    parser.add_argument("--train-subjects", type=int, default=16)
    parser.add_argument("--test-subjects", type=int, default=8)
    parser.add_argument("--holes", type=int, default=8, help="3D holes per subject")
    parser.add_argument("--resolution", type=int, default=128, help="tile side: the 2 mm slices padded to it")
    parser.add_argument("--patch", type=int, default=64, help="paired.patch")
    parser.add_argument("--contexts", type=int, nargs="+", default=[0, 2], help="data.context per arm (0 = 2D)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of each arm")
    parser.add_argument("--cpu-minutes", type=float, default=5.0, help="CPU-time budget per arm")
    parser.add_argument("--parallel", type=int, default=2, help="arms trained at once (one thread each)")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.monotonic()
    train_names = write_pairs(out / "train", args.train_subjects, 0, args.holes)
    test_names = write_pairs(out / "test", args.test_subjects, HELD_OUT, args.holes)
    print(f"wrote {len(train_names)} + {len(test_names)} subjects: {time.monotonic() - started:.0f} s", flush=True)
    test = out / "test"
    jobs = [(f"{context}/{seed}", run_config(args, context, seed, out / "train"),
             out / "runs" / f"context{context}-seed{seed}", ["--input", str(test / "input"), "--domain",
                                                             f"mask={test / 'mask'}"], test_names,
             out / "translated" / f"context{context}-seed{seed}") for seed in args.seeds for context in args.contexts]
    arms = run_arms(jobs, args.parallel)
    truth = np.stack([zyx(out / "test" / "thin" / f"{n}.nii.gz") for n in test_names])
    hole = np.stack([zyx(out / "test" / "mask" / f"{n}.nii.gz") > 0 for n in test_names])
    head = np.stack([volume > 0.05 * np.percentile(volume, 99) for volume in truth])
    data_range = float(np.percentile(truth[head], 99.5))

    def score(folder: Path, suffix: str = "") -> dict:
        volumes = np.stack([zyx(folder / f"{n}{suffix}.nii.gz") for n in test_names])
        return volume_translation_metrics(volumes, truth, data_range, 0.0, hole, test_names, "a.u.")

    methods = {"biharmonic, slice by slice": score(out / "test" / "biharmonic2d"),
               "biharmonic, 3D": score(out / "test" / "biharmonic3d")}
    for seed in args.seeds:
        for context in args.contexts:
            folder = out / "translated" / f"context{context}-seed{seed}"
            methods[arm_label(context, seed)] = score(folder, "_translated")
    differences = seed_differences(methods, args.contexts, args.seeds, test_names)
    summary = {"cpu": cpu_name(), "arms": arms, "train_subjects": train_names, "test_subjects": test_names,
               "holes": args.holes, "hole_voxels": int(hole.sum()), "resolution": args.resolution,
               "cpu_minutes": args.cpu_minutes, "data_range": data_range, "wall_s": time.monotonic() - started,
               "methods": methods, "differences": differences}
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"\nCPU {summary['cpu']}; synthetic MNI152 cohort: {len(train_names)} training / {len(test_names)} held-out "
          f"subjects, {args.holes} 3D holes each ({int(hole.sum())} held-out hole voxels); {args.cpu_minutes:g} "
          f"CPU-minutes per arm; wall {summary['wall_s']:.0f} s; inside the holes, template units (range "
          f"{data_range:.0f})\n")
    print(tables(methods, differences, UNITLESS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
