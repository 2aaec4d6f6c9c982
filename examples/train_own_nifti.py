"""Train on a folder of brain MRI NIfTI volumes, sample from the run, and evaluate it against the real slices.

Without --data it first writes a small synthetic cohort (the MNI152 template with a random shift, gamma, bias
field and noise per subject) so that it runs anywhere; give --data to use your own folder.

    python3 examples/train_own_nifti.py --data /path/to/t1_folder --out runs/t1 --minutes 10
    python3 examples/train_own_nifti.py --out runs/t1 --tiny       # 2 steps at 32 px (what CI runs)
"""

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

import medgan


def synthetic_cohort(folder: Path, subjects: int, seed: int = 0) -> Path:
    """MNI152 T1 with per-subject shifts, gamma, a smooth bias field and noise (synthetic, not patients)."""
    from nilearn.datasets import load_mni152_template

    template = load_mni152_template(resolution=2)
    base = np.asarray(template.get_fdata(), dtype=np.float32)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in base.shape], indexing="ij")
    for index in range(subjects):
        volume = np.roll(base, rng.integers(-4, 5, 3), axis=(0, 1, 2))
        volume = np.clip(volume, 0, None) ** rng.uniform(0.8, 1.2)
        bias = np.exp(sum(rng.normal(0, 0.1) * axis for axis in grid))
        volume = volume * bias + rng.normal(0, 0.02 * volume.max(), volume.shape)
        nib.save(nib.Nifti1Image(volume.astype(np.float32), template.affine), str(folder / f"sub-{index:03d}.nii.gz"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a folder of T1 NIfTI volumes (default: a synthetic cohort)")
    parser.add_argument("--out", default="runs/t1", help="run directory (a new folder)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget")
    parser.add_argument("--tiny", action="store_true", help="2 steps at 32 px")
    args = parser.parse_args()

    out = Path(args.out)
    data = Path(args.data) if args.data else synthetic_cohort(out.parent / "synthetic-cohort", 4 if args.tiny else 12)
    if args.tiny:
        run = medgan.train(data, out, steps=2, resolution=32, progress=False,
                           overrides={"model.generator_channels": 4, "model.discriminator_channels": 4,
                                      "data.min_foreground": 0.3})
    else:
        run = medgan.train(data, out, minutes=args.minutes, overrides={"data.modality": "mri"})
    print(run.summary())
    images = run.load().sample(8, seed=0)
    print(f"sampled {images.shape} in {images.unit}")
    metrics = medgan.evaluate(data, run.path, out=out / "evaluation", max_images=64 if args.tiny else 500,
                              progress=not args.tiny)
    print(metrics.table)


if __name__ == "__main__":
    main()
