"""The manual's figure of the simulated brain-tumour sources (``medgan.data.brain_tumour_sources``): for a few
patients, the axial slice with the largest tumour area (the middle slice for a normal patient) as T1, T1c, T2 and
FLAIR, and the label map over FLAIR (oedema yellow, enhancing red, necrosis blue). Also prints the seconds per
patient (anatomy and all four sequences, after the template is loaded).

    python3 benchmarks/brain_tumour_figure.py --out docs/brain_tumour.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from medgan.data.brain_tumour import tissue_templates
from medgan.data.brain_tumour_mr import SEQUENCE_NAMES
from medgan.data.brain_tumour_sources import HELD_OUT, tumour_patient

COLOURS = {1: (1.0, 0.85, 0.1), 2: (0.95, 0.15, 0.1), 3: (0.2, 0.45, 1.0)}  # oedema, enhancing, necrosis


def _window(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-6), 0, 1)


def _upright(plane: np.ndarray) -> np.ndarray:
    return plane.T[::-1]  # [X, Y] -> rows anterior at the top, the patient's right on the right (neurological)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/brain_tumour.png"))
    parser.add_argument("--patients", type=int, nargs="+", default=[HELD_OUT + 0, HELD_OUT + 2, HELD_OUT + 5,
                                                                     HELD_OUT + 1])
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tissue_templates()
    start = time.perf_counter()
    patients = [tumour_patient(index) for index in args.patients]
    seconds = (time.perf_counter() - start) / len(patients)
    print(f"{seconds:.2f} s per patient (anatomy + {len(SEQUENCE_NAMES)} sequences)")
    figure, axes = plt.subplots(len(patients), 5, figsize=(10, 2.3 * len(patients)), squeeze=False)
    for row, patient in zip(axes, patients):
        mask = patient.mask.array
        area = (mask > 0).sum(axis=(0, 1))
        z = int(area.argmax()) if area.any() else mask.shape[2] // 2 + 5
        for axis, sequence in zip(row, SEQUENCE_NAMES):
            axis.imshow(_upright(_window(patient.images[sequence].array[:, :, z])), cmap="gray")
        base = np.repeat(_upright(_window(patient.images["flair"].array[:, :, z]))[..., None], 3, axis=-1)
        labels = _upright(mask[:, :, z])
        for label, colour in COLOURS.items():
            base[labels == label] = 0.45 * base[labels == label] + 0.55 * np.asarray(colour)
        row[4].imshow(base)
        row[0].set_ylabel(f"{patient.name}\n{'tumour' if patient.tumour else 'normal'}", fontsize=8)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    for axis, title in zip(axes[0], ("T1", "T1c (gadolinium)", "T2", "FLAIR", "labels over FLAIR")):
        axis.set_title(title, fontsize=9)
    figure.suptitle("SIMULATED brain tumours (deformed MNI152 template, painted gliomas); not patient data",
                    fontsize=9)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
