"""The figure of ``medgan demo denoise-volume``: one held-out phantom patient in three planes (simulated data).

Renders the first held-out patient of the ``ct-phantom-volumes`` source (``split: test``) at the run's resolution
and dose, translates its quarter-dose volume with the demo's run through the code path of ``medgan translate``
(``medgan.load(run).translate`` on a NIfTI file with the phantom's affine: RAS reorientation, slicing along the
run's axis, one neighbour on each side), and draws the axial, coronal and sagittal mid-planes of the input, the
2.5D output and the routine-dose target in the abdomen window (W400 L50), cropped to the body, each column with its
MAE (HU) against the target inside the body (target above -500 HU, the whole volume).

    python3 -m medgan demo denoise-volume --out /tmp/demo-denoise-volume
    python3 benchmarks/denoise_volume_figure.py --run /tmp/demo-denoise-volume --out docs/demo_denoise_volume.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import medgan
from medgan.data.degrade import parse_degradation
from medgan.data.phantom.sources import render_size
from medgan.data.phantom.volume_pairs import VOLUME_SLICES, phantom_volume_pair, volume_pair_seeds
from medgan.run import RunDir

WINDOW = (-150.0, 250.0)  # W400 L50
BODY_HU = -500.0


def held_out_patient(run: Path) -> tuple[dict, float]:
    """The first held-out patient's pair at the run's resolution and dose, and the dose."""
    config = RunDir.existing(run).read_config().data
    dose = float(parse_degradation(config.degrade).arguments["fraction"])
    seed = volume_pair_seeds("test")[0]
    return phantom_volume_pair(seed, render_size(config.resolution), dose, VOLUME_SLICES), dose


def translated(run: Path, volume) -> np.ndarray:
    """``medgan.load(run).translate`` of ``volume`` written as NIfTI (the ``medgan translate`` code path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.nii.gz"
        nib.save(nib.Nifti1Image(volume.array, volume.affine), str(path))
        return np.asarray(medgan.load(run).translate(path).array, dtype=np.float32)


def body_box(target: np.ndarray, margin: int = 3) -> tuple[slice, slice]:
    """The in-plane (X, Y) bounding box of the body (target above ``BODY_HU`` on any slice), with a margin."""
    inside = (target > BODY_HU).any(axis=2)
    box = []
    for axis in (1, 0):
        found = np.flatnonzero(inside.any(axis=axis))
        box.append(slice(max(int(found[0]) - margin, 0), int(found[-1]) + margin + 1))
    return box[0], box[1]


def planes(array: np.ndarray, box: tuple[slice, slice]) -> list[np.ndarray]:
    """Axial, coronal and sagittal mid-planes of an ``[X, Y, Z]`` volume inside ``box``, as displayed: axial with
    anterior up and the patient's left on the right, coronal and sagittal with superior up."""
    cropped = array[box[0], box[1]]
    x, y, z = (size // 2 for size in cropped.shape)
    return [cropped[:, :, z].T, np.flipud(cropped[:, y, :].T), np.flipud(cropped[x, :, :].T)]


def figure(columns: dict[str, np.ndarray], spacing: tuple[float, ...], box: tuple[slice, slice], out: Path,
           title: str) -> None:
    """One column per volume, one row per plane (axial, coronal, sagittal), each plane at its physical size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = planes(next(iter(columns.values())), box)
    heights = [first[0].shape[0] * spacing[1], first[1].shape[0] * spacing[2], first[2].shape[0] * spacing[2]]
    width = first[0].shape[1] * spacing[0]
    scale = 3.2 / width  # inches per mm
    fig, axes = plt.subplots(3, len(columns), figsize=(3.4 * len(columns), scale * sum(heights) + 1.3),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    through = spacing[2] / spacing[0]  # displayed height of a coronal/sagittal pixel over its width
    for column, (label, array) in enumerate(columns.items()):
        for row, (plane, name) in enumerate(zip(planes(array, box), ("axial", "coronal", "sagittal"))):
            axis = axes[row, column]
            axis.imshow(plane, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=1.0 if row == 0 else through,
                        interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(name, fontsize=9)
        axes[0, column].set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="the run of medgan demo denoise-volume")
    parser.add_argument("--out", type=Path, default=Path("docs/demo_denoise_volume.png"))
    args = parser.parse_args()
    pair, dose = held_out_patient(args.run)
    target, low = pair["target"], pair["input"]
    output = translated(args.run, low)
    body = target.array > BODY_HU
    columns = {}
    for label, array in ((f"input (dose {dose:g})", low.array), ("2.5D output", output)):
        mae = float(np.abs(array - target.array)[body].mean())
        columns[f"{label}\nMAE {mae:.1f} HU"] = array
        print(f"{label}: MAE {mae:.2f} HU against the routine-dose target, body voxels")
    columns["target (routine dose)\n"] = target.array
    title = (f"held-out {target.subject} (simulated), mid-planes, W400 L50, {target.array.shape[2]} slices of "
             f"{target.spacing[2]:g} mm")
    figure(columns, target.spacing, body_box(target.array), args.out, title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
